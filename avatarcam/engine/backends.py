"""The backend factory: which backend runs the networks, on which device, in which precision.

A backend runs three stages: ``detect`` (keypoint detector), ``encode`` (everything that depends
only on the avatar) and ``decode`` (dense motion + warp + decoder, batched over its inputs).
``backend="auto"`` is the torch backend (:mod:`.torch_backend`): the fastest on the CPUs measured
(bf16 halves the convolution time; ONNX Runtime's CPU provider only runs fp32) and the path
verified on CUDA by construction. The precision rules live in :mod:`.precision`.
"""

from __future__ import annotations

import os
from typing import Protocol

import torch

from ..errors import AvatarcamError
from .checkpoint import Networks
from .generator import EncodedSource
from .motion import Keypoints
from .options import PSNR_BAR_DB, EngineOptions, Progress, notify
from .precision import (
    cached_accuracy,
    passes,
    predictions,
    psnr,
    resolve_device,
    resolve_onnx_precision,
    resolve_precision,
    store_accuracy,
)
from .torch_backend import TorchBackend


class Backend(Protocol):
    name: str
    device: torch.device
    precision: str
    provider: str

    def detect(self, image: torch.Tensor) -> Keypoints: ...

    def encode(self, image: torch.Tensor) -> EncodedSource: ...

    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor: ...


def precision_accuracy(networks: Networks, device: torch.device, precision: str,
                       channels_last: bool | None = None) -> float:
    """PSNR (dB) of the prepared ``precision`` networks against the prepared fp32 networks, both on
    ``device`` and fed the same seeded inputs; only the two final pictures leave the device."""
    low = TorchBackend(networks, device, precision, channels_last=channels_last)
    reference = TorchBackend(networks, device, "fp32", channels_last=channels_last)
    got, want = predictions(low.render, reference.render, networks.config.image_size, device)
    return psnr(got, want)


def _verified_precision(networks: Networks, options: EngineOptions, device: torch.device, precision: str,
                        checkpoint: str | os.PathLike | None, progress: Progress | None) -> tuple[str, float]:
    """``precision`` if it stays >= PSNR_BAR_DB from fp32 (checked once per checkpoint, cached), else fp32."""
    db = cached_accuracy(checkpoint, networks.config, device, precision)
    if db is None:
        notify(progress, f"Checking {precision} accuracy against fp32...")
        db = precision_accuracy(networks, device, precision, options.channels_last)
        store_accuracy(checkpoint, networks.config, device, precision, db)
    if not passes(db):
        notify(progress, f"{precision} is {db:.1f} dB from fp32 (< {PSNR_BAR_DB:.0f} dB): using fp32.")
        return "fp32", db
    notify(progress, f"{precision}: {db:.1f} dB PSNR vs fp32 (bar {PSNR_BAR_DB:.0f} dB).")
    return precision, db


def _onnx_backend(networks: Networks, options: EngineOptions, device: torch.device,
                  checkpoint: str | os.PathLike | None, progress: Progress | None):
    """The ONNX Runtime backend, or None (with a notice) when ONNX Runtime or the export fails."""
    from .export import ensure_exported
    from .onnx_backend import OnnxBackend, onnxruntime_usable

    precision = resolve_onnx_precision(options.precision, device)  # a refusal before the slow export
    reason = onnxruntime_usable()
    if reason is None:
        try:
            folder = ensure_exported(networks, checkpoint=checkpoint, folder=options.onnx_dir, progress=progress)
            return OnnxBackend(folder, device, precision, providers=options.providers, progress=progress)
        except AvatarcamError:
            raise
        except Exception as err:  # noqa: BLE001 - exporter or runtime failure: torch still works
            reason = f"{type(err).__name__}: {err}"
    notify(progress, f"ONNX Runtime unusable ({reason}); falling back to the torch backend.")
    return None


def make_backend(networks: Networks, options: EngineOptions, *, checkpoint: str | os.PathLike | None = None,
                 progress: Progress | None = None):
    """The backend ``options`` ask for, on the resolved device and precision."""
    device = resolve_device(options.device)
    if options.backend == "onnx":
        backend = _onnx_backend(networks, options, device, checkpoint, progress)
        if backend is not None:
            return backend
    precision, db = resolve_precision(options.precision, device), None
    if options.precision == "auto" and precision != "fp32" and options.verify_precision:
        precision, db = _verified_precision(networks, options, device, precision, checkpoint, progress)
    backend = TorchBackend(networks, device, precision, channels_last=options.channels_last,
                           compile=options.compile, cuda_graphs=options.cuda_graphs, progress=progress)
    backend.accuracy_db = db
    return backend
