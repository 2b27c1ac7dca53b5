"""Backends run the three model stages; the Animator owns the motion logic around them.

Stages: ``detect`` (keypoint detector on one frame), ``encode`` (everything that depends only on
the avatar) and ``decode`` (dense motion + warp + decoder for one frame).

Selection rules (measured by ``scripts/benchmark.py``, numbers in ``docs/performance.md``):

* precision ``auto``: CUDA -> fp16; a CPU with native bf16 (AVX512-BF16 / AMX / Arm BF16) ->
  bf16, confirmed on the first avatar against fp32 (>= 45 dB PSNR, else back to fp32);
  any other CPU -> fp32. fp16 on the CPU is refused (emulated, ~80x slower).
* backend ``auto``: the torch backend (derived fast modules, see :mod:`.fast`). It was the
  fastest on the CPU we measured (bf16 halves the convolution time; ONNX Runtime's CPU
  provider only runs fp32), and it is the path verified on CUDA by construction.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

import numpy as np
import torch

from ..errors import AvatarcamError
from .fast import build_fast
from .generator import EncodedSource, OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector
from .motion import Keypoints

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnx")
PSNR_BAR_DB = 45.0  # a reduced precision must stay this close to fp32 to be chosen automatically

Progress = Callable[[str], None]


def notify(progress: Progress | None, message: str) -> None:
    log.info(message)
    if progress is not None:
        progress(message)


# hardware ---------------------------------------------------------------------------------
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
                torch.nn.functional.conv2d(xx, ww, padding=1)
                t0 = time.perf_counter()
                for _ in range(5):
                    torch.nn.functional.conv2d(xx, ww, padding=1)
                times[dtype] = time.perf_counter() - t0
        return times[torch.bfloat16] * 1.3 < times[torch.float32]
    except Exception:  # noqa: BLE001
        return False


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AvatarcamError("device 'cuda' requested but no CUDA GPU is usable here; use --device cpu "
                             "(or install a CUDA build of PyTorch).")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise AvatarcamError(f"unknown device {device!r}; use auto, cpu or cuda.")
    return torch.device(device)


def auto_precision(device: torch.device, native_bf16: bool | None = None) -> str:
    """The rule behind ``precision="auto"`` (before the per-avatar accuracy check)."""
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu":
        return "bf16" if (cpu_has_native_bf16() if native_bf16 is None else native_bf16) else "fp32"
    return "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return auto_precision(device)
    if precision not in DTYPES:
        raise AvatarcamError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16.")
    if precision == "fp16" and device.type == "cpu":
        raise AvatarcamError("fp16 on the CPU is ~80x slower than fp32; use --precision fp32 or bf16 on the CPU.")
    return precision


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """PSNR in dB of two images in [0,1] (inf when equal)."""
    a = torch.as_tensor(a).double()
    b = torch.as_tensor(b).double()
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


# backends ---------------------------------------------------------------------------------
class Backend(Protocol):
    device: torch.device
    precision: str
    name: str
    provider: str

    def detect(self, image: torch.Tensor) -> Keypoints: ...

    def encode(self, image: torch.Tensor) -> EncodedSource: ...

    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor: ...


class TorchBackend:
    """PyTorch on a device, running derived inference modules (:mod:`.fast`): BatchNorm folded,
    sub-pixel up blocks, weights in the compute dtype, channels_last where it measured faster.
    The keypoint detector always runs fp32 (5% of the work; it decides the geometry).

    Options: ``channels_last`` (default: on for CPU and CUDA), ``compile`` (``torch.compile`` of
    the per-frame decoder, warmed up here; off by default, see docs/performance.md),
    ``cuda_graphs`` (replay the per-frame decoder as a CUDA graph; CUDA only, opt-in).
    """

    name = "torch"

    def __init__(self, kp_detector: KeypointDetector, generator: OcclusionAwareGenerator,
                 device: torch.device, precision: str, *, channels_last: bool | None = None,
                 compile: bool = False, cuda_graphs: bool = False, progress: Progress | None = None,
                 image_size: int = 256) -> None:
        self.device = device
        self.image_size = image_size
        self.precision = precision
        self.provider = f"torch-{device.type}"
        self.reference_kp_detector = kp_detector
        self.reference_generator = generator
        self.channels_last = device.type in ("cpu", "cuda") if channels_last is None else bool(channels_last)
        self.compile_seconds = 0.0
        self.compiled = False
        self._progress = progress
        self._build()
        self._decode_fn = self.fast_generator.decode_tensors
        self._graph: _CudaGraphDecoder | None = None
        if compile:
            self._compile()
        if cuda_graphs:
            if device.type != "cuda":
                notify(progress, "CUDA graphs need a CUDA device; ignored.")
            else:
                self._graph = _CudaGraphDecoder(self._decode_fn)

    def _build(self) -> None:
        self.fast_kp_detector, self.fast_generator = build_fast(
            self.reference_kp_detector, self.reference_generator, dtype=DTYPES[self.precision],
            channels_last=self.channels_last, detector_dtype=torch.float32, device=self.device)

    def set_precision(self, precision: str) -> None:
        """Switch the compute precision (rebuilds the derived modules; drops compile/graphs)."""
        self.precision = resolve_precision(precision, self.device)
        self._build()
        self._decode_fn = self.fast_generator.decode_tensors
        self._graph = None

    def _compile(self) -> None:
        notify(self._progress, "Compiling the model with torch.compile (once per start; may take a minute)...")
        t0 = time.perf_counter()
        try:
            import torch._inductor.config as inductor_config

            fn = torch.compile(self.fast_generator.decode_tensors, dynamic=False)
            # freezing: weights become constants, so oneDNN gets them prepacked (measured ~12% faster on CPU)
            with torch.inference_mode(), inductor_config.patch(freezing=True):
                s = self.image_size
                enc, kp = self.encode(torch.rand(1, 3, s, s)), self.detect(torch.rand(1, 3, s, s))
                for _ in range(2):  # warm-up: the first calls compile
                    fn(enc.features, enc.small, kp["value"], kp["value"], kp.get("jacobian"), kp.get("jacobian"))
            self._decode_fn = fn
            self.compiled = True
        except Exception as err:  # noqa: BLE001 - no compiler, unsupported platform, ...: stay eager
            first_line = (str(err).strip().splitlines() or [""])[0]
            notify(self._progress, f"torch.compile unavailable ({type(err).__name__}: {first_line}); running eager.")
        self.compile_seconds = time.perf_counter() - t0
        if self.compiled:
            notify(self._progress, f"Model compiled in {self.compile_seconds:.1f} s.")

    @torch.inference_mode()
    def detect(self, image: torch.Tensor) -> Keypoints:
        kp = self.fast_kp_detector(image.to(self.device, torch.float32))
        return {k: v.float() for k, v in kp.items()}

    @torch.inference_mode()
    def encode(self, image: torch.Tensor) -> EncodedSource:
        return self.fast_generator.encode(image.to(self.device, torch.float32))

    @torch.inference_mode()
    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        args = (encoded.features.float(), encoded.small.float(), kp_source["value"].float(),
                kp_driving["value"].float(), _jac(kp_source), _jac(kp_driving))
        if self._graph is not None:
            return self._graph(*args)
        return self._decode_fn(*args).float()


def _jac(kp: Keypoints) -> torch.Tensor | None:
    j = kp.get("jacobian")
    return j.float() if j is not None else None


class _CudaGraphDecoder:
    """Captures ``fn`` once on static input buffers and replays it (CUDA only).

    Every call copies its inputs into the captured buffers, replays, and returns a clone of the
    output buffer, so callers never alias graph memory. Captured lazily on the first call (the
    shapes are then fixed; a different shape re-captures).
    """

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_in: list[torch.Tensor | None] = []
        self.static_out: torch.Tensor | None = None
        self.signature: tuple | None = None

    def _capture(self, args: tuple) -> None:
        self.static_in = [a.clone() if a is not None else None for a in args]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up outside the graph (cuDNN autotuning, allocations)
                self.fn(*self.static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self.fn(*self.static_in).float()
        self.signature = tuple(None if a is None else (tuple(a.shape), a.dtype) for a in args)

    def __call__(self, *args: torch.Tensor | None) -> torch.Tensor:
        signature = tuple(None if a is None else (tuple(a.shape), a.dtype) for a in args)
        if self.graph is None or signature != self.signature:
            self._capture(args)
        for dst, src in zip(self.static_in, args, strict=True):
            if dst is not None:
                dst.copy_(src)
        self.graph.replay()
        return self.static_out.clone()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 [0,1] -> (1,3,H,W)."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) -> HxWx3 float32 numpy."""
    return tensor[0].detach().float().permute(1, 2, 0).cpu().numpy().copy()


# selection --------------------------------------------------------------------------------
def precision_accuracy(backend: TorchBackend, size: int = 256) -> float:
    """PSNR (dB) of the backend's prediction vs the reference fp32 modules on the astronaut
    portrait driven by a warped copy of itself (the same test image for every user)."""
    from ..demo import astronaut_face, head_motion, warp_image

    face = astronaut_face(size)
    src = to_tensor(face.astype(np.float32) / 255)
    drv = to_tensor(warp_image(face, head_motion(20)).astype(np.float32) / 255)
    with torch.inference_mode():
        ref_det = backend.reference_kp_detector
        kp_s = {k: v.float() for k, v in ref_det(src.to(backend.device)).items()}
        kp_d = {k: v.float() for k, v in ref_det(drv.to(backend.device)).items()}
        low = backend.decode(backend.encode(src), kp_s, kp_d)
        gen = backend.reference_generator
        ref = gen.decode(gen.encode_source(src.to(backend.device)), kp_s, kp_d, with_deformed=False)["prediction"]
    return psnr(low.cpu(), ref.float().cpu())


_ACCURACY_CACHE: dict[tuple, float] = {}  # (checkpoint file, config, device, precision) -> dB


def _accuracy_key(checkpoint, config, device: torch.device, precision: str) -> tuple | None:
    if checkpoint is None:
        return None
    try:
        st = os.stat(checkpoint)
    except OSError:
        return None
    return (os.path.abspath(checkpoint), st.st_size, st.st_mtime_ns, repr(config), str(device), precision)


def make_backend(name: str, kp_detector: KeypointDetector, generator: OcclusionAwareGenerator, config, *,
                 device: str = "auto", precision: str = "auto", progress: Progress | None = None,
                 checkpoint=None, onnx_dir=None, providers=None, channels_last: bool | None = None,
                 compile: bool = False, cuda_graphs: bool = False, verify_precision: bool = True):
    """Build the backend named ``auto``, ``torch`` or ``onnx`` (see the module docstring for the rules)."""
    if name not in BACKENDS:
        raise AvatarcamError(f"unknown backend {name!r}; use auto, torch or onnx.")
    dev = resolve_device(device)
    if precision not in PRECISIONS:
        raise AvatarcamError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16.")
    if name == "onnx":
        from .export import ensure_exported
        from .onnx_backend import OnnxBackend, onnxruntime_usable

        reason = onnxruntime_usable()
        if reason is None:
            try:
                folder = ensure_exported(kp_detector, generator, config, checkpoint=checkpoint, folder=onnx_dir,
                                         progress=progress)
                onnx_precision = "fp16" if precision == "auto" and dev.type == "cuda" else precision
                if onnx_precision == "fp16" and dev.type == "cpu":
                    resolve_precision("fp16", dev)  # the same clear refusal as the torch backend
                return OnnxBackend(folder, dev, "fp32" if onnx_precision == "auto" else onnx_precision,
                                   providers=providers, progress=progress)
            except AvatarcamError:
                raise
            except Exception as err:  # noqa: BLE001 - exporter or runtime failure: torch still works
                reason = f"{type(err).__name__}: {err}"
        notify(progress, f"ONNX Runtime unusable ({reason}); falling back to the torch backend.")
    resolved = resolve_precision(precision, dev)
    backend = TorchBackend(kp_detector, generator, dev, resolved, channels_last=channels_last, compile=compile,
                           cuda_graphs=cuda_graphs, progress=progress, image_size=config.image_size)
    if precision == "auto" and resolved != "fp32" and verify_precision:
        key = _accuracy_key(checkpoint, config, dev, resolved)
        db = _ACCURACY_CACHE.get(key) if key is not None else None
        if db is None:
            notify(progress, f"Checking {resolved} accuracy against fp32...")
            db = precision_accuracy(backend, config.image_size)
            if key is not None:
                _ACCURACY_CACHE[key] = db
        backend.accuracy_db = db
        if not db >= PSNR_BAR_DB:  # NaN (fp16 overflow) fails too
            notify(progress, f"{resolved} is {db:.1f} dB from fp32 (< {PSNR_BAR_DB:.0f} dB): using fp32.")
            backend.set_precision("fp32")
        else:
            notify(progress, f"{resolved}: {db:.1f} dB PSNR vs fp32 (bar {PSNR_BAR_DB:.0f} dB).")
    return backend
