"""Outputs: the virtual camera and the recording, two ``Sink``s (``sinks.py``: the protocol and
the registry). The frames they get are already at the output size (``compositor.py``; the picture
helpers are in ``pictures.py``). A missing virtual-camera device gives one message with the fix for
the OS; the pipeline carries on with its other outputs.
"""

from __future__ import annotations

import platform
import queue
import shutil
import threading
from collections.abc import Callable

import numpy as np

from ..errors import AvatarcamError, OutputError
from ..video import AtomicVideoWriter

LINUX_FIX = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=avatarcam"


def vcam_fix_message(system: str | None = None, detail: str = "") -> str:
    """One line: why there is no virtual camera and how to get one on this OS."""
    system = system or platform.system()
    why = f" ({detail})" if detail else ""
    if system == "Linux":
        return (f"no virtual camera device{why}; fix: `{LINUX_FIX}` (install it first with "
                f"`sudo apt install v4l2loopback-dkms` if the module is missing), then restart avatarcam.")
    if system in ("Windows", "Darwin"):
        return (f"no virtual camera{why}; fix: install OBS Studio 28 or newer, click 'Start Virtual Camera' "
                f"once and stop it again, then restart avatarcam.")
    return f"no virtual camera{why}; this OS is not supported by pyvirtualcam."


class VirtualCameraSink:
    """pyvirtualcam output (RGB frames of ``size``). ``open()`` raises ``OutputError`` with the fix."""

    def __init__(self, size: tuple[int, int] = (640, 480), fps: float = 30.0, backend: str | None = None) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.backend = backend
        self._cam = None

    @property
    def device(self) -> str:
        return self._cam.device if self._cam is not None else ""

    def open(self) -> None:
        if self._cam is not None:
            return
        try:
            import pyvirtualcam
        except ImportError:
            raise OutputError("pyvirtualcam is not installed; `pip install pyvirtualcam`.") from None
        w, h = self.size
        try:
            self._cam = pyvirtualcam.Camera(w, h, self.fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                            backend=self.backend, print_fps=False)
        except Exception as err:  # noqa: BLE001 - pyvirtualcam raises RuntimeError/ValueError per backend
            detail = str(err).split(". ")[0].strip().rstrip(".")
            raise OutputError(vcam_fix_message(detail=detail)) from None

    def send(self, frame: np.ndarray) -> None:
        if self._cam is None:
            return
        self._cam.send(frame)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.close()
            except Exception:  # noqa: BLE001
                pass


class FileSink:
    """Records output frames to an mp4 on a background thread (the stream never waits on the disk).

    Every frame handed to ``write`` is recorded exactly once, in order, and the file plays at
    ``fps``: frames are never repeated to pad the video to real time, so when the model makes
    fewer than ``fps`` frames a second the recording plays faster than it happened. Only a disk
    slower than the stream drops frames (counted in ``dropped``). A full disk or a write failure
    stops the recording early: what was recorded is finished and kept under the final name, and
    ``on_error`` gets one line saying so; it never raises into the stream.
    """

    MAX_QUEUE = 64
    # On a full disk OpenCV's writer fails silently: frames are lost and the index written at the
    # end (the mp4 "moov" atom) cannot be, so the file does not play. Free space is therefore checked
    # before every frame (one statvfs call) and the recording finished while there is room left for
    # the index, the synthetic tag and the frames still in the encoder's buffers.
    FINISH_RESERVE = 4 << 20  # bytes: FFmpeg's unflushed write buffer (256 KB), the tag, a margin
    INDEX_BYTES_PER_FRAME = 32  # the index grows with the frame count (size, offset, time of each)
    FRAMES_IN_FLIGHT = 4  # an encoded frame is at most about its raw size; a few may be buffered

    def __init__(self, path: str, fps: float = 30.0, on_error: Callable[[str], None] | None = None) -> None:
        self.writer = AtomicVideoWriter(path, fps)  # raises OutputError for a bad path at once
        self.path = self.writer.path
        self.fps = float(fps)
        self.on_error = on_error
        self.failed = ""
        self._queue: queue.Queue = queue.Queue(self.MAX_QUEUE)
        self.dropped = 0
        self.saved: str | None = None
        self._thread = threading.Thread(target=self._loop, name="avatarcam-record", daemon=True)
        self._thread.start()

    @property
    def frames(self) -> int:
        return self.writer.frames

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def open(self) -> None:
        """The file is opened by the constructor (an unusable path fails there, before the stream)."""

    def send(self, frame: np.ndarray) -> None:
        """The ``Sink`` protocol's name for :meth:`write`."""
        self.write(frame)

    def write(self, frame: np.ndarray) -> None:
        if self.failed:
            return
        try:
            self._queue.put_nowait(frame)
        except queue.Full:  # the disk is slower than the stream: drop, never block it
            self.dropped += 1

    def reserve(self, frame: np.ndarray) -> int:
        """Bytes that must stay free before ``frame`` is written, so the file can still be finished."""
        return self.FINISH_RESERVE + self.INDEX_BYTES_PER_FRAME * self.writer.frames + \
            self.FRAMES_IN_FLIGHT * np.asarray(frame).size

    def _loop(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self.failed:
                continue
            try:
                free = shutil.disk_usage(self.path.parent).free
                if free < self.reserve(frame):
                    self._stop_early(f"the disk is almost full ({free >> 20} MB free)",
                                     "free some space or record to another drive")
                    continue
                self.writer.write(frame)
            except Exception as err:  # noqa: BLE001 - never into the stream
                self._stop_early(str(err).rstrip("."), "")

    def _stop_early(self, why: str, fix: str) -> None:
        """Finish and keep what was recorded so far; one line through ``on_error``."""
        if self.writer.frames:
            try:
                self.saved = str(self.writer.close())
            except AvatarcamError:  # the writer removed its partial file
                self.saved = None
        else:
            self.writer.abort()
        kept = f"the first {self.writer.frames} frames are saved in {self.saved}" if self.saved \
            else "no video was saved"
        self.failed = f"recording to {self.path} stopped: {why}; {kept}" + (f"; {fix}." if fix else ".")
        if self.on_error:
            self.on_error(self.failed)

    def close(self, timeout: float | None = 5.0) -> str | None:
        """Finish the file; returns its path, or None when nothing was saved (reported via on_error)."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self.failed:
            return self.saved
        try:
            return str(self.writer.close())
        except AvatarcamError as err:
            self.failed = str(err)
            if self.on_error:
                self.on_error(self.failed)
            return None
