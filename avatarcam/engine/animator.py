"""Animator: the engine's public face. Owns the backend, the avatar and the neutral pose."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..imaging import resize_square, to_rgb_float
from .backends import Backend, make_backend
from .checkpoint import Networks, load_networks
from .config import FOMMConfig
from .generator import EncodedSource
from .motion import Keypoints, RelativeMotion
from .options import EngineOptions, Progress

KeypointFilter = Callable[[Keypoints], Keypoints]


@dataclass(frozen=True)
class PreparedSource:
    """An avatar ready to animate: computed once, reusable when switching back to it."""

    image: np.ndarray  # SxSx3 float32
    keypoints: Keypoints
    encoded: EncodedSource


@dataclass(frozen=True)
class Calibration:
    neutral: Keypoints  # the driving face's neutral pose (repaired where it was degenerate)
    scale: float  # movement-scale adaptation for the avatar it was made for
    notices: tuple[str, ...] = ()  # what was repaired (RelativeMotion.calibration), one line each


@dataclass(frozen=True)
class AnimateJob:
    """One picture of a batch. ``calibration=None`` drives the avatar with the absolute keypoints."""

    source: PreparedSource
    driving: Keypoints
    calibration: Calibration | None = None


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 [0,1] -> (1,3,H,W)."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def _to_images(prediction: torch.Tensor) -> np.ndarray:
    """(N,3,H,W) -> (N,H,W,3) float32 numpy."""
    return prediction.detach().float().permute(0, 2, 3, 1).cpu().numpy().copy()


class Animator:
    """Animate a still portrait with the motion of a driving face.

    >>> anim = Animator.from_checkpoint("vox-adv-cpk.pth.tar", EngineOptions(device="cpu"))
    >>> anim.set_source(portrait); anim.calibrate(neutral_frame)
    >>> out = anim.animate(frame)  # 256x256x3 float32 RGB in [0,1]
    """

    def __init__(self, networks: Networks, backend: Backend, options: EngineOptions,
                 motion: RelativeMotion | None = None) -> None:
        self.networks = networks
        self.backend = backend
        self._options = options
        self._motion = motion or RelativeMotion()
        self._source: PreparedSource | None = None
        self._neutral: Keypoints | None = None
        self._calibration: Calibration | None = None
        self._calibrate_next = False
        self._lock = threading.RLock()  # set_source / calibrate may come from another thread
        self.on_notice: Callable[[str], None] | None = None  # one-line notices (degenerate neutral pose)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, options: EngineOptions | None = None, *,
                        motion: RelativeMotion | None = None, progress: Progress | None = None) -> Animator:
        """Load ``vox-adv-cpk.pth.tar`` (or a file in its layout); raises ``CheckpointError``.
        ``progress`` receives one-line status messages during slow steps (export, compile, checks)."""
        options = options or EngineOptions()
        networks = load_networks(path)
        return cls(networks, make_backend(networks, options, checkpoint=path, progress=progress), options, motion)

    # what runs ----------------------------------------------------------------------------
    @property
    def options(self) -> EngineOptions:
        """The options as resolved: the device, precision and backend actually used."""
        return self._options.replace(device=str(self.backend.device), precision=self.backend.precision,
                                     backend=self.backend.name)

    @property
    def config(self) -> FOMMConfig:
        return self.networks.config

    @property
    def size(self) -> int:
        return self.config.image_size

    @property
    def domain(self) -> str:
        """"face" (frame the face) or a full-frame domain such as "taichi" (see engine/layout.py)."""
        return self.networks.domain

    def describe(self) -> str:
        """One line for status bars and logs, e.g. "torch-cpu bf16", "onnx CPUExecutionProvider fp32" or
        "openvino CPU bf16" (``backend.provider`` says what actually runs the model)."""
        provider, precision = self.backend.provider, self.backend.precision
        runtime = "" if provider.startswith("torch") else f"{self.backend.name} "
        text = f"{runtime}{provider} {precision}"
        return text + (" compiled" if getattr(self.backend, "compiled", False) else "")

    @property
    def motion(self) -> RelativeMotion:
        return self._motion

    @motion.setter
    def motion(self, motion: RelativeMotion) -> None:
        with self._lock:
            self._motion = motion
            self._recalibrate()

    @property
    def has_source(self) -> bool:
        return self._source is not None

    @property
    def is_calibrated(self) -> bool:
        return self._calibration is not None

    # avatar and neutral pose ---------------------------------------------------------------
    def _input(self, image: np.ndarray) -> torch.Tensor:
        return _to_tensor(resize_square(to_rgb_float(image), self.size))

    def detect(self, frame: np.ndarray) -> Keypoints:
        """Keypoints of a face picture (any size, RGB uint8 or float; resized to the model's input)."""
        return self.backend.detect(self._input(frame))

    def prepare_source(self, image: np.ndarray) -> PreparedSource:
        """Everything that depends only on the avatar. Thread-safe and side-effect free."""
        img = resize_square(to_rgb_float(image), self.size)
        x = _to_tensor(img)
        return PreparedSource(img, self.backend.detect(x), self.backend.encode(x))

    def use_source(self, prepared: PreparedSource) -> None:
        with self._lock:
            self._source = prepared
            self._recalibrate()

    def set_source(self, image: np.ndarray) -> PreparedSource:
        """Use a portrait (HxWx3 RGB, uint8 or float in [0,1]; other sizes are resized)."""
        prepared = self.prepare_source(image)
        self.use_source(prepared)
        return prepared

    def make_calibration(self, source: PreparedSource, neutral: Keypoints) -> Calibration:
        """The calibration for this avatar; a degenerate neutral pose is repaired and each repair
        is passed to ``on_notice`` (never a silent NaN frame or scale 1.0)."""
        neutral, scale, notices = self._motion.calibration(source.keypoints, neutral)
        for line in notices:
            if self.on_notice is not None:
                self.on_notice(line)
        return Calibration(neutral, scale, tuple(notices))

    def calibrate(self, frame: np.ndarray | None = None, keypoints: Keypoints | None = None) -> None:
        """Take this driving frame (or these keypoints) as the neutral pose."""
        kp = keypoints if keypoints is not None else self.detect(frame)
        with self._lock:
            self._neutral, self._calibrate_next = kp, False
            self._recalibrate()

    def request_calibration(self) -> None:
        """The next animated frame becomes the neutral pose."""
        self._calibrate_next = True

    def reset_calibration(self) -> None:
        with self._lock:
            self._neutral, self._calibration = None, None

    def _recalibrate(self) -> None:
        ready = self._neutral is not None and self._source is not None
        self._calibration = self.make_calibration(self._source, self._neutral) if ready else None

    # the one route from a frame to a picture -----------------------------------------------
    def animate(self, frame: np.ndarray, *, keypoint_filter: KeypointFilter | None = None) -> np.ndarray:
        """One driving frame (HxWx3 RGB) -> the animated avatar, SxSx3 float32 RGB in [0,1]:
        detect -> filter -> (neutral := this frame if requested or none yet) -> relative motion -> decode."""
        kp = self.detect(frame)
        return self.animate_keypoints(keypoint_filter(kp) if keypoint_filter is not None else kp)

    def animate_keypoints(self, kp: Keypoints) -> np.ndarray:
        """:meth:`animate` from already-detected (and filtered) driving keypoints."""
        with self._lock:
            if self._source is None:
                raise RuntimeError("Animator.set_source() must be called before animate()")
            if self._calibration is None or self._calibrate_next:
                self._neutral, self._calibrate_next = kp, False
                self._recalibrate()
            job = AnimateJob(self._source, kp, self._calibration)
        return self.animate_batch([job])[0]

    def _driving(self, job: AnimateJob) -> Keypoints:
        device = job.source.keypoints.value.device
        if job.calibration is None:
            return job.driving.to(device)
        return self._motion.apply(job.source.keypoints, job.driving.to(device), job.calibration.neutral.to(device),
                                  job.calibration.scale)

    def animate_batch(self, jobs: Sequence[AnimateJob]) -> np.ndarray:
        """(N,S,S,3) float32: N driving poses of N prepared avatars (repeats allowed) in ONE batched
        decoder forward; each item equals the batch-1 result."""
        if not jobs:
            return np.zeros((0, self.size, self.size, 3), np.float32)
        device = self.backend.device
        encoded = EncodedSource.cat([job.source.encoded for job in jobs])
        kp_source = Keypoints.cat([job.source.keypoints.to(device) for job in jobs])
        kp_driving = Keypoints.cat([self._driving(job).to(device) for job in jobs])
        return _to_images(self.backend.decode(encoded, kp_source, kp_driving))
