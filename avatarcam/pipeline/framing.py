"""Face framing: find the face, crop a smoothed square around it (see ``crop.py``).

``FaceFramer`` detects the face every few frames (optionally on a background thread), turns the
detector's box into the model's square, smooths it with a One Euro filter so the crop does not
jitter, and applies the user's zoom and offset (Avatarify's W/S and U/H/J/K). ``mode = "manual"``
uses a fixed centred crop.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from .config import FRAMINGS, OFFSET_RANGE, ZOOM_RANGE, check_choice
from .crop import CROP_SIZE, box_to_square, extract_crop
from .detectors import FaceDetector, LBPDetector
from .filters import OneEuroFilter
from .tracking import FaceTrack, TrackGate


@dataclass
class FramingResult:
    crop: np.ndarray | None  # size x size uint8 RGB, or None when no face was ever found
    box: tuple[int, int, int] | None  # (x, y, side) in image pixels
    face_found: bool


class FaceFramer:
    """Per-frame square crop around the face; thread-safe controls for the UI.

    ``detect_every``: run the detector every N frames and hold the box in between.
    ``smoothing``: One Euro strength in [0, 1] (0 = raw boxes).
    ``hold_seconds``: how long a face that is no longer detected is still considered there.
    ``gate``: how a new box must agree with the tracked face to move the crop (``tracking.py``):
    a false detection elsewhere never makes the crop jump while the face is still found.
    ``start_async()`` moves detection to a background thread (always on the newest frame), so
    detection time never adds to the frame's latency.
    """

    def __init__(self, detector: FaceDetector | None = None, *, mode: str = "auto", zoom: float = 1.0,
                 offset: tuple[float, float] = (0.0, 0.0), detect_every: int = 3, smoothing: float = 0.7,
                 hold_seconds: float = 1.0, size: int = CROP_SIZE, gate: TrackGate | None = None) -> None:
        self.detector = detector  # None: the LBP detector, made on first use
        self.detect_every = max(1, int(detect_every))
        self.hold_seconds = hold_seconds
        self.size = size
        self._lock = threading.Lock()
        self._mode = "auto"
        self.mode = mode
        self.zoom, self.offset = 1.0, (0.0, 0.0)
        self._set_crop(zoom, offset)
        self.smoothing = smoothing
        self._filter = OneEuroFilter(*self._filter_params(smoothing))
        self._track = FaceTrack(gate)
        self._target: np.ndarray | None = None  # (cx, cy, side) of the tracked face's last detection
        self._target_t = -1e9
        self._hint: np.ndarray | None = None  # (cx, cy) of the face as the model's keypoints last saw it
        self._count = 0
        # async detection
        self._async = False
        self._pending: tuple[np.ndarray, float] | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @staticmethod
    def _filter_params(smoothing: float) -> tuple[float, float]:
        s = min(max(float(smoothing), 0.0), 1.0)
        # units: fractions of the image height per second
        return 30.0 * (1 - s) ** 2 + 0.3 * s, 4.0

    # controls ------------------------------------------------------------------------------------
    @property
    def thread(self) -> threading.Thread | None:
        """The background detection thread (``start_async``), or None."""
        return self._thread

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = check_choice("framing mode", value, FRAMINGS)

    def _set_crop(self, zoom: float, offset: tuple[float, float]) -> None:
        """Zoom and offset (read them as ``zoom`` and ``offset``), clamped to the declared ranges."""
        with self._lock:
            self.zoom = float(min(max(zoom, ZOOM_RANGE[0]), ZOOM_RANGE[1]))
            self.offset = tuple(float(min(max(v, OFFSET_RANGE[0]), OFFSET_RANGE[1])) for v in offset)

    def zoom_by(self, factor: float) -> None:
        """factor > 1 zooms in (the face gets bigger)."""
        self._set_crop(self.zoom * float(factor), self.offset)

    def move(self, dx: float, dy: float) -> None:
        """Shift the crop by fractions of its side (+x right, +y down)."""
        self._set_crop(self.zoom, (self.offset[0] + dx, self.offset[1] + dy))

    def reset(self) -> None:
        """Zoom 1, no offset, and forget the tracked face."""
        self._set_crop(1.0, (0.0, 0.0))
        with self._lock:
            self._filter.reset()
            self._track.reset()
            self._target, self._target_t, self._hint = None, -1e9, None
            self._count = 0

    # detection -----------------------------------------------------------------------------------
    def _run_detector(self, image: np.ndarray, t: float) -> None:
        if self.detector is None:
            self.detector = LBPDetector()
        try:
            boxes = self.detector.detect(image)
        except Exception:  # noqa: BLE001 - a detector hiccup just means "no face this time"
            boxes = []
        with self._lock:
            face = self._track.update([box_to_square(box, self.detector) for box in boxes], self._hint)
            if face is not None:
                self._target, self._target_t = face, t

    def note_keypoints(self, box: tuple[int, int, int], centre: tuple[float, float]) -> None:
        """The model's keypoint centre (in [-1, 1] crop units) on the crop ``box``: where the face
        it animates is, so the tracker prefers the detection that agrees with it."""
        x, y, side = box
        hint = np.array([x + (centre[0] + 1) / 2 * side, y + (centre[1] + 1) / 2 * side])
        with self._lock:
            self._hint = hint

    def start_async(self) -> None:
        if self._thread is not None:
            return
        self._async = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._detect_loop, name="avatarcam-face-detect", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 1.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():  # keep a live thread visible so callers can join it later
                self._thread = None
        self._async = False

    def _detect_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stop.is_set(), 0.2)
                job, self._pending = self._pending, None
            if job is not None and not self._stop.is_set():
                self._run_detector(*job)

    # per frame -----------------------------------------------------------------------------------
    def frame(self, image: np.ndarray, t: float | None = None) -> FramingResult:
        t = time.monotonic() if t is None else float(t)
        h, w = image.shape[:2]
        if self._mode == "manual":
            with self._lock:
                zoom, (ox, oy) = self.zoom, self.offset
            side = min(h, w) / zoom
            cx, cy = w / 2 + ox * side, h / 2 + oy * side
            return FramingResult(extract_crop(image, cx, cy, side, self.size),
                                 (round(cx - side / 2), round(cy - side / 2), round(side)), True)
        if self._count % self.detect_every == 0 or self._target is None and not self._async:
            if self._async:
                with self._cond:
                    self._pending = (image, t)
                    self._cond.notify()
            else:
                self._run_detector(image, t)
        self._count += 1
        with self._lock:
            target, target_t = self._target, self._target_t
            zoom, (ox, oy) = self.zoom, self.offset
            if target is None:
                return FramingResult(None, None, False)
            smooth = self._filter(target / h, t) * h if self.smoothing > 0 else target
        cx, cy, side = smooth
        side = side / zoom
        cx, cy = cx + ox * side, cy + oy * side
        found = t - target_t <= self.hold_seconds
        return FramingResult(extract_crop(image, cx, cy, side, self.size),
                             (round(cx - side / 2), round(cy - side / 2), round(side)), found)
