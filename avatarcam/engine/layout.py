"""Which FOMM configuration a checkpoint was trained with, read from its state-dict shapes.

The authors' public checkpoints (vox, vox-adv, taichi, taichi-adv, fashion, nemo, bair, mgif) all
have the vox-256 layout except mgif, whose keypoint detector has one jacobian map shared by the 10
keypoints. Everything that changes a tensor shape (keypoint count, channels, block counts and widths,
jacobian maps, anti-alias kernels, occlusion head) is read from the shapes; values that leave no
trace in the weights (image size, temperature, keypoint variance) keep the authors' defaults. The
strict load that follows checks the result key by key.

Domain: the shapes cannot tell a face model from a full-body one (taichi has the vox layout), so
the file name decides, as the authors name their files (``taichi-cpk.pth.tar``, ``fashion.pth.tar``,
...): those domains are animated full-frame, without face framing; mgif is recognised by its
single jacobian map whatever its name. Everything else, vox and nemo (faces) included, is "face".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch

from .config import FOMMConfig, GeneratorConfig, KeypointDetectorConfig

# The authors' checkpoint name prefixes of domains that are not a face filling the frame.
FULL_FRAME_DOMAINS = ("taichi", "fashion", "bair", "mgif")
FACE_DOMAIN = "face"
_SCALES = (1.0, 0.5, 0.25, 0.125)


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    return tuple(sd[key].shape) if key in sd else None


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def _antialias_scale(sd: Mapping[str, torch.Tensor], key: str) -> float:
    """The downsampling factor whose Gaussian kernel size matches ``key`` (1.0 when there is none)."""
    shape = _shape(sd, key)
    if shape is None:
        return 1.0
    for scale in _SCALES[1:]:
        sigma = (1 / scale - 1) / 2
        if 2 * round(sigma * 4) + 1 == shape[-1]:
            return scale
    return 0.25


def _hourglass(sd: Mapping[str, torch.Tensor], prefix: str, default_max: int) -> tuple[int, int, int]:
    """(block_expansion, num_blocks, max_features) of an Hourglass from its encoder shapes."""
    num_blocks = _count(sd, re.escape(prefix) + r"encoder\.down_blocks\.(\d+)\.conv\.weight")
    first = _shape(sd, f"{prefix}encoder.down_blocks.0.conv.weight")
    if not num_blocks or first is None:
        return 0, 0, default_max
    expansion = first[0] // 2
    widest = max(sd[f"{prefix}encoder.down_blocks.{i}.conv.weight"].shape[0] for i in range(num_blocks))
    return expansion, num_blocks, _max_features(widest, expansion * 2**num_blocks, default_max)


def _max_features(widest: int, uncapped: int, default_max: int) -> int:
    """The cap on channel counts: the default when it reproduces the widest layer, else that width."""
    return default_max if min(default_max, uncapped) == widest else widest


def _kp_config(kp: Mapping[str, torch.Tensor], base: KeypointDetectorConfig) -> KeypointDetectorConfig:
    expansion, blocks, widest = _hourglass(kp, "predictor.", base.max_features)
    jac, num_kp = _shape(kp, "jacobian.weight"), (_shape(kp, "kp.weight") or (0,))[0]
    return replace(base, block_expansion=expansion or base.block_expansion, num_blocks=blocks or base.num_blocks,
                   max_features=widest, scale_factor=_antialias_scale(kp, "down.weight"),
                   single_jacobian_map=bool(jac and jac[0] == 4 and num_kp != 1))


def _generator_config(gen: Mapping[str, torch.Tensor], base: GeneratorConfig) -> GeneratorConfig:
    dm = base.dense_motion
    expansion, blocks, widest = _hourglass(gen, "dense_motion_network.hourglass.", dm.max_features)
    dense = replace(dm, block_expansion=expansion or dm.block_expansion, num_blocks=blocks or dm.num_blocks,
                    max_features=widest, scale_factor=_antialias_scale(gen, "dense_motion_network.down.weight"))
    first = _shape(gen, "first.conv.weight")
    gen_expansion = first[0] if first else base.block_expansion
    downs = _count(gen, r"down_blocks\.(\d+)\.conv\.weight")
    widest_gen = max([gen[f"down_blocks.{i}.conv.weight"].shape[0] for i in range(downs)] or [0])
    return replace(base, block_expansion=gen_expansion, num_down_blocks=downs or base.num_down_blocks,
                   max_features=_max_features(widest_gen, gen_expansion * 2**downs, base.max_features),
                   num_bottleneck_blocks=_count(gen, r"bottleneck\.r(\d+)\.conv1\.weight"),
                   estimate_occlusion_map="dense_motion_network.occlusion.weight" in gen, dense_motion=dense)


def config_from_state_dicts(kp: Mapping[str, torch.Tensor], gen: Mapping[str, torch.Tensor]) -> FOMMConfig:
    """The FOMMConfig whose modules have these state-dict shapes (defaults where shapes say nothing)."""
    base = FOMMConfig.vox256()
    first = _shape(kp, "predictor.encoder.down_blocks.0.conv.weight")
    num_kp = _shape(kp, "kp.weight")
    return replace(base, num_kp=num_kp[0] if num_kp else base.num_kp,
                   num_channels=first[1] if first else base.num_channels,
                   estimate_jacobian="jacobian.weight" in kp,
                   kp_detector=_kp_config(kp, base.kp_detector), generator=_generator_config(gen, base.generator))


def domain_of(path: str | os.PathLike, config: FOMMConfig) -> str:
    """"face" or the full-frame domain (see the module docstring for the rule)."""
    if config.estimate_jacobian and config.kp_detector.single_jacobian_map:
        return "mgif"
    name = Path(path).name.lower()
    return next((d for d in FULL_FRAME_DOMAINS if name.startswith(d)), FACE_DOMAIN)


def config_name(config: FOMMConfig) -> str:
    """A short name for messages: "vox-256 layout", "mgif-256 layout" or "custom layout"."""
    if config == FOMMConfig.vox256():
        return "vox-256 layout"
    return "mgif-256 layout" if config == FOMMConfig.mgif256() else "custom layout"

