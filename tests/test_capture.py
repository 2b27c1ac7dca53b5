"""CaptureThread: newest frame only, file pacing/looping, retry of a camera that dies."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import wait_until
from synthetic import face_on_background, write_clip

from avatarcam.errors import CameraError
from avatarcam.pipeline.capture import CaptureThread, OpenCVSource


class FlakySource:
    """A live camera that delivers ``good`` frames and then fails."""

    is_file = False
    fps = None

    def __init__(self, good: int, start: int) -> None:
        self.left = good
        self.n = start

    def read(self):
        time.sleep(0.005)
        if self.left <= 0:
            return None
        self.left -= 1
        self.n += 1
        return np.full((48, 64, 3), self.n % 256, np.uint8)

    def close(self) -> None:
        pass


def test_video_file_is_paced_and_loops(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(0, 0)] * 6, face_size=100, frame_size=(160, 120)), 30)
    cap = CaptureThread(clip, loop=True)
    cap.start()
    try:
        first = cap.latest(-1, timeout=2.0)
        assert first is not None
        wait_until(lambda: cap.frames_read >= 15)  # the 6-frame clip looped
        frame = cap.latest()
        assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8
        # paced at the clip's 30 fps, not read as fast as possible
        assert frame.t - first.t >= 0.8 * (frame.index - first.index) / 30
        assert cap.latest(frame.index + 1000) is None  # never blocks without a timeout
    finally:
        cap.stop()  # joins within its 1 s timeout
        assert not cap.is_alive()


def test_camera_dying_mid_run_is_retried_and_reported():
    opened, states = [], []

    def opener(spec, size, fps):
        opened.append(spec)
        if len(opened) == 2:  # the first reopen attempt fails (camera still unplugged)
            raise CameraError("camera 0 cannot be opened")
        return FlakySource(good=10, start=100 * len(opened))

    cap = CaptureThread("0", opener=opener, on_state=lambda s, m: states.append(s), backoff=(0.05,),
                        stall_seconds=0.1)
    cap.start()
    try:
        wait_until(lambda: "retrying" in states and "running" in states[states.index("retrying"):])  # came back
        assert cap.reopen_count >= 1
        assert "lost" in cap.error or "retrying" in cap.error
        assert len(opened) >= 3
    finally:
        cap.stop()  # joins within its 1 s timeout
        assert not cap.is_alive()


def test_missing_camera_index_is_one_clear_line():
    with pytest.raises(CameraError) as err:
        OpenCVSource("7")
    msg = str(err.value)
    assert "camera 7" in msg and "\n" not in msg and "doctor" in msg


def test_missing_video_file(tmp_path):
    with pytest.raises(CameraError, match="not found"):
        OpenCVSource(str(tmp_path / "none.mp4"))


@pytest.mark.parametrize("name", ["notes.jpg", "notes.txt"])
def test_a_file_that_is_not_a_video_is_one_line_at_open(tmp_path, name):
    """FFmpeg opens a text file named .jpg (and then gives no frame: before, "lost (no frames)"
    retried forever) and draws a long .txt as frames of text (its tty demuxer): neither is a camera."""
    from avatarcam.errors import MediaError
    from avatarcam.video import VideoReader

    notes = tmp_path / name
    notes.write_text("These are my notes for the meeting.\n" * 60)
    with pytest.raises(CameraError) as info:
        OpenCVSource(str(notes))
    assert str(info.value) == f"{notes}: not a readable video (corrupt or unsupported codec); " \
                              f"convert it to mp4 (H.264 or MPEG-4)."
    with pytest.raises(MediaError, match="not a readable video|no readable frames"):  # as `animate` says
        list(VideoReader(notes))


def test_a_video_file_gives_its_first_frame_first(tmp_path):
    frames = face_on_background([(100 + 10 * i, 80) for i in range(3)], 120)
    src = OpenCVSource(write_clip(tmp_path / "clip.mp4", frames, 30))
    try:
        got = [src.read() for _ in range(4)]
    finally:
        src.close()
    assert all(g is not None for g in got[:3]) and got[3] is None  # the frame read at open is not lost
    errors = [np.abs(g.astype(int) - f.astype(int)).mean() for g, f in zip(got[:3], frames, strict=True)]
    assert max(errors) < 8, errors
