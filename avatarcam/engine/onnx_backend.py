"""ONNX Runtime backend: runs the exported stages (see :mod:`.export`).

Providers are tried in the order TensorRT > CUDA > CPU, keeping only those ONNX Runtime reports
available (and only the CPU one for ``device="cpu"``). A provider that fails to initialise (no
GPU, missing CUDA/TensorRT libraries) falls back to the CPU provider with a notice; the provider
actually used is ``backend.provider`` (``session.get_providers()[0]``).

Precision: the graphs are fp32. ``fp16`` is honoured only through TensorRT (``trt_fp16_enable``);
elsewhere the backend runs fp32 and says so (ONNX Runtime's CPU provider has no fast bf16 path).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import AvatarcamError
from .export import ExportedStages
from .options import Progress, notify

log = logging.getLogger(__name__)

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
CPU = "CPUExecutionProvider"


def onnxruntime_usable() -> str | None:
    """None when ONNX Runtime imports and has a CPU provider, else the reason."""
    try:
        import onnxruntime as ort
    except Exception as err:  # noqa: BLE001 - ImportError, missing DLLs (OSError), ...
        return f"onnxruntime cannot be imported ({type(err).__name__}: {err})"
    if CPU not in ort.get_available_providers():
        return "onnxruntime has no CPUExecutionProvider"
    return None


def provider_order(device: torch.device | str, available: Sequence[str],
                   requested: Sequence[str] | None = None) -> list[str]:
    """Providers to try, best first: the requested ones (default TensorRT > CUDA > CPU; CPU only for
    a CPU device) that ONNX Runtime has, always ending with the CPU provider."""
    device = torch.device(device)
    if requested is None:
        requested = PROVIDER_ORDER if device.type == "cuda" else (CPU,)
    out = [p for p in requested if p in available and p != CPU]
    return out + [CPU]


class OnnxBackend(ExportedStages):
    name = "onnx"

    def __init__(self, folder: str | os.PathLike, device: torch.device, precision: str = "fp32", *,
                 providers: Sequence[str] | None = None, progress: Progress | None = None) -> None:
        reason = onnxruntime_usable()
        if reason:
            raise AvatarcamError(f"ONNX backend unavailable: {reason}.")
        import onnxruntime as ort

        self._open_export(folder)
        self.device = torch.device(device)
        self._progress = progress
        order = provider_order(self.device, ort.get_available_providers(), providers)
        want_fp16 = precision == "fp16"
        self.sessions = {}
        for stage in ("kp_detector", "source_encoder", "generator"):
            self.sessions[stage] = self._session(ort, self.folder / f"{stage}.onnx", order, want_fp16)
        self.provider = self.sessions["generator"].get_providers()[0]
        self.requested_providers = order
        if self.provider != order[0]:
            notify(progress, f"ONNX Runtime: {order[0]} unusable here, running on {self.provider}.")
        self.precision = "fp16" if want_fp16 and self.provider == PROVIDER_ORDER[0] else "fp32"
        if precision != self.precision:
            notify(progress, f"ONNX backend runs {self.precision} on {self.provider} ({precision} needs "
                   f"{'TensorRT' if precision == 'fp16' else 'the torch backend'}).")

    def _session(self, ort, path: Path, order: list[str], fp16: bool):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: provider fallbacks are reported by us
        threads = torch.get_num_threads()
        if threads:
            opts.intra_op_num_threads = threads
        trt_cache = self.folder / "trt_cache"
        provider_args = []
        for p in order:
            if p == "TensorrtExecutionProvider":
                trt_cache.mkdir(parents=True, exist_ok=True)
                provider_args.append((p, {"trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
                                          "trt_engine_cache_path": str(trt_cache)}))
            else:
                provider_args.append(p)
        try:
            # Quiet: ONNX Runtime prints a page per unusable provider; the fallback is reported by us.
            ort.set_default_logger_severity(4)
            with contextlib.redirect_stdout(io.StringIO()):
                return ort.InferenceSession(str(path), sess_options=opts, providers=provider_args)
        except Exception as err:  # noqa: BLE001 - provider init failure: retry on the CPU alone
            if order == [CPU]:
                raise AvatarcamError(f"{path}: ONNX Runtime cannot load it ({err}); "
                                     "delete the folder to re-export.") from None
            notify(self._progress, f"ONNX Runtime: {order[0]} failed ({type(err).__name__}); using the CPU provider.")
            return ort.InferenceSession(str(path), sess_options=opts, providers=[CPU])
        finally:
            ort.set_default_logger_severity(3)

    def run_stage(self, stage: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[stage].run(None, feeds)
