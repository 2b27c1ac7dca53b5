"""PyTorch on a device, running the prepared networks (:mod:`.prepare`).

The keypoint detector always runs fp32 (5% of the work; it decides the geometry); the generator
runs in the chosen precision. Options: ``channels_last`` (default: on for CPU and CUDA),
``compile`` (``torch.compile`` of the per-frame decoder, warmed up here), ``cuda_graphs`` (replay
the per-frame decoder as a CUDA graph; CUDA only).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .checkpoint import Networks
from .generator import EncodedSource, GeneratorOutput
from .motion import Keypoints
from .options import Progress, notify
from .precision import DTYPES
from .prepare import prepare_for_inference


class TorchBackend:
    name = "torch"

    def __init__(self, networks: Networks, device: torch.device, precision: str, *,
                 channels_last: bool | None = None, compile: bool = False, cuda_graphs: bool = False,
                 progress: Progress | None = None) -> None:
        self.device, self.precision = torch.device(device), precision
        self.provider = f"torch-{self.device.type}"
        self.image_size = networks.config.image_size
        self.channels_last = self.device.type in ("cpu", "cuda") if channels_last is None else bool(channels_last)
        self.compiled, self.compile_seconds = False, 0.0
        self.accuracy_db: float | None = None  # set by the factory when the precision was checked
        self.kp_detector = prepare_for_inference(networks.kp_detector, torch.float32, self.channels_last, self.device)
        self.generator = prepare_for_inference(networks.generator, DTYPES[precision], self.channels_last, self.device)
        self._decode_fn: Callable[..., torch.Tensor] = self.generator.decode_tensors
        if compile:
            self._compile(progress)
        if cuda_graphs and self.device.type != "cuda":
            notify(progress, "CUDA graphs need a CUDA device; ignored.")
        elif cuda_graphs:
            self._decode_fn = CudaGraphDecoder(self._decode_fn)

    def _compile(self, progress: Progress | None) -> None:
        notify(progress, "Compiling the model with torch.compile (once per start; may take a minute)...")
        t0 = time.perf_counter()
        try:
            import torch._inductor.config as inductor_config

            fn = torch.compile(self.generator.decode_tensors, dynamic=False)
            # freezing: weights become constants, so oneDNN gets them prepacked (measured ~12% faster on CPU)
            with torch.inference_mode(), inductor_config.patch(freezing=True):
                s = self.image_size
                enc, kp = self.encode(torch.rand(1, 3, s, s)), self.detect(torch.rand(1, 3, s, s))
                for _ in range(2):  # warm-up: the first calls compile
                    fn(enc.features, enc.small, kp.value, kp.value, kp.jacobian, kp.jacobian)
            self._decode_fn, self.compiled = fn, True
        except Exception as err:  # noqa: BLE001 - no compiler, unsupported platform, ...: stay eager
            first_line = (str(err).strip().splitlines() or [""])[0]
            notify(progress, f"torch.compile unavailable ({type(err).__name__}: {first_line}); running eager.")
        self.compile_seconds = time.perf_counter() - t0
        if self.compiled:
            notify(progress, f"Model compiled in {self.compile_seconds:.1f} s.")

    @torch.inference_mode()
    def detect(self, image: torch.Tensor) -> Keypoints:
        return self.kp_detector(image.to(self.device, torch.float32))

    @torch.inference_mode()
    def encode(self, image: torch.Tensor) -> EncodedSource:
        return self.generator.encode_source(image.to(self.device, torch.float32))

    @torch.inference_mode()
    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        kp_source, kp_driving = kp_source.to(self.device), kp_driving.to(self.device)
        return self._decode_fn(encoded.features, encoded.small, kp_source.value, kp_driving.value,
                               kp_source.jacobian, kp_driving.jacobian)

    @torch.inference_mode()
    def decode_with_motion(self, encoded: EncodedSource, kp_source: Keypoints,
                           kp_driving: Keypoints) -> GeneratorOutput:
        """:meth:`decode` that also keeps the forward's dense motion field (``GeneratorOutput.motion``:
        the flow and occlusion detail transfer needs), from the same single forward. Always the eager
        prepared generator: the compiled / CUDA-graph decoder returns the prediction alone."""
        kp_source, kp_driving = kp_source.to(self.device), kp_driving.to(self.device)
        return self.generator.decode(encoded, kp_source, kp_driving)

    def render(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """The prediction for a source and a driving picture on this device (the precision check)."""
        return self.decode(self.encode(source), self.detect(source), self.detect(driving))


class CudaGraphDecoder:
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
            self.static_out = self.fn(*self.static_in)
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
