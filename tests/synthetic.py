"""Synthetic test data: driving clips and model weights. Only tests/ and scripts/ import this.

* Clips from the public-domain astronaut portrait (scikit-image sample data), for machines without
  a webcam: a face that moves, turns and zooms smoothly over time, optionally pasted on a larger
  background at known positions.
* Deterministic random weights in the checkpoint's layout (real weights cannot be shipped or
  downloaded in tests). For the vox-256 config this reproduces, value for value, the reference
  recipe the parity fixtures were computed on (one numpy ``default_rng(seed)``, kp_detector then
  generator, in state_dict order, float64 draws cast to float32).
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from avatarcam.engine.blocks import AntiAliasDownsample
from avatarcam.engine.checkpoint import CONFIG_KEY
from avatarcam.engine.config import FOMMConfig
from avatarcam.engine.generator import OcclusionAwareGenerator
from avatarcam.engine.keypoint_detector import KeypointDetector


def astronaut_face(size: int = 256) -> np.ndarray:
    """The astronaut portrait, square-cropped around the face, size x size RGB uint8."""
    from skimage.data import astronaut

    img = astronaut()  # 512x512; the face spans about x 170..330, y 20..200
    crop = img[0:300, 105:405]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def landscape_portrait(size: tuple[int, int] = (1920, 1080)) -> np.ndarray:
    """An RGB uint8 picture of ``size`` = (w, h): the astronaut (a square as large as fits, at the top,
    right of centre when wide) on the scikit-image coffee picture: textured everywhere, no flat bars."""
    from skimage.data import astronaut, coffee

    w, h = size
    out = cv2.resize(coffee(), (w, h), interpolation=cv2.INTER_LINEAR)
    side = min(w, h)
    left = min(w - side, w * 3 // 10)
    out[:side, left:left + side] = cv2.resize(astronaut(), (side, side), interpolation=cv2.INTER_LINEAR)
    return out


@dataclass(frozen=True)
class Warp:
    angle_deg: float = 0.0
    scale: float = 1.0
    tx: float = 0.0
    ty: float = 0.0

    def matrix(self, size: int) -> np.ndarray:
        c = (size - 1) / 2
        m = cv2.getRotationMatrix2D((c, c), self.angle_deg, self.scale)
        m[0, 2] += self.tx
        m[1, 2] += self.ty
        return m


def warp_image(image: np.ndarray, warp: Warp) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, warp.matrix(w), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def head_motion(t: float, amplitude: float = 1.0) -> Warp:
    """A smooth nod/turn/zoom path; t in frames at 30 fps."""
    a = amplitude
    return Warp(angle_deg=6 * a * math.sin(t / 9), scale=1 + 0.04 * a * math.sin(t / 13),
                tx=8 * a * math.sin(t / 7), ty=5 * a * math.sin(t / 11))


def driving_frames(n: int, size: int = 256, amplitude: float = 1.0, face: np.ndarray | None = None) -> list[np.ndarray]:
    """n RGB uint8 frames of the astronaut face moving; frame 0 is the neutral pose."""
    face = astronaut_face(size) if face is None else face
    return [warp_image(face, head_motion(i, amplitude)) if i else face.copy() for i in range(n)]


def write_clip(path: str | os.PathLike, frames: list[np.ndarray], fps: float = 30.0) -> str:
    """Write RGB uint8 frames as an mp4 (mp4v) readable by OpenCV."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return os.fspath(path)


def face_on_background(positions: list[tuple[int, int]], face_size: int = 200,
                       frame_size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """Frames of the astronaut face pasted at known top-left positions on a plain background."""
    face = astronaut_face(face_size)
    w, h = frame_size
    out = []
    for x, y in positions:
        frame = np.full((h, w, 3), (60, 80, 100), np.uint8)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + face_size), min(h, y + face_size)
        frame[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
        out.append(frame)
    return out


BIAS_STD = 0.02
# Extra gain on the He std so the random network's outputs are not degenerate
# (spread keypoints, invertible jacobians, unsaturated mask, occlusion and image).
GAINS = {
    "kp_detector": {"kp.weight": 1.0, "jacobian.weight": 0.2},
    "generator": {
        "bottleneck.r*.conv2.weight": 0.3,
        "dense_motion_network.mask.weight": 3.0,
        "dense_motion_network.occlusion.weight": 4.0,
        "final.weight": 1.0,
    },
}


def _gain(module_name: str, key: str) -> float:
    for pattern, gain in GAINS[module_name].items():
        if fnmatch.fnmatchcase(key, pattern):
            return gain
    return 1.0


def _antialias_kernel(module: AntiAliasDownsample) -> np.ndarray:
    channels, _, size, _ = module.weight.shape
    sigma = (module.step - 1) / 2
    g = np.exp(-((np.arange(size, dtype=np.float64) - (size - 1) / 2.0) ** 2) / (2.0 * sigma**2))
    k = np.outer(g, g)
    return np.broadcast_to(k / k.sum(), (channels, 1, size, size))


def _random_state_dict(module_name: str, net: nn.Module, rng: np.random.Generator) -> OrderedDict:
    owners = {}
    for prefix, sub in net.named_modules():
        for key in list(sub._parameters) + list(sub._buffers):
            owners[f"{prefix}.{key}" if prefix else key] = (sub, key)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, ref in net.state_dict().items():
        sub, attr = owners[name]
        shape = tuple(ref.shape)
        if attr == "num_batches_tracked":
            value = np.zeros(shape, dtype=np.int64)
        elif attr == "running_mean":
            value = rng.normal(0.0, BIAS_STD, shape)
        elif attr == "running_var":
            value = rng.uniform(0.5, 1.5, shape)
        elif isinstance(sub, AntiAliasDownsample):
            value = _antialias_kernel(sub)
        elif isinstance(sub, nn.BatchNorm2d):
            value = rng.uniform(0.8, 1.2, shape) if attr == "weight" else rng.normal(0.0, BIAS_STD, shape)
        elif isinstance(sub, nn.Conv2d) and attr == "weight":
            fan_in = shape[1] * shape[2] * shape[3]
            value = rng.normal(0.0, _gain(module_name, name) * np.sqrt(2.0 / fan_in), shape)
        elif isinstance(sub, nn.Conv2d) and attr == "bias":
            value = rng.normal(0.0, BIAS_STD, shape)
            if module_name == "kp_detector" and name == "jacobian.bias":
                value = value + np.tile([1.0, 0.0, 0.0, 1.0], shape[0] // 4)
        else:  # pragma: no cover - a new parameter kind must be given a rule here
            raise ValueError(f"{module_name}.{name}: no rule for synthetic weights")
        dtype = np.int64 if attr == "num_batches_tracked" else np.float32
        out[name] = torch.from_numpy(np.array(value, dtype=dtype, order="C"))  # keeps 0-d shapes
    return out


def synthetic_state_dicts(config: FOMMConfig | None = None, seed: int = 0) -> dict[str, OrderedDict]:
    """{"kp_detector": state_dict, "generator": state_dict} with deterministic random values."""
    config = config or FOMMConfig.vox256()
    rng = np.random.default_rng(seed)
    kp = _random_state_dict("kp_detector", KeypointDetector(config), rng)
    gen = _random_state_dict("generator", OcclusionAwareGenerator(config), rng)
    return {"kp_detector": kp, "generator": gen}


def write_synthetic_checkpoint(path: str | os.PathLike, config: FOMMConfig | None = None, seed: int = 0) -> str:
    """Write a checkpoint in the official layout (``kp_detector``, ``generator``, ``epoch``)."""
    config = config or FOMMConfig.vox256()
    ckpt: dict = dict(synthetic_state_dicts(config, seed))
    ckpt["epoch"] = 0
    if config != FOMMConfig.vox256():
        # Reduced test models say what they are, so `--checkpoint tiny.pth.tar` just works.
        ckpt[CONFIG_KEY] = config.to_dict()
    torch.save(ckpt, os.fspath(path))
    return os.fspath(path)
