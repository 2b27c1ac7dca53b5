"""The backend factory: which backend runs the networks, on which device, in which precision.

A backend runs three stages: ``detect`` (keypoint detector), ``encode`` (everything that depends
only on the avatar) and ``decode`` (dense motion + warp + decoder, batched over its inputs).
``backend="auto"``: on CUDA and Apple's GPU the torch backend (:mod:`.torch_backend`, the path
verified on CUDA by construction; mps falls back to the CPU on an unsupported operation); with an
Intel GPU/NPU that OpenVINO lists, OpenVINO (:mod:`.openvino_backend`) on it; on a CPU the faster of
torch and OpenVINO, raced once in separate processes (:mod:`.runtime_race`) and cached with the
precision checks (``AVATARCAM_AUTO_BACKEND=torch|openvino`` skips the race). Every reduced ``auto``
precision is kept only at >= PSNR_BAR_DB from fp32. The precision rules live in :mod:`.precision`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

import torch

from ..errors import AvatarcamError
from .checkpoint import Networks
from .generator import EncodedSource
from .motion import Keypoints
from .options import AUTO_BACKEND_ENV, PSNR_BAR_DB, EngineOptions, Progress, notify
from .precision import (
    cached_accuracy,
    cached_result,
    passes,
    render_accuracy,
    resolve_device,
    resolve_onnx_precision,
    resolve_precision,
    seeded_inputs,
    store_accuracy,
    store_result,
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
    """The accuracy check (:func:`.precision.render_accuracy`, worst dB) of the prepared ``precision``
    networks against the prepared fp32 networks, both on ``device``."""
    low = TorchBackend(networks, device, precision, channels_last=channels_last)
    reference = TorchBackend(networks, device, "fp32", channels_last=channels_last)
    return render_accuracy(low.render, reference.render, networks.config.image_size, device)


def _accuracy_verdict(label: str, measure: Callable[[], float], checkpoint: str | os.PathLike | None,
                      networks: Networks, where: torch.device | str, what: str,
                      progress: Progress | None) -> tuple[bool, float]:
    """(passes, dB) of the accuracy check of ``label`` (e.g. "bf16", "OpenVINO bf16"): read from the cache
    (keyed by checkpoint, config, ``where`` and ``what``), else ``measure()``d once and stored; one notice
    either way. Every backend's reduced ``auto`` precision goes through here."""
    db = cached_accuracy(checkpoint, networks.config, where, what)
    if db is None:
        notify(progress, f"Checking {label} accuracy against fp32...")
        db = measure()
        store_accuracy(checkpoint, networks.config, where, what, db)
    if not passes(db):
        notify(progress, f"{label} is {db:.1f} dB from fp32 (< {PSNR_BAR_DB:.0f} dB): using fp32.")
        return False, db
    notify(progress, f"{label}: {db:.1f} dB PSNR vs fp32 (bar {PSNR_BAR_DB:.0f} dB).")
    return True, db


def _verified_precision(networks: Networks, options: EngineOptions, device: torch.device, precision: str,
                        checkpoint: str | os.PathLike | None, progress: Progress | None) -> tuple[str, float]:
    """``precision`` if it stays >= PSNR_BAR_DB from fp32 (checked once per checkpoint, cached), else fp32."""
    def measure() -> float:
        return precision_accuracy(networks, device, precision, options.channels_last)

    ok, db = _accuracy_verdict(precision, measure, checkpoint, networks, device, precision, progress)
    return (precision if ok else "fp32"), db


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


def _openvino_backend(networks: Networks, options: EngineOptions, checkpoint: str | os.PathLike | None,
                      progress: Progress | None):
    """The OpenVINO backend on the picked device in a checked precision, or None (with a notice) when
    OpenVINO or the export fails. A GPU/NPU that fails to compile falls back to OpenVINO's CPU."""
    from . import openvino_backend as ovb
    from .export import ensure_exported

    reason = ovb.openvino_usable()
    if reason is None:
        try:
            ov_device = ovb.pick_device(options.openvino_device, options.device, ovb.available_devices())
            folder = ensure_exported(networks, checkpoint=checkpoint, folder=options.onnx_dir, progress=progress)
            try:
                return _checked_openvino(folder, ov_device, networks, options, checkpoint, progress)
            except AvatarcamError:
                raise
            except Exception as err:  # noqa: BLE001 - a GPU/NPU driver or plugin failure: the CPU still works
                if ovb.device_kind(ov_device) == "CPU":
                    raise
                notify(progress, f"OpenVINO {ov_device} failed ({_first_line(err)}); using OpenVINO's CPU device.")
                return _checked_openvino(folder, "CPU", networks, options, checkpoint, progress)
        except AvatarcamError:
            raise
        except Exception as err:  # noqa: BLE001 - exporter or runtime failure: torch still works
            reason = _first_line(err)
    notify(progress, f"OpenVINO unusable ({reason}); falling back to the torch backend.")
    return None


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"


def _checked_openvino(folder, ov_device: str, networks: Networks, options: EngineOptions,
                      checkpoint: str | os.PathLike | None, progress: Progress | None):
    """OpenVINO on ``ov_device``; a reduced ``auto`` precision is kept only at >= PSNR_BAR_DB from the
    torch fp32 networks (checked once, cached per OpenVINO version and device)."""
    from .openvino_backend import OpenVINOBackend, openvino_version, resolve_openvino_precision

    precision = resolve_openvino_precision(options.precision, ov_device)
    backend = OpenVINOBackend(folder, ov_device, precision, progress=progress)
    if options.precision != "auto" or backend.precision == "fp32" or not options.verify_precision:
        return backend
    def measure() -> float:
        reference = TorchBackend(networks, torch.device("cpu"), "fp32")
        return render_accuracy(backend.render, reference.render, networks.config.image_size, "cpu")

    ok, db = _accuracy_verdict(f"OpenVINO {backend.precision}", measure, checkpoint, networks, f"openvino {ov_device}",
                               f"openvino-{openvino_version()} {backend.precision}", progress)
    if not ok:
        backend = OpenVINOBackend(folder, ov_device, "fp32", progress=progress)
    backend.accuracy_db = db
    return backend


def _torch_backend(networks: Networks, options: EngineOptions, device: torch.device,
                   checkpoint: str | os.PathLike | None, progress: Progress | None) -> TorchBackend:
    precision, db = resolve_precision(options.precision, device), None
    if options.precision == "auto" and precision != "fp32" and options.verify_precision:
        precision, db = _verified_precision(networks, options, device, precision, checkpoint, progress)
    backend = TorchBackend(networks, device, precision, channels_last=options.channels_last,
                           compile=options.compile, cuda_graphs=options.cuda_graphs, progress=progress)
    backend.accuracy_db = db
    return backend


def _torch_or_cpu(networks: Networks, options: EngineOptions, device: torch.device,
                  checkpoint: str | os.PathLike | None, progress: Progress | None) -> TorchBackend:
    """The torch backend; on Apple's GPU, one probe frame first, and the CPU (one notice) if an
    operation is not supported there."""
    if device.type != "mps":
        return _torch_backend(networks, options, device, checkpoint, progress)
    try:
        backend = _torch_backend(networks, options, device, checkpoint, progress)
        backend.render(*seeded_inputs(networks.config.image_size, device))
        return backend
    except (RuntimeError, NotImplementedError, TypeError) as err:
        notify(progress, f"Apple GPU (mps) cannot run this model ({_first_line(err)}); running on the CPU.")
    precision = "auto" if options.precision == "fp16" else options.precision
    return _torch_backend(networks, options.replace(precision=precision), torch.device("cpu"), checkpoint, progress)


def _auto_on_cpu(networks: Networks, options: EngineOptions, checkpoint: str | os.PathLike | None,
                 progress: Progress | None):
    """``backend="auto"`` without CUDA or Apple's GPU: OpenVINO on an Intel GPU/NPU it lists, else
    the faster of torch and OpenVINO on this CPU (raced once in separate processes, cached)."""
    from . import openvino_backend as ovb

    forced = os.environ.get(AUTO_BACKEND_ENV, "")
    if forced not in ("", "torch", "openvino"):
        raise AvatarcamError(f"{AUTO_BACKEND_ENV}={forced!r}; use torch or openvino (or unset it).")
    cpu = torch.device("cpu")
    if forced == "torch" or ovb.openvino_usable() is not None:
        return _torch_backend(networks, options, cpu, checkpoint, progress)
    if forced == "openvino" or (options.device == "auto" and ovb.accelerator(ovb.available_devices())):
        return _openvino_backend(networks, options, checkpoint, progress) or _torch_backend(
            networks, options, cpu, checkpoint, progress)
    race_key = f"race torch-{torch.__version__} openvino-{ovb.openvino_version()} {options.precision}"
    winner = cached_result(checkpoint, networks.config, cpu, race_key)
    if winner == "torch":
        return _torch_backend(networks, options, cpu, checkpoint, progress)
    openvino = _openvino_backend(networks, options, checkpoint, progress)
    if openvino is None or winner == "openvino":
        return openvino or _torch_backend(networks, options, cpu, checkpoint, progress)
    torch_backend = _torch_backend(networks, options, cpu, checkpoint, progress)
    winner = _race(torch_backend, openvino, checkpoint, networks, progress)
    store_result(checkpoint, networks.config, cpu, race_key, winner)
    return openvino if winner == "openvino" else torch_backend


def _race(torch_backend: TorchBackend, openvino, checkpoint, networks: Networks, progress: Progress | None) -> str:
    """"torch" or "openvino", whichever renders a frame faster, quiet and under load together (each timed
    in its own process: runtime_race.py)."""
    from . import runtime_race

    if checkpoint is None:
        return "openvino"  # nothing for a child process to load: the measured usual winner
    notify(progress, "Timing torch and OpenVINO on this CPU (once)...")
    size = networks.config.image_size
    specs = {"torch": {"backend": "torch", "checkpoint": str(checkpoint), "precision": torch_backend.precision,
                       "size": size},
             "openvino": {"backend": "openvino", "folder": str(openvino.folder), "device": "CPU",
                          "precision": openvino.precision, "size": size}}
    try:
        ms = runtime_race.race(specs)
    except AvatarcamError as err:
        notify(progress, f"{err}; using OpenVINO.")
        return "openvino"
    winner = min(ms, key=ms.get)
    notify(progress, f"torch {torch_backend.precision} {ms['torch']:.0f} ms, OpenVINO {openvino.precision} "
                     f"{ms['openvino']:.0f} ms per frame, quiet + under load: using {winner}.")
    return winner


def make_backend(networks: Networks, options: EngineOptions, *, checkpoint: str | os.PathLike | None = None,
                 progress: Progress | None = None):
    """The backend ``options`` ask for, on the resolved device and precision."""
    device = resolve_device(options.device)
    if options.backend == "openvino":
        if device.type != "cpu" and options.device != "auto":
            raise AvatarcamError(f"backend openvino runs on Intel CPUs, GPUs and NPUs, not {options.device}; "
                                 "use --device auto or cpu, or another backend.")
        backend = _openvino_backend(networks, options, checkpoint, progress)
        if backend is not None:
            return backend
        return _torch_backend(networks, options, torch.device("cpu"), checkpoint, progress)
    if options.backend == "onnx":
        backend = _onnx_backend(networks, options, device, checkpoint, progress)
        if backend is not None:
            return backend
    if options.backend == "auto" and device.type == "cpu":
        return _auto_on_cpu(networks, options, checkpoint, progress)
    return _torch_or_cpu(networks, options, device, checkpoint, progress)
