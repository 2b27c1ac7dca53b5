"""Pipeline end to end on a video clip: newest-frame processing, no-face hold, avatars, stop()."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from avatarcam.demo import astronaut_face, face_on_background, write_clip
from avatarcam.engine import Animator, EngineOptions
from avatarcam.pipeline import FrameBundle, Pipeline, PipelineConfig, PipelineStats, prepare_avatar_image

FPS = 30.0


@pytest.fixture(scope="module")
def animator(tiny_checkpoint):
    return Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"))


class SlowAnimator:
    """The tiny animator with an artificial delay: a model slower than the camera."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay

    def animate_keypoints(self, kp):
        time.sleep(self.delay)
        return self.inner.animate_keypoints(kp)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_until(p, cond, timeout=8.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def test_slow_model_processes_newest_frames_with_bounded_latency(tmp_path, animator):
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 30, 200), FPS)
    delay = 0.1
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, detector="lbp"), animator=SlowAnimator(animator, delay))
    bundles: list[FrameBundle] = []
    p.add_listener(bundles.append)
    p.start()
    try:
        assert run_until(p, lambda: sum(b.face_found for b in bundles) >= 8)
        stats = p.stats()
    finally:
        p.stop()
    assert isinstance(stats, PipelineStats) and stats.camera_state == "running" and stats.calibrated
    animated = [b for b in bundles if b.face_found]
    steps = np.diff([b.index for b in animated])
    assert steps.min() >= 1 and np.median(steps) >= 3  # ~100 ms per frame at 30 fps: skips ahead
    assert stats.dropped > 0
    period_ms = 1000 / FPS
    assert stats.capture_age_ms < 2 * period_ms + 20  # never more than about one frame waiting
    assert stats.model_ms >= delay * 1000
    assert stats.latency_ms < stats.model_ms + stats.framing_ms + 2 * period_ms + 40
    assert all(b.output.shape == (480, 640, 3) and b.output.dtype == np.uint8 for b in bundles)
    assert animated[-1].crop_box is not None and animated[-1].avatar.shape == (256, 256, 3)


def test_no_face_holds_last_good_frame(tmp_path, animator):
    frames = face_on_background([(220, 140)] * 15, 200) + [np.full((480, 640, 3), (60, 80, 100), np.uint8)] * 45
    clip = write_clip(tmp_path / "c.mp4", frames, FPS)
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, loop_video=False, detector="lbp"), animator=animator)
    p.framing.hold_seconds = 0.2
    bundles: list[FrameBundle] = []
    p.add_listener(bundles.append)
    p.start()
    try:
        assert run_until(p, lambda: p.stats().camera_state == "ended")
    finally:
        p.stop()
    found = [i for i, b in enumerate(bundles) if b.face_found]
    assert found, "the face was found at first"
    lost = [b for b in bundles[found[-1] + 1:] if not b.face_found]
    assert lost, "the face was lost later"
    for b in lost:
        assert np.array_equal(b.output, bundles[found[-1]].output)


def test_avatar_switch_is_async_and_cached(tmp_path, animator):
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 10, 200), FPS)
    notices = []
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, detector="lbp"), animator=animator)
    p.on_notice = notices.append
    p.start()
    try:
        first = p.avatar_image.copy()
        other = np.ascontiguousarray(astronaut_face(256)[:, ::-1])
        t0 = time.monotonic()
        p.set_avatar(other)
        assert time.monotonic() - t0 < 0.05  # returns at once
        assert run_until(p, lambda: np.array_equal(p.avatar_image, other), 5)
        p.set_avatar(first)  # the first avatar is cached: instant
        assert np.array_equal(p.avatar_image, first) or run_until(p, lambda: np.array_equal(p.avatar_image, first), 1)
        p.set_avatar(tmp_path / "missing.png")
        assert run_until(p, lambda: any("failed to load" in n for n in notices), 5)
        assert np.array_equal(p.avatar_image, first)  # a failed load keeps the current avatar
        p.calibrate()
        assert run_until(p, lambda: not p.worker._calibrate.is_set(), 5)
        p.set_passthrough(True)
        p.set_mirror_output(True)
        assert p.stats().passthrough
    finally:
        p.stop()


def test_stop_joins_every_thread_quickly(tmp_path, animator):
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 10, 200), FPS)
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, detector="lbp", record=str(tmp_path / "o.mp4")),
                 animator=animator)
    before = set(threading.enumerate())
    p.start()
    assert run_until(p, lambda: p.stats().frames_out >= 3)
    threads = p.threads()
    assert len(threads) >= 4
    t0 = time.monotonic()
    p.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert not [t for t in threads if t.is_alive()]
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("avatarcam")]


def test_prepare_avatar_image_frames_photos():
    from skimage.data import astronaut

    assert prepare_avatar_image(astronaut()).shape == (256, 256, 3)
    face = astronaut_face(256)
    assert np.array_equal(prepare_avatar_image(face), face)  # 256x256 = already framed
