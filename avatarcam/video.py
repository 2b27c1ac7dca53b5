"""Video files: checked reading and atomic writing.

``AtomicVideoWriter`` writes to a temporary file beside the target and renames it into place
only on success, so an error or Ctrl+C never leaves a half-written video under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from .errors import MediaError, OutputError
from .imaging import opencv_to_rgb, to_uint8


class VideoReader:
    """RGB frames of a video file that OpenCV can read."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise MediaError(f"{self.path}: video not found; check the path.")
        if not self.path.is_file():
            raise MediaError(f"{self.path}: not a file; pass a video file (e.g. .mp4).")
        if self.path.stat().st_size == 0:
            raise MediaError(f"{self.path}: video file is empty; record or pick another video.")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise MediaError(f"{self.path}: not a readable video (corrupt or unsupported codec); "
                             f"convert it to mp4 (H.264 or MPEG-4).")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1.0 <= fps <= 240.0 else 30.0
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        produced = 0
        while True:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                break
            produced += 1
            yield opencv_to_rgb(frame)
        if produced == 0:
            raise MediaError(f"{self.path}: the video has no readable frames; record or pick another video.")

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AtomicVideoWriter:
    """mp4 writer (``mp4v``) that publishes the file only when ``close()`` succeeds.

    Frames are RGB uint8 or float in [0,1], all of the size of the first frame.
    """

    def __init__(self, path: str | os.PathLike, fps: float, fourcc: str = "mp4v") -> None:
        self.path = Path(path).expanduser()
        self.fps = float(fps)
        self.fourcc = fourcc
        self.frames = 0
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(f"{self.path}: folder {parent} does not exist; create it or choose another output path.")
        if not os.access(parent, os.W_OK):
            raise OutputError(f"{self.path}: cannot write to {parent}; choose another output path.")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part" + (self.path.suffix or ".mp4"),
                                   dir=parent)
        os.close(fd)
        self.tmp_path = Path(tmp)
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, frame: np.ndarray) -> None:
        img = to_uint8(frame)
        h, w = img.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self.tmp_path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                self.abort()
                raise OutputError(f"{self.path}: cannot open a video writer; use an .mp4 path.")
        elif (w, h) != self._size:
            img = cv2.resize(img, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; with no frames written nothing is published."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames == 0:
            self.abort()
            raise OutputError(f"{self.path}: no frames were written, so no video was saved.")
        try:
            os.replace(self.tmp_path, self.path)
        except OSError as err:
            self.abort()
            raise OutputError(f"{self.path}: cannot save the video ({err.strerror}); "
                              f"choose another output path.") from None
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        try:
            self.tmp_path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> AtomicVideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
