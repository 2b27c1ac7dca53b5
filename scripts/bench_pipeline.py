"""Pipeline overhead and dropped-frame behaviour (no camera or GPU needed).

A 30 fps synthetic clip stands in for the camera; the tiny test model (optionally with an
artificial delay, to be slower than the camera) stands in for the real one. For each output
frame: latency = camera capture -> outputs done; overhead = latency - model time (framing, queues,
letterbox, sinks, thread hand-offs); wait = capture age when the worker picked the frame up.

    python scripts/bench_pipeline.py [--seconds 6] [--delays 0,50,100]
    python scripts/bench_pipeline.py --device cuda --full --delays 0   # the GPU latency target
    python scripts/bench_pipeline.py --compositing   # compositing cost, memory per avatar, avatar switch

The stream uses a 1920x1080 avatar picture and the default output (1280x720, layout "picture"), so
the overhead includes pasting the animated face back into the picture. ``--compositing`` times
that step alone (``Compositor.compose`` per layout at the output size; detail transfer on top),
the memory one avatar holds (picture + model input + placement: background and mask) and the
avatar switch (framing the picture + the animator's source preparation + the placement).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data

from synthetic import face_on_background, landscape_portrait, write_clip, write_synthetic_checkpoint  # noqa: E402

from avatarcam.engine import DEVICES, Animator, EngineOptions, FOMMConfig  # noqa: E402
from avatarcam.pipeline import Pipeline, PipelineConfig  # noqa: E402
from avatarcam.pipeline.avatar_picture import frame_avatar  # noqa: E402
from avatarcam.pipeline.compositor import OUTPUT_LAYOUTS, Compositor, OutputStage  # noqa: E402
from avatarcam.pipeline.pictures import draw_ai_label, fitted_box, letterbox  # noqa: E402


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


def _median_ms(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), float(np.percentile(times, 90))


def bench_compositing(animator, picture: np.ndarray, size: tuple[int, int], repeats: int = 200) -> None:
    """Per-frame compositing cost per layout, detail transfer, memory per avatar, avatar switch."""
    t0 = time.perf_counter()
    avatar = frame_avatar(picture, animator.size)
    framed_ms = (time.perf_counter() - t0) * 1000
    source_ms, _ = _median_ms(lambda: animator.prepare_source(avatar.model_input), 3)
    animated = avatar.model_input[::-1].copy()  # any picture of the model's size
    print(f"compositing at {size[0]}x{size[1]}, avatar picture {picture.shape[1]}x{picture.shape[0]} "
          f"(median / p90 of {repeats} frames):")
    for layout in OUTPUT_LAYOUTS:
        t0 = time.perf_counter()
        comp = Compositor(layout, size)
        placement = comp.placement(avatar)
        placement_ms = (time.perf_counter() - t0) * 1000
        med, p90 = _median_ms(lambda comp=comp: comp.compose(avatar, animated), repeats)
        print(f"  {layout:8} {med:5.2f} / {p90:5.2f} ms   placement (once per avatar) {placement_ms:5.1f} ms, "
              f"{placement.nbytes / 2**20:.1f} MiB")
    def before() -> None:  # the old output: the model's square letterboxed into 640x480, labelled
        draw_ai_label(letterbox(animated, (640, 480)), fitted_box(animated.shape, (640, 480)), copy=False)

    med, p90 = _median_ms(before, repeats)
    print(f"  (before: letterbox into 640x480 + label {med:5.2f} / {p90:5.2f} ms)")
    animator.set_source(avatar.model_input)
    reason = animator.set_motion_output(True)
    if reason:
        print(f"  detail transfer: {reason}")
    else:
        animator.animate(avatar.model_input[:, ::-1].copy())
        motion, stage = animator.last_motion(), OutputStage()
        pasted = stage.picture(avatar, animated, motion, layout="picture", size=size)
        med, p90 = _median_ms(lambda: stage.picture(avatar, animated, motion, layout="picture", size=size), 20)
        print(f"  detail transfer ({pasted.shape[0]} px crop) {med:.1f} / {p90:.1f} ms on top")
        animator.set_motion_output(False)
    held = avatar.nbytes + Compositor("picture", size).placement(avatar).nbytes
    print(f"memory per avatar: {held / 2**20:.1f} MiB (picture + model input + placement at {size[0]}x{size[1]})")
    print(f"avatar switch: framing {framed_ms:.0f} ms + source preparation {source_ms:.0f} ms + placement "
          f"(above); switching back to a prepared avatar: 0 (cached)")


def bench(clip: str, animator, delay_ms: float, seconds: float, record: str | None, avatar: str) -> dict:
    timed = TimedAnimator(animator, delay_ms / 1000)
    cfg = PipelineConfig(camera=clip, vcam=False, detector="lbp", record=record, avatar=avatar)
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
    ap.add_argument("--compositing", action="store_true", help="time the compositing step alone (see above)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_synthetic_checkpoint(Path(tmp) / "model.pth.tar", None if args.full else FOMMConfig.tiny(), seed=0)
        animator = Animator.from_checkpoint(ckpt, EngineOptions(device=args.device, backend="torch"))
        print(f"model: {'full-size' if args.full else 'tiny'} on {animator.describe()}")
        picture = landscape_portrait((1920, 1080))
        if args.compositing:
            bench_compositing(animator, picture, tuple(PipelineConfig().vcam_size))
            return 0
        avatar = str(Path(tmp) / "avatar.png")
        cv2.imwrite(avatar, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        positions = [(200 + int(40 * np.sin(i / 10)), 140) for i in range(90)]
        clip = write_clip(Path(tmp) / "clip.mp4", face_on_background(positions, 200), 30)
        print(f"{'delay':>6} {'model':>7} {'latency':>8} {'overhead':>9} {'p90':>6} {'own':>6} {'own90':>6} "
              f"{'wait':>6} {'waitmax':>7} {'fps':>5} {'dropped':>8} {'skip med/max':>12}")
        for delay in (float(d) for d in args.delays.split(",")):
            r = bench(clip, animator, delay, args.seconds, str(Path(tmp) / "rec.mp4") if args.record else None,
                      avatar)
            print(f"{r['delay_ms']:6.0f} {r['model_ms']:7.1f} {r['latency_ms']:8.1f} {r['overhead_ms_median']:9.1f} "
                  f"{r['overhead_ms_p90']:6.1f} {r['proc_overhead_ms_median']:6.1f} {r['proc_overhead_ms_p90']:6.1f} "
                  f"{r['wait_ms_median']:6.1f} {r['wait_ms_max']:7.1f} {r['fps']:5.1f} {r['dropped']:8d} "
                  f"{r['median_skip']:6.0f}/{r['max_skip']:<5d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
