#!/usr/bin/env python
"""Per-frame model time of every backend x precision against the naive path, in one process.

    python scripts/benchmark.py [--checkpoint P] [--device cpu|cuda|auto] [--frames N] [--json OUT]
                                [--batch 1,4,16,64]
    python scripts/benchmark.py --isolated [--frames 20] [--rounds 3] [--starts 3] [--out docs/bench]

``--isolated`` (scripts/bench_runtimes.py): each CPU backend x precision in its own process, quiet
and with one competing busy process, p50/p90, plus start times; the numbers in docs/performance.md.
The in-process mode below suits one runtime at a time (torch variants, or a GPU).

Same input for all: the astronaut portrait as the avatar, warped copies of it as driving frames
(``tests/synthetic.py``). Variants are timed interleaved (frame by frame, rotating the order) so that
machine load hits them alike; medians and p90 are reported.

* ``naive``: the authors' demo loop: keypoint detector on the frame + the full generator forward
  (source encoding included) every frame, fp32 eager, reference modules.
* the others: ``Animator.animate(frame)`` (detector + relative motion + cached-source decoder).
* ``--batch``: throughput of ``Animator.animate_batch`` (one batched decoder forward for N
  driving poses) with the default options, in frames per second.

Accuracy is measured against the naive fp32 output of the same frame: max abs difference and
PSNR (worst frame). Without --checkpoint the full-size synthetic seed-0 checkpoint is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]  # the checkout, its scripts and test data

from synthetic import astronaut_face, driving_frames, write_synthetic_checkpoint  # noqa: E402

from avatarcam.engine import AnimateJob, Animator, EngineOptions, normalize_kp  # noqa: E402
from avatarcam.engine.options import DEVICES  # noqa: E402
from avatarcam.engine.precision import cpu_has_native_bf16, psnr, resolve_device  # noqa: E402


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "native_bf16": cpu_has_native_bf16(), "torch": torch.__version__, "python": platform.python_version()}
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
    except Exception:  # noqa: BLE001
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def naive_runner(anim: Animator, source: np.ndarray, neutral: np.ndarray):
    """The authors' loop: detector + full generator forward per frame, fp32 eager, on the CPU/GPU."""
    kp_det, gen = anim.networks.kp_detector.to(anim.backend.device), anim.networks.generator.to(anim.backend.device)
    dev = anim.backend.device
    src = to_tensor(source.astype(np.float32) / 255).to(dev)
    with torch.inference_mode():
        kp_source = kp_det(src)
        kp_initial = kp_det(to_tensor(neutral.astype(np.float32) / 255).to(dev))

    def run(frame: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            kp_driving = kp_det(to_tensor(frame.astype(np.float32) / 255).to(dev))
            kp_norm = normalize_kp(kp_source, kp_driving, kp_initial, True, True, True)
            out = gen(src, kp_source=kp_source, kp_driving=kp_norm)
        return out.prediction[0].permute(1, 2, 0).float().cpu().numpy()

    return run


def batch_throughput(ckpt, device: torch.device, source: np.ndarray, frames: list[np.ndarray],
                     sizes: str) -> list[dict]:
    """Frames per second of ``animate_batch`` (default options) for each batch size."""
    anim = Animator.from_checkpoint(ckpt, EngineOptions(device=device.type))
    prepared = anim.prepare_source(source)
    calibration = anim.make_calibration(prepared, anim.detect(frames[0]))
    poses = [anim.detect(f) for f in frames]
    rows = []
    print(f"\nanimate_batch throughput ({anim.describe()}):")
    for n in (int(x) for x in sizes.split(",")):
        jobs = [AnimateJob(prepared, poses[i % len(poses)], calibration) for i in range(n)]
        anim.animate_batch(jobs)  # warm-up
        times = []
        for _ in range(3):
            sync(device)
            t0 = time.perf_counter()
            anim.animate_batch(jobs)
            sync(device)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        rows.append({"batch": n, "median_ms": med * 1e3, "p90_ms": float(np.percentile(times, 90)) * 1e3,
                     "fps": n / med})
        print(f"  batch {n:3d}: {med * 1e3:9.1f} ms per batch, {n / med:7.2f} frames/s")
    return rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--isolated" in argv:
        import bench_runtimes

        return bench_runtimes.main([a for a in argv if a != "--isolated"])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="weights (default: full-size synthetic seed-0 checkpoint in a temp file)")
    ap.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs (default: auto)")
    ap.add_argument("--frames", type=int, default=10, help="timed frames per variant (after 2 warm-up frames)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime variants")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON")
    ap.add_argument("--batch", metavar="N,N,...", help="also measure animate_batch throughput at these batch sizes")
    ap.add_argument("--isolated", action="store_true", help="each backend x precision in its own process, quiet "
                    "and under load (scripts/bench_runtimes.py; its options follow)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tmp = None
    ckpt = args.checkpoint
    if ckpt is None:
        tmp = tempfile.TemporaryDirectory(prefix="avatarcam-bench-")
        ckpt = write_synthetic_checkpoint(Path(tmp.name) / "vox-seed0.pth.tar")
        os.environ.setdefault("AVATARCAM_DATA_DIR", str(Path(tmp.name) / "data"))  # ONNX export cache

    source = astronaut_face(256)
    frames = driving_frames(args.frames + 3, amplitude=1.0)
    neutral, warmup, timed = frames[0], frames[1:3], frames[3:]

    variants: dict[str, dict] = {}

    def add(name: str, **kw) -> None:
        t0 = time.perf_counter()
        try:
            anim = Animator.from_checkpoint(ckpt, EngineOptions(device=device.type, **kw))
        except Exception as err:  # noqa: BLE001 - report and keep benchmarking the rest
            print(f"  {name}: unavailable ({type(err).__name__}: {err})")
            return
        load = time.perf_counter() - t0
        anim.set_source(source)
        anim.calibrate(neutral)
        variants[name] = {"run": anim.animate, "load_s": load, "describe": anim.describe(), "options": kw}
        print(f"  {name}: {anim.describe()} (load {load:.1f} s)")

    print("Loading variants...")
    add("default")  # what users get: Animator.from_checkpoint(ckpt, device=...)
    add("torch fp32", precision="fp32", backend="torch")
    add("torch fp32 contiguous", precision="fp32", backend="torch", channels_last=False)
    if device.type == "cpu":
        add("torch bf16", precision="bf16", backend="torch")
        add("torch bf16 contiguous", precision="bf16", backend="torch", channels_last=False)
    else:
        add("torch fp16", precision="fp16", backend="torch")
        add("torch bf16", precision="bf16", backend="torch")
        add("torch fp16 cuda-graphs", precision="fp16", backend="torch", cuda_graphs=True)
    if args.compile:
        add("torch compile " + ("bf16" if device.type == "cpu" else "fp16"),
            precision="bf16" if device.type == "cpu" else "fp16", backend="torch", compile=True)
    if not args.no_onnx:
        add("onnx fp32", precision="fp32", backend="onnx")
        if device.type == "cuda":
            add("onnx fp16 (TensorRT)", precision="fp16", backend="onnx")
    naive_anim = Animator.from_checkpoint(ckpt, EngineOptions(device=device.type, precision="fp32", backend="torch"))
    variants = {"naive": {"run": naive_runner(naive_anim, source, neutral), "load_s": 0.0,
                          "describe": "reference modules, fp32 eager, full forward", "options": {}}, **variants}

    names = list(variants)
    times = {n: [] for n in names}
    outputs = {n: [] for n in names}
    for f in warmup:
        for n in names:
            variants[n]["run"](f)
    print(f"Timing {len(timed)} frames x {len(names)} variants (interleaved)...")
    for i, frame in enumerate(timed):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            sync(device)
            t0 = time.perf_counter()
            out = variants[n]["run"](frame)
            sync(device)
            times[n].append(time.perf_counter() - t0)
            outputs[n].append(out)

    naive_median = float(np.median(times["naive"]))
    rows = []
    for n in names:
        t = np.array(times[n])
        errs = [float(np.abs(a - b).max()) for a, b in zip(outputs[n], outputs["naive"], strict=True)]
        dbs = [psnr(a, b) for a, b in zip(outputs[n], outputs["naive"], strict=True)]
        med = float(np.median(t))
        rows.append({"variant": n, "describe": variants[n]["describe"], "median_ms": med * 1e3,
                     "p90_ms": float(np.percentile(t, 90)) * 1e3, "fps": 1.0 / med,
                     "speedup": naive_median / med,
                     "max_abs": max(errs), "psnr_db": min(dbs) if np.isfinite(min(dbs)) else None,
                     "load_s": variants[n]["load_s"]})

    hw = hardware()
    print(f"\n{hw['cpu']} ({hw['cpu_count']} cores, torch threads {hw['torch_threads']}, native bf16: "
          f"{hw['native_bf16']}), torch {hw['torch']}, device {device}")
    head = f"{'variant':24s} {'runs as':28s} {'median ms':>9s} {'p90 ms':>8s} {'fps':>6s} {'speedup':>7s} " \
           f"{'max abs':>9s} {'PSNR dB':>8s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['variant']:24s} {r['describe'][:28]:28s} {r['median_ms']:9.1f} {r['p90_ms']:8.1f} {r['fps']:6.2f} "
              f"{r['speedup']:6.2f}x {r['max_abs']:9.2e} {r['psnr_db'] or float('inf'):8.1f}")
    batches = batch_throughput(ckpt, device, source, timed, args.batch) if args.batch else []
    if args.json:
        Path(args.json).write_text(json.dumps({"hardware": hw, "device": str(device), "frames": len(timed),
                                               "results": rows, "batch": batches}, indent=2))
        print(f"\nwrote {args.json}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
