"""Outputs: letterboxing, the OS fix message, the virtual camera through real pyvirtualcam, recording."""

from __future__ import annotations

import glob
import platform

import numpy as np
import pytest
from helpers import wait_until
from synthetic import write_clip

from avatarcam.engine import Animator, EngineOptions
from avatarcam.pipeline import Pipeline, PipelineConfig, vcam_fix_message
from avatarcam.pipeline.compositor import Compositor
from avatarcam.pipeline.pictures import draw_ai_label, fitted_box, letterbox
from avatarcam.video import AtomicVideoWriter, VideoReader


@pytest.fixture(scope="module")
def animator(tiny_checkpoint):
    return Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"))


def counter_clip(path, n=40, size=(160, 120)):
    """Frames whose grey level encodes their number, with a red patch top-left (RGB order)."""
    w, h = size
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 20 + 5 * i, np.uint8)
        f[:30, :30] = (255, 0, 0)
        frames.append(f)
    return write_clip(path, frames, 30)


def decode_counter(out):  # out: 1280x720 passthrough of a 160x120 frame (covering it) -> full frame
    return round((float(out[240:400, 300:500].mean()) - 20) / 5)


def test_letterbox_and_mirror():
    sq = np.zeros((256, 256, 3), np.uint8)
    sq[:, :128] = 255
    out = letterbox(sq, (640, 480))
    assert out.shape == (480, 640, 3) and out.dtype == np.uint8
    assert out[:, :80].max() == 0 and out[:, -80:].max() == 0  # padded like a webcam picture
    assert out[240, 100] .min() == 255 and out[240, 500].max() == 0
    mirrored = letterbox(sq, (640, 480), mirror=True)
    assert mirrored[240, 100].max() == 0 and mirrored[240, 500].min() == 255
    assert letterbox(np.zeros((256, 256, 3), np.float32), (320, 240)).shape == (240, 320, 3)


def test_vcam_fix_message_per_os():
    assert "modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=avatarcam" in vcam_fix_message("Linux")
    for system in ("Windows", "Darwin"):
        msg = vcam_fix_message(system)
        assert "OBS" in msg and "28" in msg and "\n" not in msg


def test_vcam_receives_passthrough_frames_in_order(tmp_path, fake_vcam, animator):
    clip = counter_clip(tmp_path / "count.mp4")
    cfg = PipelineConfig(camera=clip, loop_video=False, vcam=True, vcam_backend="avatarcam-test", passthrough=True,
                         framing="manual", detector="lbp")
    p = Pipeline(cfg, animator=animator)
    p.start()
    try:
        wait_until(lambda: p.stats().camera_state == "ended")
        assert p.stats().vcam_state == "on"
    finally:
        p.stop()
    got = fake_vcam.frames
    assert len(got) >= 10
    assert all(f.shape == (720, 1280, 3) and f.dtype == np.uint8 for f in got)  # the default output size
    first = got[0]
    assert first[100, 100, 0] > 200 and first[100, 100, 2] < 60  # red stays red: RGB, not BGR
    numbers = [decode_counter(f) for f in got]
    assert numbers == sorted(numbers) and numbers[-1] >= 30  # in order, up to the clip's end


def test_vcam_failure_mid_stream_disables_it_and_retry_works(tmp_path, fake_vcam, animator):
    clip = counter_clip(tmp_path / "count.mp4", n=10)
    fake_vcam.fail_after = 3
    notices, seen = [], []
    cfg = PipelineConfig(camera=clip, vcam=True, vcam_backend="avatarcam-test", passthrough=True, framing="manual",
                         detector="lbp")
    p = Pipeline(cfg, animator=animator)
    p.on_notice = notices.append
    p.add_listener(lambda b: seen.append(b.index))
    p.start()
    try:
        wait_until(lambda: p.stats().vcam_state == "error")
        assert any("virtual camera stopped" in n for n in notices)
        n = len(seen)
        wait_until(lambda: len(seen) > n + 2)  # the stream keeps running without the virtual camera
        fake_vcam.fail_after = None
        assert p.set_vcam_enabled(True) is None and p.stats().vcam_state == "on"
        k = len(fake_vcam.frames)
        wait_until(lambda: len(fake_vcam.frames) > k)
        assert p.set_vcam_enabled(False) is None and p.stats().vcam_state == "off"
    finally:
        p.stop()


@pytest.mark.skipif(platform.system() != "Linux", reason="checks the machine has no v4l2loopback device")
def test_missing_vcam_gives_fix_and_stream_continues(tmp_path, fake_vcam, animator):
    if glob.glob("/dev/video*"):
        pytest.skip("this machine has video devices")
    clip = counter_clip(tmp_path / "count.mp4", n=10)
    notices, seen = [], []
    cfg = PipelineConfig(camera=clip, vcam=True, vcam_backend="v4l2loopback", framing="manual", detector="lbp")
    p = Pipeline(cfg, animator=animator)
    p.on_notice = notices.append
    p.add_listener(lambda b: seen.append(b))
    p.start()
    try:
        wait_until(lambda: len(seen) >= 3)
        assert p.stats().vcam_state == "unavailable"
        message = p.set_vcam_enabled(True)
    finally:
        p.stop()
    assert message and "\n" not in message and ("v4l2loopback" in message or "OBS" in message)
    assert any(message.split(";")[0] in n for n in notices)
    assert seen and seen[-1].output.shape == (720, 1280, 3)


def test_recording_while_streaming_and_failure_does_not_stop_it(tmp_path, animator, monkeypatch):
    clip = counter_clip(tmp_path / "count.mp4", n=10)
    out = tmp_path / "rec.mp4"
    notices, seen = [], []
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, record=str(out), passthrough=True, framing="manual",
                                detector="lbp"), animator=animator)
    p.on_notice = notices.append
    p.add_listener(lambda b: seen.append(b.index))
    p.start()
    try:
        wait_until(lambda: p.stats().recorded_frames >= 12)
        assert p.stop_recording() == str(out)
        with VideoReader(out) as r:
            frames = list(r)
        assert len(frames) >= 10 and frames[0].shape == (720, 1280, 3)
        # a second recording whose writer breaks: reported, the stream goes on

        def broken(self, frame):
            raise OSError("disk full")

        monkeypatch.setattr(AtomicVideoWriter, "write", broken)
        p.start_recording(tmp_path / "broken.mp4")
        wait_until(lambda: any("disk full" in m for m in notices))
        n = len(seen)
        wait_until(lambda: len(seen) > n + 2)
        assert p.stop_recording() is None
        assert not (tmp_path / "broken.mp4").exists()
    finally:
        p.stop()


def test_ai_label_draws_a_legible_badge_in_the_pictures_corner():
    grey = np.full((256, 256, 3), 128, np.uint8)
    image = letterbox(grey, (640, 480))
    box = fitted_box(grey.shape, (640, 480))
    assert box == (80, 0, 480, 480)
    labelled = draw_ai_label(image, box)
    assert np.array_equal(image, letterbox(grey, (640, 480)))  # the caller's frame is not changed
    ys, xs = np.nonzero(np.abs(labelled.astype(int) - image).max(axis=2))
    assert ys.min() > 480 * 0.85 and xs.min() > 560 - 480 * 0.15 and xs.max() < 560  # inside the picture
    badge = labelled[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert badge.max() > 230 and badge.min() < 70  # white text on a dark box
    assert 16 <= ys.max() - ys.min() <= 48  # small, but readable at 480 lines


@pytest.mark.parametrize("label", [True, False])
def test_every_outgoing_frame_carries_the_ai_label_when_on(tmp_path, fake_vcam, animator, label):
    from mutagen.mp4 import MP4

    from avatarcam.video import SYNTHETIC_NOTE

    # no face in the clip: every output frame is the still avatar, so the expected picture is known
    clip = write_clip(tmp_path / "plain.mp4", [np.full((120, 160, 3), 90, np.uint8)] * 40, 30)
    out = tmp_path / "rec.mp4"
    cfg = PipelineConfig(camera=clip, vcam=True, vcam_backend="avatarcam-test", record=str(out), detector="lbp",
                         ai_label=label, max_frames=6)
    p = Pipeline(cfg, animator=animator)
    p.start()
    try:
        wait_until(lambda: len(fake_vcam.frames) >= 6)
        assert p.stop_recording() == str(out)
    finally:
        p.stop()
    compositor = Compositor("picture", (1280, 720))  # the default layout and size
    plain = compositor.compose(p.avatar, None, ai_label=False)
    labelled = compositor.compose(p.avatar, None)
    expected, other = (labelled, plain) if label else (plain, labelled)
    assert len(fake_vcam.frames) == 6 and p.stats().frames_out == 6  # max_frames: exactly that many
    assert all(np.array_equal(f, expected) for f in fake_vcam.frames)
    with VideoReader(out) as r:
        recorded = list(r)
    assert len(recorded) == 6  # the recording holds each output frame exactly once
    frame = recorded[-1].astype(int)
    assert np.abs(frame - expected).mean() < np.abs(frame - other).mean()  # (mp4 is lossy: the nearer one)
    assert MP4(str(out)).tags["\xa9cmt"] == [SYNTHETIC_NOTE]


def test_set_ai_label_switches_the_label_live(tmp_path, fake_vcam, animator):
    clip = write_clip(tmp_path / "plain.mp4", [np.full((120, 160, 3), 90, np.uint8)] * 10, 30)
    p = Pipeline(PipelineConfig(camera=clip, vcam=True, vcam_backend="avatarcam-test", detector="lbp"),
                 animator=animator)
    p.start()
    try:
        wait_until(lambda: len(fake_vcam.frames) >= 2)
        plain = Compositor("picture", (1280, 720)).compose(p.avatar, None, ai_label=False)
        assert not np.array_equal(fake_vcam.frames[-1], plain)  # on by default
        p.set_ai_label(False)
        wait_until(lambda: np.array_equal(fake_vcam.frames[-1], plain))
    finally:
        p.stop()
