"""OpenVINO backend: the exported graphs (:mod:`.export`) compiled for an Intel CPU, GPU or NPU.

* Devices are OpenVINO's names (CPU, GPU, GPU.1, NPU, AUTO). :func:`pick_device` chooses among the
  devices :func:`available_devices` lists (the one seam tests replace to fake an iGPU or an NPU).
* Precision: the keypoint detector and the source encoding always compile f32 (the keypoints and
  jacobians decide the geometry). OpenVINO applies ``INFERENCE_PRECISION_HINT`` to a whole compiled
  model, and its CPU plugin ignores per-node "keep fp32" marks (``disable_fp16_compression`` runtime
  info: checked with 2026.4, the runtime model still ran the flow's arithmetic in bf16). So in a
  reduced precision the per-frame generator runs as the export's precision stages
  (:func:`.export.split_generator`): the geometry stages (sparse motions, heatmaps, mask softmax,
  flow, every GridSample) compiled f32, the conv stacks (dense-motion hourglass, decoder) with the
  bf16/f16 hint, chained through OpenVINO tensors without copies: the torch backend's precision
  split. fp32 runs the single generator graph. ``backend.precision`` is what OpenVINO reports it
  compiled for the conv stacks, not what was asked. ``split=False`` compiles the single graph at
  the reduced hint (geometry in bf16 too: faster, and refused by the accuracy check; kept for
  measurements and tests).
* Compiled models are cached in ``<export folder>/openvino_cache`` (OpenVINO's ``CACHE_DIR``; the
  folder is keyed like the export), so later starts load instead of compiling
  (``backend.loaded_from_cache``).
* Threads: :data:`THREAD_PROPERTIES` (``PERFORMANCE_HINT=LATENCY``: one stream over the cores);
  ``properties`` adds or overrides OpenVINO compile properties (``scripts/bench_threads.py`` compares
  thread settings with it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import AvatarcamError
from .export import GENERATOR_STAGES, STAGES, ExportedStages
from .options import Progress, notify
from .precision import auto_precision

HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# one stream over the cores, OpenVINO's own thread pinning: measured against the other thread settings,
# quiet and beside a busy process, by scripts/bench_threads.py (docs/performance.md, "Threads")
THREAD_PROPERTIES = {"PERFORMANCE_HINT": "LATENCY"}
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
                 split: bool = True, properties: dict[str, str] | None = None,
                 progress: Progress | None = None) -> None:
        reason = openvino_usable()
        if reason:
            raise AvatarcamError(f"OpenVINO backend unavailable: {reason}.")
        import openvino as ov

        manifest = self._open_export(folder)
        self.device = torch.device("cpu")  # where inputs and outputs live
        self.accuracy_db: float | None = None  # set by the factory when the precision was checked
        self.cache_dir = self.folder / CACHE_SUBDIR
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(self.cache_dir)})
        t0 = time.perf_counter()

        def compile_file(file: str, hint: str):
            config = {**THREAD_PROPERTIES, **(properties or {}), "INFERENCE_PRECISION_HINT": hint}
            return core.compile_model(str(self.folder / file), ov_device, config)

        self.models = {stage: compile_file(f"{stage}.onnx", "f32") for stage in STAGES if stage != "generator"}
        if precision == "fp32" or not split:
            self.generator_stages = [{"file": "generator.onnx", "reduced": True, "inputs": [], "outputs": []}]
        else:
            self.generator_stages = manifest[GENERATOR_STAGES]
        self.generator_models = [compile_file(st["file"], HINTS[precision] if st["reduced"] else "f32")
                                 for st in self.generator_stages]
        self.compile_seconds = time.perf_counter() - t0
        compiled = [*self.models.values(), *self.generator_models]
        self.loaded_from_cache = all(_property(m, "LOADED_FROM_CACHE", False) for m in compiled)
        conv_stack = next(m for st, m in zip(self.generator_stages, self.generator_models, strict=True)
                          if st["reduced"])
        self.provider = "+".join(_property(conv_stack, "EXECUTION_DEVICES", [ov_device]))
        hint = _property(conv_stack, "INFERENCE_PRECISION_HINT", None)
        self.precision = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(str(getattr(hint, "get_type_name",
                                                                                     lambda: hint)()), precision)
        if self.precision != precision:
            notify(progress, f"OpenVINO runs the generator in {self.precision} on {self.provider} "
                             f"({precision} is not supported there).")
        self._requests = {stage: m.create_infer_request() for stage, m in self.models.items()}
        self._generator_requests = [m.create_infer_request() for m in self.generator_models]
        self._locks = {stage: threading.Lock() for stage in STAGES}  # the avatar may be prepared on another thread
        action = "loaded from the cache" if self.loaded_from_cache else "compiled"
        notify(progress, f"OpenVINO {self.provider} {self.precision}: {action} in {self.compile_seconds:.1f} s.")

    def run_stage(self, stage: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._locks[stage]:
            if stage == "generator":
                return [self._run_generator(feeds)]
            result = self._requests[stage].infer(feeds)
            return [np.array(result[output]) for output in self.models[stage].outputs]  # copies: buffers are reused

    def _run_generator(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The generator's stages in order; a stage reads the earlier stages' output tensors in place."""
        import openvino as ov

        if len(self._generator_requests) == 1:
            return np.array(self._generator_requests[0].infer(feeds)["prediction"])
        made: dict[str, object] = {}
        for stage, request in zip(self.generator_stages, self._generator_requests, strict=True):
            for name in stage["inputs"]:
                request.set_tensor(name, made[name] if name in made else ov.Tensor(feeds[name], shared_memory=True))
            request.infer()
            made.update((name, request.get_tensor(name)) for name in stage["outputs"])
        return np.array(made["prediction"].data)  # a copy: the request reuses its buffers


def _property(compiled, name: str, default):
    try:
        return compiled.get_property(name)
    except Exception:  # noqa: BLE001 - not every plugin reports every property (AUTO, NPU)
        return default
