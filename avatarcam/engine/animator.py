"""Animator: the engine's public face. Owns the model, the avatar and the neutral pose."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CheckpointError
from ..imaging import resize_square, to_rgb_float
from .backends import Backend, Progress, make_backend, to_image, to_tensor
from .checkpoint import CONFIG_KEY, load_module_weights, read_checkpoint
from .config import FOMMConfig
from .generator import EncodedSource, OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector
from .motion import Keypoints, RelativeMotion

KeypointFilter = Callable[[Keypoints], Keypoints]


@dataclass
class PreparedSource:
    """An avatar ready to animate: computed once, reusable when switching back to it."""

    image: np.ndarray  # 256x256x3 float32
    keypoints: Keypoints
    encoded: EncodedSource


@dataclass
class Calibration:
    keypoints: Keypoints  # the driving face's neutral pose
    scale: float  # movement-scale adaptation for the current avatar


class Animator:
    """Animate a still portrait with the motion of a driving face.

    >>> anim = Animator.from_checkpoint("vox-adv-cpk.pth.tar", device="cpu")
    >>> anim.set_source(portrait); anim.calibrate(neutral_frame)
    >>> out = anim.animate(frame)  # 256x256x3 float32 RGB in [0,1]
    """

    def __init__(self, kp_detector: KeypointDetector, generator: OcclusionAwareGenerator, *,
                 config: FOMMConfig | None = None, device: str = "auto", precision: str = "auto",
                 relative: bool = True, adapt_scale: bool = True, relative_jacobian: bool = True,
                 backend: Backend | str = "auto", progress: Progress | None = None,
                 checkpoint: str | os.PathLike | None = None, onnx_dir: str | os.PathLike | None = None,
                 providers: list[str] | None = None, channels_last: bool | None = None,
                 compile: bool = False, cuda_graphs: bool = False, verify_precision: bool = True) -> None:
        """``backend``: "auto" | "torch" | "onnx" or a Backend instance. ``progress`` receives one-line
        status messages during slow steps (ONNX export, compilation, precision check)."""
        self.config = config or FOMMConfig.vox256()
        self.size = self.config.image_size
        self.kp_detector = kp_detector
        self.generator = generator
        if backend is None or isinstance(backend, str):
            backend = make_backend(backend or "auto", kp_detector, generator, self.config, device=device,
                                   precision=precision, progress=progress, checkpoint=checkpoint,
                                   onnx_dir=onnx_dir, providers=providers, channels_last=channels_last,
                                   compile=compile, cuda_graphs=cuda_graphs, verify_precision=verify_precision)
        self.backend = backend
        self.motion = RelativeMotion(relative, adapt_scale, relative_jacobian)
        self.keypoint_filter: KeypointFilter | None = None
        self._source: PreparedSource | None = None
        self._neutral: Keypoints | None = None
        self._calibration: Calibration | None = None
        self._lock = threading.RLock()  # set_source / calibrate may come from another thread

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto", precision: str = "auto", *,
                        config: FOMMConfig | None = None, **options) -> Animator:
        """Load ``vox-adv-cpk.pth.tar`` (or a file in its layout); raises ``CheckpointError``.

        Options are those of ``Animator(...)``, e.g. ``backend="onnx"`` (exported once, cached next
        to the user's models keyed by this file's size and mtime) or ``progress=print``.
        """
        state = read_checkpoint(path)
        if config is None:
            stored = state.get(CONFIG_KEY)
            try:
                config = FOMMConfig.from_dict(stored) if stored else FOMMConfig.vox256()
            except (TypeError, ValueError):
                raise CheckpointError(f"{path}: its {CONFIG_KEY!r} entry is not a valid model config.") from None
        kp_detector, generator = KeypointDetector(config), OcclusionAwareGenerator(config)
        load_module_weights(kp_detector, state["kp_detector"], "kp_detector", path)
        load_module_weights(generator, state["generator"], "generator", path)
        options.setdefault("checkpoint", path)
        return cls(kp_detector.eval(), generator.eval(), config=config, device=device, precision=precision, **options)

    # properties ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def precision(self) -> str:
        return self.backend.precision

    @property
    def backend_name(self) -> str:
        """"torch" or "onnx"."""
        return self.backend.name

    @property
    def provider(self) -> str:
        """What actually runs the model: "torch-cpu", "torch-cuda", or the ONNX Runtime provider."""
        return getattr(self.backend, "provider", self.backend.name)

    def describe(self) -> str:
        """One line for status bars and logs, e.g. "torch-cpu bf16"."""
        provider = self.provider
        text = f"{provider} {self.precision}" if provider.startswith("torch") else f"onnx {provider} {self.precision}"
        return text + (" compiled" if getattr(self.backend, "compiled", False) else "")

    @property
    def relative(self) -> bool:
        return self.motion.relative

    @relative.setter
    def relative(self, value: bool) -> None:
        self.motion.relative = bool(value)

    @property
    def adapt_scale(self) -> bool:
        return self.motion.adapt_scale

    @adapt_scale.setter
    def adapt_scale(self, value: bool) -> None:
        with self._lock:
            self.motion.adapt_scale = bool(value)
            self._recalibrate()

    @property
    def relative_jacobian(self) -> bool:
        return self.motion.relative_jacobian

    @relative_jacobian.setter
    def relative_jacobian(self, value: bool) -> None:
        self.motion.relative_jacobian = bool(value)

    @property
    def has_source(self) -> bool:
        return self._source is not None

    @property
    def is_calibrated(self) -> bool:
        return self._calibration is not None

    # stages -------------------------------------------------------------------------------
    def _input(self, image: np.ndarray) -> torch.Tensor:
        return to_tensor(resize_square(to_rgb_float(image), self.size))

    def detect(self, frame: np.ndarray) -> Keypoints:
        """Keypoints of a face picture (any size; resized to the model's input)."""
        return self.backend.detect(self._input(frame))

    def prepare_source(self, image: np.ndarray) -> PreparedSource:
        """Everything that depends only on the avatar. Thread-safe and side-effect free."""
        img = resize_square(to_rgb_float(image), self.size)
        x = to_tensor(img)
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

    def calibrate(self, frame: np.ndarray | None = None, keypoints: Keypoints | None = None) -> None:
        """Take this driving frame (or these keypoints) as the neutral pose."""
        kp = keypoints if keypoints is not None else self.detect(frame)
        with self._lock:
            self._neutral = kp
            self._recalibrate()

    def reset_calibration(self) -> None:
        with self._lock:
            self._neutral = None
            self._calibration = None

    def _recalibrate(self) -> None:
        if self._neutral is None or self._source is None:
            self._calibration = None
            return
        scale = self.motion.movement_scale(self._source.keypoints, self._neutral)
        self._calibration = Calibration(self._neutral, scale)

    def animate_keypoints(self, kp_driving: Keypoints) -> np.ndarray:
        """Render the avatar for already-detected driving keypoints."""
        with self._lock:
            source = self._source
            if source is None:
                raise RuntimeError("Animator.set_source() must be called before animate()")
            if self._calibration is None:
                self._neutral = kp_driving
                self._recalibrate()
            calibration = self._calibration
        kp_norm = self.motion.apply(source.keypoints, kp_driving, calibration.keypoints, calibration.scale)
        return to_image(self.backend.decode(source.encoded, source.keypoints, kp_norm))

    def animate(self, frame: np.ndarray) -> np.ndarray:
        """One driving frame (HxWx3 RGB) -> the animated avatar, 256x256x3 float32 in [0,1].

        The first call without a calibration takes this frame as the neutral pose.
        """
        kp = self.detect(frame)
        if self.keypoint_filter is not None:
            kp = self.keypoint_filter(kp)
        return self.animate_keypoints(kp)
