"""Camera capture on its own thread, keeping only the newest frame.

There is no queue: a consumer slower than the camera always gets the latest picture, so latency
never builds up. Video files stand in for a camera: they are paced at their own frame rate and
can loop. A camera that worked and then fails is reopened with backoff, forever, with its state
reported; consumers never block on it (``latest(after_index, timeout)``).
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..errors import CameraError
from ..imaging import opencv_to_rgb
from ..video import is_text_rendering, not_a_video_message

# Camera states, as reported in PipelineStats.camera_state.
OPENING, RUNNING, RETRYING, FAILED, ENDED = "opening", "running", "retrying", "failed", "ended"

# A live source that returns no frame for this long is considered lost and reopened.
STALL_SECONDS = 2.0
BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # HxWx3 uint8 RGB
    index: int  # 0, 1, 2, ... in capture order (across reopenings)
    t: float  # time.monotonic() when the frame was captured


class FrameSource(Protocol):
    """What an opener returns: ``read()`` gives the next RGB uint8 frame or None (end / failure)."""

    fps: float | None  # a file's own frame rate (frames are paced to it); None for live sources
    is_file: bool

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


Opener = Callable[[str, tuple[int, int], float], FrameSource]


def is_camera_index(spec: str) -> bool:
    return str(spec).strip().isdigit()


def is_stream_url(spec: str) -> bool:
    return "://" in str(spec)


def _open_index(index: int | str) -> cv2.VideoCapture:
    """cv2.VideoCapture(index, file or URL) without OpenCV's console noise for sources that do not exist."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    previous = logging.getLogLevel() if logging else None
    if logging:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(index)
    finally:
        if logging:
            logging.setLogLevel(previous)


def probe_camera(index: int) -> bool:
    """Whether camera ``index`` opens and gives a frame: THE camera probe (GUI picker, doctor)."""
    if platform.system() == "Linux" and not os.path.exists(f"/dev/video{index}"):
        return False  # cheap check first: opening a missing index costs a timeout on some systems
    cap = _open_index(index)
    try:
        return bool(cap.isOpened() and cap.read()[0])
    finally:
        cap.release()


def list_cameras(count: int = 4) -> list[int]:
    """The indices among 0..count-1 of cameras that work now."""
    return [i for i in range(max(0, count)) if probe_camera(i)]


class OpenCVSource:
    """A camera index, video file or stream URL read through ``cv2.VideoCapture``."""

    def __init__(self, spec: str, size: tuple[int, int] = (640, 480), fps: float = 30.0) -> None:
        spec = str(spec).strip()
        self.spec = spec
        self._first: np.ndarray | None = None  # a file's first frame, read to check it is a video
        self.is_file = not is_camera_index(spec) and not is_stream_url(spec)
        if is_camera_index(spec):
            self._cap = _open_index(int(spec))
            if self._cap.isOpened():
                w, h = size
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
                self._cap.set(cv2.CAP_PROP_FPS, fps)
                self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
            else:
                self._cap.release()
                raise CameraError(f"camera {spec} cannot be opened (not connected, or in use by another app); "
                                  f"run `avatarcam doctor` to list cameras, or pass --camera with another "
                                  f"index, a video file or a stream URL.")
        elif self.is_file:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise CameraError(f"{path}: video not found; check the path (or pass a camera index such as 0).")
            self._cap = _open_index(os.fspath(path))
            # FFmpeg "opens" some files that hold no video (a text file named .jpg, a damaged mp4)
            # and then never gives a frame: the first frame is read now, so such a file is one line
            # at start instead of a camera "lost" and retried forever.
            self._first = self._read() if self._cap.isOpened() and not is_text_rendering(self._cap) else None
            if self._first is None:
                self._cap.release()
                raise CameraError(not_a_video_message(path))
        else:
            self._cap = _open_index(spec)
            if not self._cap.isOpened():
                self._cap.release()
                raise CameraError(f"{spec}: stream cannot be opened; check the URL and that the stream is live.")
        own = self._cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        self.fps = float(own) if self.is_file and own and 1.0 <= own <= 240.0 else (30.0 if self.is_file else None)

    def _read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        return opencv_to_rgb(frame) if ok and frame is not None else None

    def read(self) -> np.ndarray | None:
        first, self._first = self._first, None
        return first if first is not None else self._read()

    def close(self) -> None:
        self._cap.release()


def open_source(spec: str, size: tuple[int, int] = (640, 480), fps: float = 30.0) -> FrameSource:
    return OpenCVSource(spec, size, fps)


class CaptureThread(threading.Thread):
    """Reads frames continuously; ``latest()`` hands out the newest one.

    ``open()`` (called by ``start()`` if not done before) opens the source on the caller's thread
    and raises ``CameraError`` with a one-line fix when it cannot be opened at all.
    """

    def __init__(self, spec: str, size: tuple[int, int] = (640, 480), fps: float = 30.0, *, loop: bool = True,
                 opener: Opener | None = None, on_state: Callable[[str, str], None] | None = None,
                 backoff: tuple[float, ...] = BACKOFF, stall_seconds: float = STALL_SECONDS) -> None:
        super().__init__(name="avatarcam-capture", daemon=True)
        self.spec = str(spec)
        self.size = size
        self.fps = float(fps)
        self.loop = loop
        self.opener = opener or open_source
        self.on_state = on_state
        self.backoff = backoff
        self.stall_seconds = stall_seconds
        self.state = OPENING
        self.error = ""  # the last failure, one line
        self.reopen_count = 0
        self._source: FrameSource | None = None
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._index = -1
        self._halt = threading.Event()

    # consumer side --------------------------------------------------------------------------
    def latest(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        """The newest frame if its index is > after_index, waiting up to ``timeout`` seconds for
        one (None: don't wait); None when there is none yet."""
        with self._cond:
            if timeout:
                self._cond.wait_for(lambda: (self._frame is not None and self._frame.index > after_index)
                                    or self._halt.is_set(), timeout)
            frame = self._frame
        return frame if frame is not None and frame.index > after_index else None

    @property
    def frames_read(self) -> int:
        return self._index + 1

    # lifecycle ------------------------------------------------------------------------------
    def open(self) -> None:
        if self._source is None:
            self._source = self.opener(self.spec, self.size, self.fps)

    def start(self) -> None:
        self.open()
        super().start()

    def stop(self, timeout: float | None = 1.0) -> None:
        self._halt.set()
        with self._cond:
            self._cond.notify_all()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def _set_state(self, state: str, message: str = "") -> None:
        if state == self.state and not message:
            return
        self.state = state
        if message and state in (RETRYING, FAILED):
            self.error = message
        if self.on_state is not None:
            try:
                self.on_state(state, message)
            except Exception:  # a listener must never kill the capture
                pass

    def _publish(self, image: np.ndarray) -> None:
        with self._cond:
            self._index += 1
            self._frame = Frame(image, self._index, time.monotonic())
            self._cond.notify_all()

    def _close_source(self) -> None:
        if self._source is not None:
            try:
                self._source.close()
            except Exception:
                pass
            self._source = None

    def _reopen(self, reason: str) -> bool:
        """Close and reopen with backoff until it works or we are stopped."""
        self._close_source()
        self._set_state(RETRYING, f"camera {self.spec} lost ({reason}); retrying")
        attempt = 0
        while not self._halt.is_set():
            delay = self.backoff[min(attempt, len(self.backoff) - 1)]
            if self._halt.wait(delay):
                return False
            attempt += 1
            try:
                self._source = self.opener(self.spec, self.size, self.fps)
            except Exception as err:  # noqa: BLE001 - any failure means "try again later"
                self._set_state(RETRYING, f"camera {self.spec} lost ({reason}); retrying (attempt {attempt}): {err}")
                continue
            self.reopen_count += 1
            return True
        return False

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self._close_source()
            with self._cond:
                self._cond.notify_all()

    def _loop(self) -> None:
        if self._source is None:
            try:
                self.open()
            except Exception as err:  # noqa: BLE001
                self._set_state(FAILED, str(err))
                return
        self._set_state(RUNNING)
        t0 = time.monotonic()
        n = 0  # frames of this file pass (pacing)
        last_ok = time.monotonic()
        while not self._halt.is_set():
            src = self._source
            if src.is_file and src.fps:
                wait = t0 + n / src.fps - time.monotonic()
                if wait > 0 and self._halt.wait(wait):
                    break
            try:
                image = src.read()
            except Exception:  # noqa: BLE001
                image = None
            if image is not None:
                n += 1
                last_ok = time.monotonic()
                if self.state != RUNNING:
                    self._set_state(RUNNING, f"camera {self.spec} is back")
                self._publish(image)
                continue
            if src.is_file and n > 0:  # end of the clip
                if not self.loop:
                    self._set_state(ENDED, f"{self.spec}: end of video")
                    return
                self._close_source()
                try:
                    self._source = self.opener(self.spec, self.size, self.fps)
                except Exception as err:  # noqa: BLE001 - the file went away: retry like a camera
                    if not self._reopen(f"cannot reopen: {err}"):
                        return
                t0, n = time.monotonic(), 0
                continue
            # a live source gave nothing (or a file gave nothing at all)
            if src.is_file or time.monotonic() - last_ok > self.stall_seconds:
                if not self._reopen("no frames"):
                    return
                t0, n, last_ok = time.monotonic(), 0, time.monotonic()
            else:
                self._halt.wait(0.01)
