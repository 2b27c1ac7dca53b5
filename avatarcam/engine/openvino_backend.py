"""OpenVINO backend: the exported graphs (:mod:`.export`) compiled for an Intel CPU, GPU or NPU.

* Devices are OpenVINO's names (CPU, GPU, GPU.1, NPU, AUTO). :func:`pick_device` chooses among the
  devices :func:`available_devices` lists (the one seam tests replace to fake an iGPU or an NPU).
* Precision: the keypoint detector and the source encoding always compile f32 (the keypoints and
  jacobians decide the geometry); the per-frame generator gets ``INFERENCE_PRECISION_HINT``
  bf16 / f16 / f32. OpenVINO applies the hint to the whole generator graph (its CPU plugin ignores
  per-node "keep fp32" marks), so unlike the torch backend the warp's arithmetic inside the
  generator runs in the reduced precision too; the accuracy check (>= 45 dB) guards the result.
  ``backend.precision`` is what OpenVINO reports it compiled, not what was asked.
* Compiled models are cached in ``<export folder>/openvino_cache`` (OpenVINO's ``CACHE_DIR``; the
  folder is keyed like the export), so later starts load instead of compiling
  (``backend.loaded_from_cache``).
* Threads: ``PERFORMANCE_HINT=LATENCY`` (one stream over the cores): the steadiest frame times
  under a competing busy process in ``scripts/benchmark.py --isolated``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import AvatarcamError
from .export import STAGES, ExportedStages, read_manifest
from .options import Progress, notify
from .precision import auto_precision

HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
CACHE_SUBDIR = "openvino_cache"
ACCELERATORS = ("GPU", "NPU")  # tried in this order by device="auto"


def openvino_usable() -> str | None:
    """None when OpenVINO imports, else the reason."""
    try:
        import openvino  # noqa: F401
    except Exception as err:  # noqa: BLE001 - ImportError, missing shared libraries (OSError), ...
        return f"openvino cannot be imported ({type(err).__name__}: {err})"
    return None


def openvino_version() -> str:
    import openvino as ov

    return ov.get_version().split("-")[0]


def available_devices() -> list[str]:
    """The devices OpenVINO can use here, e.g. ['CPU', 'GPU.0', 'GPU.1', 'NPU']."""
    import openvino as ov

    return list(ov.Core().available_devices)


def device_kind(device: str) -> str:
    return device.split(".")[0]


def accelerator(devices: Sequence[str]) -> str | None:
    """The Intel GPU (else NPU) among ``devices``, or None."""
    for kind in ACCELERATORS:
        for device in devices:
            if device_kind(device) == kind:
                return device
    return None


def pick_device(requested: str | None, torch_device: str, devices: Sequence[str]) -> str:
    """The OpenVINO device to compile for: ``requested`` if given; for ``torch_device="auto"`` an
    Intel GPU, else an NPU, else the CPU; for any other device the CPU."""
    if requested:
        return requested
    return (accelerator(devices) if torch_device == "auto" else None) or "CPU"


def resolve_openvino_precision(precision: str, device: str) -> str:
    """``auto``: f16 on a GPU/NPU (their native format), on the CPU the torch backend's CPU rule
    (bf16 where the CPU has native bf16, else fp32). Explicit precisions are asked for as given."""
    if precision != "auto":
        return precision
    return "fp16" if device_kind(device) in ACCELERATORS else auto_precision(torch.device("cpu"))


def describe_devices(devices: Sequence[str] | None = None) -> list[str]:
    """'CPU: Intel(R) Core(TM) ...' per device (for `avatarcam doctor`)."""
    import openvino as ov

    core = ov.Core()
    out = []
    for device in available_devices() if devices is None else devices:
        try:
            out.append(f"{device}: {core.get_property(device, 'FULL_DEVICE_NAME')}")
        except Exception:  # noqa: BLE001 - a device that cannot even name itself is still listed
            out.append(device)
    return out


class OpenVINOBackend(ExportedStages):
    name = "openvino"

    def __init__(self, folder: str | os.PathLike, ov_device: str = "CPU", precision: str = "fp32", *,
                 progress: Progress | None = None) -> None:
        reason = openvino_usable()
        if reason:
            raise AvatarcamError(f"OpenVINO backend unavailable: {reason}.")
        import openvino as ov

        self.folder = Path(folder)
        self.with_jacobian = bool(read_manifest(self.folder)["config"].get("estimate_jacobian", True))
        self.device = torch.device("cpu")  # where inputs and outputs live
        self.accuracy_db: float | None = None  # set by the factory when the precision was checked
        self.cache_dir = self.folder / CACHE_SUBDIR
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(self.cache_dir)})
        t0 = time.perf_counter()
        self.models = {stage: core.compile_model(str(self.folder / f"{stage}.onnx"), ov_device,
                                                 self._config(HINTS[precision] if stage == "generator" else "f32"))
                       for stage in STAGES}
        self.compile_seconds = time.perf_counter() - t0
        self.loaded_from_cache = all(_property(m, "LOADED_FROM_CACHE", False) for m in self.models.values())
        generator = self.models["generator"]
        self.provider = "+".join(_property(generator, "EXECUTION_DEVICES", [ov_device]))
        hint = _property(generator, "INFERENCE_PRECISION_HINT", None)
        self.precision = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(str(getattr(hint, "get_type_name",
                                                                                     lambda: hint)()), precision)
        if self.precision != precision:
            notify(progress, f"OpenVINO runs the generator in {self.precision} on {self.provider} "
                             f"({precision} is not supported there).")
        self._requests = {stage: m.create_infer_request() for stage, m in self.models.items()}
        self._locks = {stage: threading.Lock() for stage in STAGES}  # the avatar may be prepared on another thread
        action = "loaded from the cache" if self.loaded_from_cache else "compiled"
        notify(progress, f"OpenVINO {self.provider} {self.precision}: {action} in {self.compile_seconds:.1f} s.")

    @staticmethod
    def _config(hint: str) -> dict[str, str]:
        return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}

    def run_stage(self, stage: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._locks[stage]:
            result = self._requests[stage].infer(feeds)
            return [np.array(result[output]) for output in self.models[stage].outputs]  # copies: buffers are reused


def _property(compiled, name: str, default):
    try:
        return compiled.get_property(name)
    except Exception:  # noqa: BLE001 - not every plugin reports every property (AUTO, NPU)
        return default
