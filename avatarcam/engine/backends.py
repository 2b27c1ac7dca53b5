"""Backends run the three model stages; the Animator owns the motion logic around them.

Stages: ``detect`` (keypoint detector on one frame), ``encode`` (everything that depends only on
the avatar) and ``decode`` (dense motion + warp + decoder for one frame).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import numpy as np
import torch

from ..errors import AvatarcamError
from .generator import EncodedSource, OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector
from .motion import Keypoints

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AvatarcamError("device 'cuda' requested but no CUDA GPU is usable here; use --device cpu "
                             "(or install a CUDA build of PyTorch).")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise AvatarcamError(f"unknown device {device!r}; use auto, cpu or cuda.")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in DTYPES:
        raise AvatarcamError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16.")
    if precision == "fp16" and device.type == "cpu":
        raise AvatarcamError("fp16 on the CPU is ~80x slower than fp32; use --precision fp32 or bf16 on the CPU.")
    return precision


class Backend(Protocol):
    device: torch.device
    precision: str
    name: str

    def detect(self, image: torch.Tensor) -> Keypoints: ...

    def encode(self, image: torch.Tensor) -> EncodedSource: ...

    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor: ...


class TorchBackend:
    """Eager PyTorch on a device; fp16/bf16 through autocast so the keypoint softmax, mask softmax
    and jacobian math stay in fp32."""

    name = "torch"

    def __init__(self, kp_detector: KeypointDetector, generator: OcclusionAwareGenerator,
                 device: torch.device, precision: str) -> None:
        self.device = device
        self.precision = precision
        self.kp_detector = kp_detector.to(device).eval()
        self.generator = generator.to(device).eval()

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

    @torch.inference_mode()
    def detect(self, image: torch.Tensor) -> Keypoints:
        with self._autocast():
            kp = self.kp_detector(image.to(self.device))
        return {k: v.float() for k, v in kp.items()}

    @torch.inference_mode()
    def encode(self, image: torch.Tensor) -> EncodedSource:
        with self._autocast():
            return self.generator.encode_source(image.to(self.device))

    @torch.inference_mode()
    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        with self._autocast():
            out = self.generator.decode(encoded, kp_source, kp_driving, with_deformed=False)
        return out["prediction"].float()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 [0,1] -> (1,3,H,W)."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) -> HxWx3 float32 numpy."""
    return tensor[0].detach().float().permute(1, 2, 0).cpu().numpy().copy()
