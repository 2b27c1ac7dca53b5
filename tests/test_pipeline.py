"""Pipeline end to end on a video clip: newest-frame processing, no-face hold, avatars, stop()."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import SlowAnimator, wait_until
from synthetic import astronaut_face, face_on_background, write_clip

from avatarcam.engine import Animator, EngineOptions
from avatarcam.errors import AvatarcamError
from avatarcam.pipeline import FrameBundle, Pipeline, PipelineConfig, PipelineStats, prepare_avatar_image
from avatarcam.pipeline.config import ZOOM_RANGE

FPS = 30.0


@pytest.fixture(scope="module")
def animator(tiny_checkpoint):
    return Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"))


def test_slow_model_processes_newest_frames_with_bounded_latency(tmp_path, animator):
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 30, 200), FPS)
    delay = 0.1
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, detector="lbp"), animator=SlowAnimator(animator, delay))
    bundles: list[FrameBundle] = []
    p.add_listener(bundles.append)
    p.start()
    try:
        wait_until(lambda: sum(b.face_found for b in bundles) >= 8)
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
    assert all(b.output.shape == (720, 1280, 3) and b.output.dtype == np.uint8 for b in bundles)
    assert animated[-1].crop_box is not None and animated[-1].avatar.shape == (256, 256, 3)


def test_no_face_holds_last_good_frame(tmp_path, animator):
    # 2.5 s without a face: well past the framer's 1 s hold
    frames = face_on_background([(220, 140)] * 15, 200) + [np.full((480, 640, 3), (60, 80, 100), np.uint8)] * 75
    clip = write_clip(tmp_path / "c.mp4", frames, FPS)
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, loop_video=False, detector="lbp"), animator=animator)
    bundles: list[FrameBundle] = []
    p.add_listener(bundles.append)
    p.start()
    try:
        wait_until(lambda: p.stats().camera_state == "ended")
    finally:
        p.stop()
    found = [i for i, b in enumerate(bundles) if b.face_found]
    assert found, "the face was found at first"
    lost = [b for b in bundles[found[-1] + 1:] if not b.face_found]
    assert lost, "the face was lost later"
    for b in lost:
        assert np.array_equal(b.output, bundles[found[-1]].output)


def test_avatar_switch_is_async_and_cached(tmp_path, animator, monkeypatch):
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 10, 200), FPS)
    notices = []
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, detector="lbp"), animator=animator)
    p.on_notice = notices.append
    p.start()
    try:
        first = p.avatar_image.copy()
        other = np.ascontiguousarray(astronaut_face(256)[:, ::-1])
        gate = threading.Event()  # holds the avatar preparation until the test opens it
        prepare = animator.prepare_source
        monkeypatch.setattr(animator, "prepare_source", lambda image: gate.wait(30) and prepare(image))
        p.set_avatar(other)  # returns while the preparation is still held
        assert np.array_equal(p.avatar_image, first)
        gate.set()
        wait_until(lambda: np.array_equal(p.avatar_image, other))
        p.set_avatar(first)
        wait_until(lambda: np.array_equal(p.avatar_image, first))
        p.set_avatar(other)  # prepared before: from the cache, applied before set_avatar returns
        assert np.array_equal(p.avatar_image, other)
        p.set_avatar(first)
        assert np.array_equal(p.avatar_image, first)
        p.set_avatar(tmp_path / "missing.png")
        wait_until(lambda: any("failed to load" in n for n in notices))
        assert np.array_equal(p.avatar_image, first)  # a failed load keeps the current avatar
        p.calibrate()  # the next framed face becomes the neutral pose
        wait_until(lambda: p.stats().calibrated)
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
    wait_until(lambda: p.stats().frames_out >= 3)
    threads = p.threads()
    assert len(threads) >= 4
    p.stop(timeout=1.0)
    assert not [t for t in threads if t.is_alive()]  # stop() returned with every thread joined
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("avatarcam")]


def test_prepare_avatar_image_frames_photos():
    from skimage.data import astronaut

    assert prepare_avatar_image(astronaut()).shape == (256, 256, 3)
    face = astronaut_face(256)
    assert np.array_equal(prepare_avatar_image(face), face)  # 256x256 = already framed


def test_crop_controls_and_settings_go_through_the_facade():
    p = Pipeline(PipelineConfig(vcam=False, zoom=1.5, offset=(0.1, 0.0)))
    assert p.crop_zoom == 1.5 and p.crop_offset == (0.1, 0.0)
    p.zoom_crop(2.0)
    p.move_crop(0.2, -0.1)
    assert p.crop_zoom == 3.0 and p.crop_offset == pytest.approx((0.3, -0.1))
    p.zoom_crop(100.0)
    assert p.crop_zoom == ZOOM_RANGE[1]  # clamped to the one declared range
    p.reset_crop()
    assert p.crop_zoom == 1.0 and p.crop_offset == (0.0, 0.0)
    p.set_framing_mode("manual")
    assert p.config.framing == "manual"
    with pytest.raises(AvatarcamError, match="auto, manual"):
        p.set_framing_mode("sideways")
    p.set_stabilize(0.0)
    p.set_relative(False)
    p.set_adapt_scale(False)
    assert (p.config.stabilize, p.config.relative, p.config.adapt_scale) == (0.0, False, False)
    assert p.threads() == [] and p.stats().frames_out == 0 and not p.stats().face_found
