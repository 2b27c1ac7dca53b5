"""SIGTERM and SIGHUP (closing the terminal, `timeout`, systemd) finish the recording as Ctrl-C does.

Real processes in their own session (``setsid``), signalled with ``os.kill`` once their output says
frames were recorded; before the fix they died at once and left only a hidden ``.NAME.xxxx.part.mp4``
without its index.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import wait_until
from synthetic import driving_frames, face_on_background, write_clip

TIMEOUT = 90.0
HERE = Path(__file__).parent


class Process:
    """A child process in its own session whose stdout and stderr lines are read as they come."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     start_new_session=True, cwd=HERE)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str) -> re.Match:
        """The first output line matching ``pattern`` (waits for it; fails if the process ends first)."""
        while True:
            line = self._queue.get(timeout=TIMEOUT)
            assert line is not None, "the process ended first:\n" + "\n".join(self.lines)
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def finish(self, sig: int) -> tuple[int, str]:
        """Send ``sig``, wait for the exit; (exit code, all output)."""
        os.kill(self.proc.pid, sig)
        code = self.proc.wait(TIMEOUT)
        while (line := self._queue.get(timeout=TIMEOUT)) is not None:
            self.lines.append(line)
        return code, "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def frame_count(path: Path) -> int:
    """Frames of a video, as a player sees them (0 when the file has no index: the moov atom)."""
    cap = cv2.VideoCapture(str(path))
    try:
        ok = cap.isOpened() and cap.read()[0]
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
    finally:
        cap.release()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    positions = [(150 + 4 * i, 120 + 2 * i) for i in range(30)]
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", face_on_background(positions, 200), 30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_run_finishes_the_recording_on_a_stop_signal(tmp_path, clip, tiny_checkpoint, sig):
    out = tmp_path / "out.mp4"
    child = Process([sys.executable, "-m", "avatarcam", "run", "--camera", clip, "--checkpoint", str(tiny_checkpoint),
                     "--record", str(out), "--no-vcam", "--device", "cpu", "--detector", "lbp", "--size", "320x240"])
    try:
        child.wait_for(r"\| frames ([3-9]|\d\d+) \|")  # the status line: frames are being recorded
        code, output = child.finish(sig)
    finally:
        child.kill()
    assert code == 0, output
    recorded = int(re.search(rf"recorded (\d+) frames to {re.escape(str(out))}", output).group(1))
    assert recorded >= 3 and frame_count(out) == recorded  # playable, every frame
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no hidden .part file
    assert "Traceback" not in output


def test_animate_keeps_the_frames_made_on_sigterm(tmp_path, tiny_checkpoint):
    source, driving, out = tmp_path / "noise.png", tmp_path / "drive.mp4", tmp_path / "out.mp4"
    # a noise picture beside the result (--side-by-side): frames the encoder cannot shrink, so its 256 KB
    # write buffer reaches the disk after the first frame or two (the event waited on below)
    cv2.imwrite(str(source), np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8))
    write_clip(driving, driving_frames(200, size=128), 30)
    child = Process([sys.executable, "-m", "avatarcam", "animate", str(source), str(driving), "-o", str(out),
                     "--side-by-side", "--checkpoint", str(tiny_checkpoint), "--device", "cpu"])
    try:
        child.wait_for("loading the model")

        def frames_on_disk() -> bool:  # no progress bar without a terminal: the part file is the event
            part = next(tmp_path.glob(".out.*.part.mp4"), None)
            return part is not None and part.stat().st_size > 100_000

        wait_until(frames_on_disk, TIMEOUT, "the first frames on disk")
        code, output = child.finish(signal.SIGTERM)
    finally:
        child.kill()
    assert code == 128 + signal.SIGTERM, output
    written = int(re.search(rf"stopped; wrote the first (\d+) frames to {re.escape(str(out))}", output).group(1))
    assert 0 < written < 200 and frame_count(out) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.mp4", "noise.png", "out.mp4"]


def test_window_finishes_the_recording_on_sigterm(tmp_path, clip, tiny_checkpoint):
    child = Process([sys.executable, str(HERE / "window_child.py"), str(tiny_checkpoint), clip, str(tmp_path)])
    try:
        child.wait_for("^recording$")
        code, output = child.finish(signal.SIGTERM)
    finally:
        child.kill()
    assert code == 128 + signal.SIGTERM, output
    [video] = tmp_path.iterdir()  # the recording, under its final name; no hidden .part file
    assert video.name.startswith("avatarcam-") and video.suffix == ".mp4"
    assert frame_count(video) >= 3
