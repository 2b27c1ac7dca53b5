#!/usr/bin/env python
"""Soak test: run the full real-time pipeline for many frames and watch memory and latency.

The camera is a looping synthesized video file, the virtual camera a counting pyvirtualcam
backend (registered through pyvirtualcam's public API), the model the reduced test config of the
same classes, so 10,000 frames take minutes on a 2-core CPU.

    python scripts/soak.py --frames 10000 [--json soak.json]

Exit code 0 when memory and latency stay flat (no growth beyond noise), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyvirtualcam

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data
from synthetic import driving_frames, write_clip, write_synthetic_checkpoint  # noqa: E402

from avatarcam.engine import FOMMConfig  # noqa: E402
from avatarcam.pipeline import Pipeline, PipelineConfig  # noqa: E402

BACKEND = "avatarcam-soak"


class CountingCamera:
    """pyvirtualcam backend that checks and counts frames without keeping them."""

    frames = 0
    bad_frames = 0

    def __init__(self, *, width: int, height: int, fps: float, fourcc, device, **_kw) -> None:
        self.expected = width * height * 3
        self.name = device or BACKEND

    def send(self, frame: np.ndarray) -> None:
        CountingCamera.frames += 1
        if frame.size != self.expected:
            CountingCamera.bad_frames += 1

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self.name

    def native_fourcc(self):
        return pyvirtualcam.PixelFormat.RGB


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def soak(frames: int, sample_every: float = 1.0, workdir: Path | None = None) -> dict:
    work = Path(workdir or tempfile.mkdtemp(prefix="avatarcam-soak-"))
    ckpt = write_synthetic_checkpoint(work / "tiny.pth.tar", FOMMConfig.tiny())
    clip = write_clip(work / "camera.mp4", driving_frames(90, size=256, amplitude=1.0), fps=60)
    pyvirtualcam.register_backend(BACKEND, CountingCamera)
    try:
        return _soak(ckpt, clip, frames, sample_every)
    finally:
        # pyvirtualcam tries every registered backend when none is named: never leave ours behind
        pyvirtualcam.camera.BACKENDS.pop(BACKEND, None)


def _soak(ckpt: Path, clip: str, frames: int, sample_every: float) -> dict:
    CountingCamera.frames = CountingCamera.bad_frames = 0
    cfg = PipelineConfig(camera=str(clip), checkpoint=str(ckpt), device="cpu", precision="fp32", detector="lbp",
                         vcam=True, vcam_backend=BACKEND, vcam_size=(320, 240), loop_video=True)
    pipeline = Pipeline(cfg)
    samples: list[dict] = []
    started = time.monotonic()
    pipeline.start()
    try:
        while True:
            time.sleep(sample_every)
            s = pipeline.stats()
            samples.append({"t": round(time.monotonic() - started, 2), "frames": s.frames_out,
                            "rss_mb": round(rss_mb(), 1), "latency_ms": round(s.latency_ms, 2),
                            "model_ms": round(s.model_ms, 2), "fps": round(s.fps, 2), "dropped": s.dropped,
                            "threads": threading.active_count()})
            if s.frames_out >= frames:
                break
            if s.camera_state in ("failed",):
                raise RuntimeError(f"camera failed during soak: {pipeline.notices[-3:]}")
    finally:
        pipeline.stop(timeout=2.0)
    leftover = [t.name for t in pipeline.threads() if t.is_alive()]
    return summarize(samples, leftover, CountingCamera.frames, CountingCamera.bad_frames)


def summarize(samples: list[dict], leftover: list[str], vcam_frames: int, bad_frames: int) -> dict:
    # The first 10% is warm-up (allocator pools, caches); compare the next 20% to the last 20%.
    n = len(samples)
    body = samples[max(1, n // 10):] or samples
    k = max(1, len(body) // 5)
    early, late = body[:k], body[-k:]

    def median(rows, key):
        return statistics.median(r[key] for r in rows)

    rss_growth = median(late, "rss_mb") - median(early, "rss_mb")
    latency_early, latency_late = median(early, "latency_ms"), median(late, "latency_ms")
    flat_memory = rss_growth < 30.0
    flat_latency = latency_late <= 1.5 * latency_early + 5.0
    return {
        "frames": samples[-1]["frames"] if samples else 0, "seconds": samples[-1]["t"] if samples else 0,
        "vcam_frames": vcam_frames, "bad_vcam_frames": bad_frames,
        "rss_mb_early": median(early, "rss_mb"), "rss_mb_late": median(late, "rss_mb"), "rss_growth_mb": rss_growth,
        "latency_ms_early": latency_early, "latency_ms_late": latency_late,
        "threads_max": max(r["threads"] for r in samples), "threads_left_after_stop": leftover,
        "flat_memory": flat_memory, "flat_latency": flat_latency,
        "ok": flat_memory and flat_latency and not leftover and bad_frames == 0 and vcam_frames > 0,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--json", help="write all samples and the summary here")
    parser.add_argument("--sample-every", type=float, default=1.0, help="seconds between samples")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = soak(args.frames, args.sample_every)
    step = max(1, len(result["samples"]) // 10)
    print(f"{'t (s)':>7} {'frames':>7} {'RSS MB':>7} {'lat ms':>7} {'model ms':>8} {'fps':>5} {'dropped':>7}")
    for r in result["samples"][::step] + result["samples"][-1:]:
        print(f"{r['t']:7.1f} {r['frames']:7d} {r['rss_mb']:7.1f} {r['latency_ms']:7.1f} {r['model_ms']:8.1f} "
              f"{r['fps']:5.1f} {r['dropped']:7d}")
    print(f"frames {result['frames']} in {result['seconds']:.0f} s; vcam received {result['vcam_frames']}; "
          f"RSS {result['rss_mb_early']:.0f} -> {result['rss_mb_late']:.0f} MB ({result['rss_growth_mb']:+.1f}); "
          f"latency {result['latency_ms_early']:.1f} -> {result['latency_ms_late']:.1f} ms; "
          f"threads left after stop: {len(result['threads_left_after_stop'])}; "
          f"{'FLAT' if result['ok'] else 'NOT FLAT'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
