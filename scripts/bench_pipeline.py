"""Pipeline overhead and dropped-frame behaviour (no camera or GPU needed).

A 30 fps synthetic clip stands in for the camera; the tiny test model (optionally with an
artificial delay, to be slower than the camera) stands in for the real one. For each output
frame: latency = camera capture -> outputs done; overhead = latency - model time (framing, queues,
letterbox, sinks, thread hand-offs); wait = capture age when the worker picked the frame up.

    python scripts/bench_pipeline.py [--seconds 6] [--delays 0,50,100]
    python scripts/bench_pipeline.py --device cuda --full --delays 0   # the GPU latency target
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data

from synthetic import face_on_background, write_clip, write_synthetic_checkpoint  # noqa: E402

from avatarcam.engine import DEVICES, Animator, EngineOptions, FOMMConfig  # noqa: E402
from avatarcam.pipeline import Pipeline, PipelineConfig  # noqa: E402


class TimedAnimator:
    def __init__(self, inner, delay_s):
        self.inner, self.delay_s, self.model_s = inner, delay_s, {}

    def detect(self, crop):
        self._t0 = time.perf_counter()
        return self.inner.detect(crop)

    def animate_keypoints(self, kp):
        if self.delay_s:
            time.sleep(self.delay_s)
        out = self.inner.animate_keypoints(kp)
        self.last_model_s = time.perf_counter() - self._t0
        return out

    def animate(self, frame, **kwargs):  # the engine's single frame -> picture route
        self._t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        out = self.inner.animate(frame, **kwargs)
        self.last_model_s = time.perf_counter() - self._t0
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


def bench(clip: str, animator, delay_ms: float, seconds: float, record: str | None) -> dict:
    timed = TimedAnimator(animator, delay_ms / 1000)
    cfg = PipelineConfig(camera=clip, vcam=False, detector="lbp", record=record)
    p = Pipeline(cfg, animator=timed)
    rows = []

    def listener(bundle):
        if bundle.face_found:
            now = time.monotonic()
            rows.append((now - bundle.t_capture, timed.last_model_s, bundle.index, now - bundle.t_picked,
                         bundle.t_picked - bundle.t_capture))

    p.add_listener(listener)
    p.start()
    time.sleep(seconds)
    stats = p.stats()
    capture_frames = stats.frames_captured
    p.stop()
    rows = rows[5:]  # warm-up
    lat = np.array([r[0] for r in rows]) * 1000
    model = np.array([r[1] for r in rows]) * 1000
    steps = np.diff([r[2] for r in rows])
    over = lat - model
    proc_over = np.array([r[3] for r in rows]) * 1000 - model  # without the wait for the frame
    wait = np.array([r[4] for r in rows]) * 1000
    return {
        "delay_ms": delay_ms, "frames_out": len(rows), "camera_frames": capture_frames, "fps": stats.fps,
        "model_ms": float(np.median(model)), "latency_ms": float(np.median(lat)),
        "overhead_ms_median": float(np.median(over)), "overhead_ms_p90": float(np.percentile(over, 90)),
        "proc_overhead_ms_median": float(np.median(proc_over)),
        "proc_overhead_ms_p90": float(np.percentile(proc_over, 90)),
        "wait_ms_median": float(np.median(wait)), "wait_ms_max": float(wait.max()),
        "dropped": stats.dropped, "max_skip": int(steps.max()) if len(steps) else 0,
        "median_skip": float(np.median(steps)) if len(steps) else 0,
        "capture_age_ms_last": stats.capture_age_ms, "framing_ms_last": stats.framing_ms,
        "output_ms_last": stats.output_ms,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--delays", default="0,50,100", help="artificial model delays in ms")
    ap.add_argument("--record", action="store_true", help="also record to an mp4 while streaming")
    ap.add_argument("--device", choices=DEVICES, default="cpu", help="where the model runs (default: cpu)")
    ap.add_argument("--full", action="store_true", help="the full-size model (default: the tiny test model)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_synthetic_checkpoint(Path(tmp) / "model.pth.tar", None if args.full else FOMMConfig.tiny(), seed=0)
        animator = Animator.from_checkpoint(ckpt, EngineOptions(device=args.device))
        print(f"model: {'full-size' if args.full else 'tiny'} on {animator.describe()}")
        positions = [(200 + int(40 * np.sin(i / 10)), 140) for i in range(90)]
        clip = write_clip(Path(tmp) / "clip.mp4", face_on_background(positions, 200), 30)
        print(f"{'delay':>6} {'model':>7} {'latency':>8} {'overhead':>9} {'p90':>6} {'own':>6} {'own90':>6} "
              f"{'wait':>6} {'waitmax':>7} {'fps':>5} {'dropped':>8} {'skip med/max':>12}")
        for delay in (float(d) for d in args.delays.split(",")):
            r = bench(clip, animator, delay, args.seconds, str(Path(tmp) / "rec.mp4") if args.record else None)
            print(f"{r['delay_ms']:6.0f} {r['model_ms']:7.1f} {r['latency_ms']:8.1f} {r['overhead_ms_median']:9.1f} "
                  f"{r['overhead_ms_p90']:6.1f} {r['proc_overhead_ms_median']:6.1f} {r['proc_overhead_ms_p90']:6.1f} "
                  f"{r['wait_ms_median']:6.1f} {r['wait_ms_max']:7.1f} {r['fps']:5.1f} {r['dropped']:8d} "
                  f"{r['median_skip']:6.0f}/{r['max_skip']:<5d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
