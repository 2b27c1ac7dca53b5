"""Animator: the engine's public face. Owns the backend, the avatar and the neutral pose (``neutral.py``)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..imaging import resize_square, to_rgb_float
from .backends import Backend, make_backend
from .checkpoint import Networks, load_networks
from .config import FOMMConfig
from .dense_motion import MotionField
from .generator import EncodedSource
from .motion import Keypoints, RelativeMotion
from .neutral import Calibration, MatchReading, NeutralPose, make_calibration
from .options import EngineOptions, Progress

KeypointFilter = Callable[[Keypoints], Keypoints]


@dataclass(frozen=True)
class PreparedSource:
    """An avatar ready to animate: computed once, reusable when switching back to it."""

    image: np.ndarray  # SxSx3 float32
    keypoints: Keypoints
    encoded: EncodedSource


@dataclass(frozen=True)
class AnimateJob:
    """One picture of a batch. ``calibration=None`` drives the avatar with the absolute keypoints."""

    source: PreparedSource
    driving: Keypoints
    calibration: Calibration | None = None


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 [0,1] -> (1,3,H,W). The copy is numpy's: a torch copy of this size would wake torch's
    thread pool, which then competes with OpenVINO's threads when OpenVINO runs the model."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32))


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
        self._source: PreparedSource | None = None
        self._lock = threading.RLock()  # set_source / calibrate may come from another thread
        self.on_notice: Callable[[str], None] | None = None  # one-line notices (degenerate neutral pose)
        self.neutral = NeutralPose(motion, on_notice=self._notice)  # the one owner of the neutral pose
        self._want_motion = False
        self._last_motion: MotionField | None = None

    def _notice(self, message: str) -> None:
        if self.on_notice is not None:
            self.on_notice(message)

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
        return self.neutral.motion

    @motion.setter
    def motion(self, motion: RelativeMotion) -> None:
        self.neutral.motion = motion  # recalibrates with the neutral pose in hand

    @property
    def has_source(self) -> bool:
        return self._source is not None

    @property
    def ready(self) -> bool:
        """Pictures can be made now: here, as soon as an avatar is set."""
        return self._source is not None

    @property
    def is_calibrated(self) -> bool:
        return self.neutral.calibration is not None

    def link_stats(self) -> None:
        """The remote link's figures for the stats overlay: none, the model runs here."""
        return None

    def close(self) -> None:
        """Nothing to release (the backend's memory goes with the object); part of the animator contract."""

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
            self.neutral.set_avatar(prepared.keypoints)

    def set_source(self, image: np.ndarray) -> PreparedSource:
        """Use a portrait (HxWx3 RGB, uint8 or float in [0,1]; other sizes are resized)."""
        prepared = self.prepare_source(image)
        self.use_source(prepared)
        return prepared

    def make_calibration(self, source: PreparedSource, neutral: Keypoints) -> Calibration:
        """A calibration for ``animate_batch`` jobs (each job its own avatar and neutral pose); repairs
        are passed to ``on_notice``. The live neutral pose is ``self.neutral``'s."""
        calibration = make_calibration(self.motion, source.keypoints, neutral)
        for line in calibration.notices:
            self._notice(line)
        return calibration

    def calibrate(self, frame: np.ndarray | None = None, keypoints: Keypoints | None = None) -> None:
        """Take this driving frame (or these keypoints) as the neutral pose, explicitly."""
        self.neutral.set_neutral(keypoints if keypoints is not None else self.detect(frame))

    def calibrate_next(self) -> None:
        """X: the next animated frame becomes the neutral pose."""
        self.neutral.calibrate_next()

    def set_find_best(self, enabled: bool) -> None:
        """F: while on, every better-matching frame becomes the neutral pose."""
        self.neutral.set_find_best(enabled)

    def set_auto_window(self, seconds: float) -> None:
        """Until X, the best match in the stream's first ``seconds`` is the neutral pose (0: the first frame)."""
        self.neutral.window_s = seconds

    def match_reading(self, t: float | None = None) -> MatchReading:
        return self.neutral.reading(t)

    def reset_calibration(self) -> None:
        self.neutral.reset()

    # the dense motion field (detail transfer) ----------------------------------------------
    def set_motion_output(self, enabled: bool) -> str | None:
        """Keep each animated frame's dense motion field for :meth:`last_motion` (same forward, no
        extra work). None when that works; else the one-line reason (a backend that returns the
        picture only, e.g. ONNX Runtime) and nothing is kept."""
        decode = getattr(self.backend, "decode_with_motion", None)
        if enabled and decode is None:
            self._want_motion = False
            return (f"detail from the avatar needs the torch backend (the {self.backend.name} backend gives "
                    f"the picture only); it stays off.")
        self._want_motion = bool(enabled)
        self._last_motion = None
        return None

    def last_motion(self) -> MotionField | None:
        """The motion field of the picture the last :meth:`animate` returned (None unless asked for)."""
        return self._last_motion

    # the one route from a frame to a picture -----------------------------------------------
    def animate(self, frame: np.ndarray, *, keypoint_filter: KeypointFilter | None = None,
                t: float | None = None) -> np.ndarray:
        """One driving frame (HxWx3 RGB) -> the animated avatar, SxSx3 float32 RGB in [0,1]:
        detect -> filter -> neutral pose (``neutral.py``) -> relative motion -> decode. ``t``: the
        frame's time (``time.monotonic()`` by default), for the auto-calibration window."""
        kp = self.detect(frame)
        return self.animate_keypoints(keypoint_filter(kp) if keypoint_filter is not None else kp, t=t)

    def animate_keypoints(self, kp: Keypoints, *, t: float | None = None) -> np.ndarray:
        """:meth:`animate` from already-detected (and filtered) driving keypoints."""
        with self._lock:
            if self._source is None:
                raise RuntimeError("Animator.set_source() must be called before animate()")
            calibration = self.neutral.observe(kp, time.monotonic() if t is None else t)
            job = AnimateJob(self._source, kp, calibration)
        if not self._want_motion:
            return self.animate_batch([job])[0]
        device = self.backend.device
        driving = _jacobians_like(job.source.keypoints, self._driving(job).to(device))
        out = self.backend.decode_with_motion(job.source.encoded, job.source.keypoints.to(device), driving)
        self._last_motion = out.motion
        return _to_images(out.prediction)[0]

    def _driving(self, job: AnimateJob) -> Keypoints:
        device = job.source.keypoints.value.device
        if job.calibration is None:
            return job.driving.to(device)
        return self.motion.apply(job.source.keypoints, job.driving.to(device), job.calibration.neutral.to(device),
                                  job.calibration.scale)

    def animate_batch(self, jobs: Sequence[AnimateJob]) -> np.ndarray:
        """(N,S,S,3) float32: N driving poses of N prepared avatars (repeats allowed) in ONE batched
        decoder forward; each item equals the batch-1 result, whatever the other items are."""
        if not jobs:
            return np.zeros((0, self.size, self.size, 3), np.float32)
        device = self.backend.device
        driving = [_jacobians_like(job.source.keypoints, self._driving(job).to(device)) for job in jobs]
        # a model without jacobians and one with them cannot share a forward (Keypoints.cat): one forward
        # per kind, so no item's picture depends on what the others are
        groups: dict[bool, list[int]] = {}
        for i, kp in enumerate(driving):
            groups.setdefault(kp.has_jacobian, []).append(i)
        out = np.empty((len(jobs), self.size, self.size, 3), np.float32)
        for rows in groups.values():
            encoded = EncodedSource.cat([jobs[i].source.encoded for i in rows])
            kp_source = Keypoints.cat([jobs[i].source.keypoints.to(device) for i in rows])
            kp_driving = Keypoints.cat([driving[i] for i in rows])
            out[rows] = _to_images(self.backend.decode(encoded, kp_source, kp_driving))
        return out


def _jacobians_like(source: Keypoints, driving: Keypoints) -> Keypoints:
    """Driving keypoints without jacobians for an avatar with them (the remote schema allows it) get the
    avatar's own: source @ inverse(source) is the identity, which is what "no driving jacobian" means in
    the sparse motion (dense_motion.py). So every backend renders them (the exported graphs take
    jacobians) and they share a batch with the others."""
    if driving.jacobian is not None or source.jacobian is None:
        return driving
    return Keypoints(driving.value, source.jacobian.to(driving.value.device).expand(
        driving.value.shape[0], *source.jacobian.shape[1:]).clone())
