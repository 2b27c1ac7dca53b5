"""How the engine runs: one options object, its allowed values declared once.

The CLI (``choices=``), the settings validation and the GUI's settings dialog all read the
tuples below, so a new device, precision or backend is added here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from ..errors import AvatarcamError

log = logging.getLogger("avatarcam.engine")

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnx", "openvino")
# OpenVINO device kinds ("GPU.0", "GPU.1" name one of several); AUTO lets OpenVINO pick.
OPENVINO_DEVICES = ("AUTO", "CPU", "GPU", "NPU")
# Environment override of backend="auto" on the CPU ("torch" or "openvino"): skips the speed race.
AUTO_BACKEND_ENV = "AVATARCAM_AUTO_BACKEND"

# Reduced precision is kept only if the prediction stays this close to fp32 (PSNR, dB).
PSNR_BAR_DB = 45.0
# Seconds at the start of a stream searched for the best neutral pose (engine/neutral.py); torch-free here
# so that settings and the CLI can read it.
NEUTRAL_WINDOW_RANGE = (0.0, 60.0)
NEUTRAL_MODES = ("auto", "find-best", "manual")  # how the neutral pose is chosen (engine/neutral.py)

_CHOICES = {"device": DEVICES, "precision": PRECISIONS, "backend": BACKENDS}


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a one-line error naming the allowed values."""
    if value not in choices:
        raise AvatarcamError(f"unknown {name} {value!r}; use {', '.join(choices)}.")
    return value


@dataclass(frozen=True)
class EngineOptions:
    """Where and how the model runs. Validated on construction (one-line ``AvatarcamError``).

    ``device``: auto (CUDA if usable, else CPU) | cpu | cuda | mps.
    ``precision``: auto (fastest precision that stays >= PSNR_BAR_DB from fp32) | fp32 | fp16 | bf16.
    ``backend``: auto (CUDA/MPS: torch; an Intel GPU/NPU: openvino; a CPU: the faster of torch and
    openvino, measured once) | torch | onnx (ONNX Runtime) | openvino (both run the ONNX export, made
    once and cached).
    ``compile``: ``torch.compile`` the per-frame decoder (minutes on first use).
    ``cuda_graphs``: replay the per-frame decoder as a CUDA graph (CUDA only).
    ``channels_last``: None = the measured default for the device.
    ``verify_precision``: check a reduced ``auto`` precision against fp32 at load (result cached on disk).
    ``onnx_dir``: where the ONNX export lives (None = the user's cache, keyed by checkpoint).
    ``providers``: ONNX Runtime providers to try, best first (None = TensorRT > CUDA > CPU).
    ``openvino_device``: CPU | GPU[.N] | NPU | AUTO (None = from ``device``: cpu -> CPU; auto -> an
    Intel GPU, else an NPU, else the CPU, among the devices OpenVINO lists).
    """

    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    compile: bool = False
    cuda_graphs: bool = False
    channels_last: bool | None = None
    verify_precision: bool = True
    onnx_dir: str | None = None
    providers: tuple[str, ...] | None = None
    openvino_device: str | None = None

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            # "cuda:1" names a GPU by index; everything else must be a declared choice
            if name == "device" and isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit():
                continue
            check_choice(name, value, choices)
        if self.openvino_device is not None and self.openvino_device.split(".")[0] not in OPENVINO_DEVICES:
            raise AvatarcamError(f"unknown OpenVINO device {self.openvino_device!r}; use "
                                 f"{', '.join(OPENVINO_DEVICES)} (GPU.1 names a second GPU).")
        if self.providers is not None and not isinstance(self.providers, tuple):
            object.__setattr__(self, "providers", tuple(self.providers))

    def replace(self, **changes) -> EngineOptions:
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


Progress = Callable[[str], None]


def notify(progress: Progress | None, message: str) -> None:
    """Log a one-line status message and hand it to ``progress`` (slow steps: export, compile, checks)."""
    log.info(message)
    if progress is not None:
        progress(message)
