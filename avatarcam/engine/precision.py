"""The precision policy, decided here and nowhere else.

* ``auto``: CUDA or Apple's GPU (mps) -> fp16; a CPU with native bf16 (AVX512-BF16 / AMX / Arm BF16) -> bf16; any other
  CPU -> fp32. A reduced ``auto`` precision is then checked against fp32 (prepared fp32 modules on
  the same device, same inputs) and kept only at >= PSNR_BAR_DB; the result is cached on disk per
  checkpoint file, config, device, torch version, precision and check version, so later starts skip it.
* The check's inputs are like real use (:func:`check_inputs`): a face photo and copies of it moved
  like a head. Textured faces show a warp's coordinate error; a smooth picture hides it (a seeded
  smooth picture passed OpenVINO's all-bf16 generator at 45.8 dB, 39-42 dB on animated faces).
* fp16 on the CPU is refused (emulated, ~80x slower).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import AvatarcamError
from ..paths import atomic_write_text, file_identity, user_data_dir
from .config import FOMMConfig
from .options import PSNR_BAR_DB, check_choice

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CACHE_FILE = "precision_checks.json"
CHECK_VERSION = 2  # in the cache key: a result of an older check is not reused (2: face pictures)
# (angle degrees, zoom, shift x, shift y in [-1,1] units): a turn + nod + zoom each way, as big as a
# lively head moves between the calibrated pose and a frame
CHECK_MOTIONS = ((6.0, 1.04, 0.05, -0.03), (-5.0, 0.97, -0.04, 0.04))


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 dot products natively (x86 AVX512-BF16 or AMX-BF16,
    Arm FEAT_BF16). ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is not enough: in torch
    2.x it is true on any AVX-512 CPU, where bf16 is emulated and slower than fp32."""
    env = os.environ.get("AVATARCAM_CPU_BF16")
    if env in ("0", "1"):
        return env == "1"
    system = platform.system()
    try:
        if system == "Linux":
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    key = line.split(":", 1)[0].strip().lower()
                    if key in ("flags", "features"):  # x86 "flags", Arm "Features"
                        flags = set(line.split(":", 1)[1].split())
                        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
            return False
        if system == "Darwin":
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
            return out == "1"
    except (OSError, subprocess.SubprocessError, ValueError):
        return False
    return _bf16_measures_faster()  # Windows and others: no flag list to read, so measure


def _bf16_measures_faster() -> bool:
    """A bf16 convolution at least 1.3x faster than fp32 means the CPU has native bf16."""
    try:
        x, w = torch.randn(1, 128, 32, 32), torch.randn(128, 128, 3, 3)
        times = {}
        with torch.inference_mode():
            for dtype in (torch.float32, torch.bfloat16):
                xx, ww = x.to(dtype), w.to(dtype)
                F.conv2d(xx, ww, padding=1)
                t0 = time.perf_counter()
                for _ in range(5):
                    F.conv2d(xx, ww, padding=1)
                times[dtype] = time.perf_counter() - t0
        return times[torch.bfloat16] * 1.3 < times[torch.float32]
    except Exception:  # noqa: BLE001
        return False


def mps_available() -> bool:
    """Whether torch reports a usable Apple GPU (Metal Performance Shaders)."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA if usable, else Apple's GPU (mps) if torch reports it, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AvatarcamError("device 'cuda' requested but no CUDA GPU is usable here; use --device cpu "
                             "(or install a CUDA build of PyTorch).")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise AvatarcamError(f"unknown device {device!r}; use auto, cpu, cuda or mps.")
    return torch.device(device)


def auto_precision(device: torch.device, native_bf16: bool | None = None) -> str:
    """The rule behind ``precision="auto"`` (before the accuracy check)."""
    if device.type in ("cuda", "mps"):
        return "fp16"
    if device.type == "cpu":
        return "bf16" if (cpu_has_native_bf16() if native_bf16 is None else native_bf16) else "fp32"
    return "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    check_choice("precision", precision, tuple(DTYPES) + ("auto",))
    if precision == "auto":
        return auto_precision(device)
    if precision == "fp16" and device.type == "cpu":
        raise AvatarcamError("fp16 on the CPU is ~80x slower than fp32; use --precision fp32 or bf16 on the CPU.")
    return precision


def resolve_onnx_precision(precision: str, device: torch.device) -> str:
    """What to ask ONNX Runtime for: its graphs are fp32, and fp16 is honoured only through TensorRT
    (the backend reports what it really runs)."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return resolve_precision(precision, device)


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """PSNR in dB of two images in [0,1] (inf when equal); tensors may be on any device."""
    a, b = (torch.as_tensor(x).detach().cpu().double() for x in (a, b))
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def moved(image: torch.Tensor, angle_deg: float, zoom: float, tx: float, ty: float) -> torch.Tensor:
    """``image`` (B,3,S,S) rotated, zoomed and shifted (reflected at the borders), like a moving head."""
    a = math.radians(angle_deg)
    theta = torch.tensor([[[math.cos(a) / zoom, -math.sin(a) / zoom, tx],
                           [math.sin(a) / zoom, math.cos(a) / zoom, ty]]], dtype=image.dtype)
    grid = F.affine_grid(theta.expand(image.shape[0], 2, 3), list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, padding_mode="reflection", align_corners=False)


def seeded_inputs(size: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(source, driving) (1,3,S,S) in [0,1], the same on every machine: a smooth seeded picture and
    a moved copy of it (made here: no data needed). For tracing and timing; the accuracy check uses
    :func:`check_inputs`."""
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 6, 6, generator=gen)
    source = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return source.to(device), moved(source, *CHECK_MOTIONS[0]).to(device)


@lru_cache(maxsize=4)
def face_picture(size: int) -> torch.Tensor:
    """(1,3,S,S) in [0,1]: scikit-image's astronaut portrait (offline, a dependency) cropped to her face."""
    from skimage.data import astronaut

    crop = torch.from_numpy(astronaut()[0:300, 105:405].copy()).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(crop, size=(size, size), mode="area")


def check_inputs(size: int, device: torch.device | str = "cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(source, driving) pairs like real use: a face photo and copies of it moved by CHECK_MOTIONS."""
    source = face_picture(size)
    return [(source.to(device), moved(source, *motion).to(device)) for motion in CHECK_MOTIONS]


Render = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def render_accuracy(low: Render, reference: Render, size: int, device: torch.device | str) -> float:
    """The accuracy check, one for every backend: the worst PSNR (dB) of ``low``'s predictions against
    ``reference``'s on :func:`check_inputs`, both fed on ``device`` (nothing moves between devices)."""
    return min(psnr(low(source, driving), reference(source, driving))
               for source, driving in check_inputs(size, device))


def _cache_key(checkpoint: str | os.PathLike | None, config: FOMMConfig, device: torch.device | str,
               precision: str) -> str | None:
    identity = file_identity(checkpoint) if checkpoint is not None else None
    if identity is None:
        return None
    blob = json.dumps([list(identity), config.to_dict(), str(device), torch.__version__, precision, CHECK_VERSION],
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()


def _read_cache() -> dict:
    try:
        data = json.loads((user_data_dir() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_accuracy(checkpoint, config: FOMMConfig, device: torch.device | str, precision: str) -> float | None:
    """The stored check result (dB) for this checkpoint file as it is now, config, device, torch and
    precision (``device``/``precision`` may name another runtime's, e.g. "openvino CPU")."""
    value = cached_result(checkpoint, config, device, precision)
    return float(value) if isinstance(value, (int, float)) else None


def store_accuracy(checkpoint, config: FOMMConfig, device: torch.device | str, precision: str, db: float) -> None:
    store_result(checkpoint, config, device, precision, db)


def cached_result(checkpoint, config: FOMMConfig, device: torch.device | str, what: str):
    """A stored JSON value (a check's dB, the CPU speed race's winner) for this checkpoint file as it
    is now, config, device, torch version and ``what``; None when there is none."""
    return _read_cache().get(_cache_key(checkpoint, config, device, what))


def store_result(checkpoint, config: FOMMConfig, device: torch.device | str, what: str, value) -> None:
    key = _cache_key(checkpoint, config, device, what)
    if key is None:
        return
    data = _read_cache()
    data[key] = value
    try:
        atomic_write_text(user_data_dir() / CACHE_FILE, json.dumps(data, indent=1))
    except OSError:
        pass  # a read-only data dir only costs the check again next time


def passes(db: float) -> bool:
    return db >= PSNR_BAR_DB  # NaN (fp16 overflow) fails too
