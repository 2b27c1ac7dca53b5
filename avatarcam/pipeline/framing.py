"""Face framing: find the face, crop a smoothed square around it, VoxCeleb-like.

The model was trained on VoxCeleb crops: the face fills ~55-65% of the square's side with the eyes
a little above the centre. ``FaceFramer`` detects the face every few frames (optionally on a
background thread), turns the detector's box into such a square (each detector has its own box
convention), smooths it with a One Euro filter so the crop does not jitter, and applies the
user's zoom and offset (Avatarify's W/S and U/H/J/K). ``mode = "manual"`` uses a fixed centred crop.

Detectors: ``LBPDetector`` (scikit-image's frontal-face cascade: ships with scikit-image, no
download) and ``FaceAlignmentDetector`` (face-alignment's BlazeFace, faster and more robust, whose
weights are downloaded into the torch hub cache on first use). ``detector="auto"`` picks BlazeFace
when its weights are cached and LBP otherwise, so nothing is ever downloaded behind your back.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..errors import AvatarcamError
from ..imaging import center_square, to_rgb_float

CROP_SIZE = 256
Box = tuple[float, float, float, float]  # x, y, w, h in image pixels


# One Euro filter -------------------------------------------------------------------------------
class OneEuroFilter:
    """Casiez et al.'s One Euro filter on a numpy array: strong smoothing at rest, little lag
    in fast motion. ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` the speed response."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        t = time.monotonic() if t is None else float(t)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if dt <= 0:
            dt = 1e-3
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x.copy()


# detectors --------------------------------------------------------------------------------------
class FaceDetector(Protocol):
    name: str
    # crop side = side_scale * box width; crop centre = box centre + (0, shift_y * box width)
    side_scale: float
    shift_y: float

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _work_image(image: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    s = min(1.0, work_size / max(h, w))
    if s < 1.0:
        image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return image, s


class LBPDetector:
    """scikit-image's LBP frontal-face cascade. Its box covers the inner face (brows to mouth),
    so the crop is ~2.8x the box and centred a little below it."""

    name = "lbp"
    side_scale = 2.8
    shift_y = 0.3

    def __init__(self, work_size: int = 320) -> None:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade

        self.work_size = work_size
        self._cascade = Cascade(lbp_frontal_face_cascade_filename())
        self._lock = threading.Lock()  # the cascade object is not re-entrant

    def detect(self, image: np.ndarray) -> list[Box]:
        img = np.asarray(image)
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        small, s = _work_image(grey, self.work_size)
        side = min(small.shape[:2])
        if side < 24:
            return []
        with self._lock:
            found = self._cascade.detect_multi_scale(img=small, scale_factor=1.15, step_ratio=1, min_size=(24, 24),
                                                     max_size=(side, side), min_neighbor_number=2)
        return [(d["c"] / s, d["r"] / s, d["width"] / s, d["height"] / s) for d in found]


BLAZEFACE_FILES = ("blazeface.pth", "anchors.npy")


def face_alignment_weights_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def face_alignment_weights_cached() -> bool:
    """Whether face-alignment's BlazeFace weights are already in the torch hub cache."""
    folder = face_alignment_weights_dir()
    return all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in BLAZEFACE_FILES)


class FaceAlignmentDetector:
    """face-alignment's BlazeFace (front model). Its box spans brows-to-chin."""

    name = "face-alignment"
    side_scale = 1.75
    shift_y = 0.0

    def __init__(self, device: str = "cpu", allow_download: bool = True,
                 notice: Callable[[str], None] | None = None) -> None:
        folder = face_alignment_weights_dir()
        weights, anchors = (folder / name for name in BLAZEFACE_FILES)
        try:
            from face_alignment.detection.blazeface.blazeface_detector import BlazeFaceDetector
        except ImportError as err:
            raise AvatarcamError(f"face-alignment is not installed ({err}); `pip install face-alignment` "
                                 f"or use --detector lbp.") from None
        try:
            if face_alignment_weights_cached():
                self._det = BlazeFaceDetector(device, path_to_detector=os.fspath(weights),
                                              path_to_anchor=os.fspath(anchors))
            elif not allow_download:
                raise AvatarcamError(f"face-alignment's detector weights are not in {folder}; run once online "
                                     f"with --detector face-alignment, or use --detector lbp.")
            else:
                if notice:
                    notice(f"downloading face-alignment's face detector weights (first use) into {folder}")
                self._det = BlazeFaceDetector(device)
        except AvatarcamError:
            raise
        except Exception as err:  # noqa: BLE001 - offline: URLError; corrupt file: RuntimeError
            raise AvatarcamError(f"face-alignment's detector could not be loaded ({type(err).__name__}: {err}); "
                                 f"connect once to download it into {folder}, or use --detector lbp.") from None

    def detect(self, image: np.ndarray) -> list[Box]:
        img = np.asarray(image)
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        h, w = img.shape[:2]
        side = max(h, w)  # BlazeFace crops to a centred square: pad instead so edge faces are kept
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top:top + h, left:left + w] = img
        boxes = self._det.detect_from_image(square[:, :, ::-1].copy())  # it expects BGR like cv2
        out = []
        for b in boxes if boxes is not None else []:
            if len(b) < 4:
                continue
            x1, y1, x2, y2 = (float(v) for v in b[:4])
            out.append((x1 - left, y1 - top, x2 - x1, y2 - y1))
        return out


def make_detector(name: str = "auto", *, allow_download: bool = True,
                  notice: Callable[[str], None] | None = None) -> FaceDetector:
    """"auto": BlazeFace if its weights are cached (never downloads), else LBP."""
    if name == "lbp":
        return LBPDetector()
    if name == "face-alignment":
        return FaceAlignmentDetector(allow_download=allow_download, notice=notice)
    if name == "auto":
        if face_alignment_weights_cached():
            try:
                return FaceAlignmentDetector(allow_download=False)
            except AvatarcamError as err:
                if notice:
                    notice(f"{err} Using the LBP face detector instead.")
        return LBPDetector()
    raise AvatarcamError(f"unknown face detector {name!r}; use auto, face-alignment or lbp.")


# boxes and crops --------------------------------------------------------------------------------
def box_to_square(box: Box, detector: FaceDetector) -> np.ndarray:
    """Detector box -> (cx, cy, side) of the VoxCeleb-like square."""
    x, y, w, h = box
    size = (w + h) / 2
    return np.array([x + w / 2, y + h / 2 + detector.shift_y * size, detector.side_scale * size])


def pick_face(boxes: list[Box], near: np.ndarray | None = None) -> Box | None:
    """The largest face, or with a previous square given, the face nearest to it among those
    at least half as large as the largest."""
    if not boxes:
        return None
    largest = max(boxes, key=lambda b: b[2] * b[3])
    if near is None:
        return largest
    big = [b for b in boxes if b[2] >= 0.5 * largest[2]]
    return min(big, key=lambda b: (b[0] + b[2] / 2 - near[0]) ** 2 + (b[1] + b[3] / 2 - near[1]) ** 2)


def extract_crop(image: np.ndarray, cx: float, cy: float, side: float, size: int = CROP_SIZE) -> np.ndarray:
    """The square (cx, cy, side) of an image resized to size x size; outside pixels replicate the edge."""
    side = max(side, 2.0)
    s = size / side
    x0, y0 = cx - side / 2, cy - side / 2
    m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)
    if s < 0.5:  # strong downscale: pre-shrink so linear sampling does not alias
        k = int(1 / s) // 2 * 2 or 1
        small = cv2.resize(image, None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA)
        m[:, :2] *= k
        image = small
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_portrait(image: np.ndarray, detector: FaceDetector | None = None, size: int = CROP_SIZE) -> np.ndarray:
    """Any photo (grey/RGB/RGBA, uint8 or float) -> size x size uint8 RGB framed around its face
    like the model's training data; the centred square when no face is found."""
    rgb = to_rgb_float(image)
    u8 = (rgb * 255.0 + 0.5).astype(np.uint8)
    det = detector or LBPDetector(work_size=400)
    face = pick_face(det.detect(u8))
    if face is None:
        sq = center_square(u8)
        interp = cv2.INTER_AREA if sq.shape[0] > size else cv2.INTER_LINEAR
        return cv2.resize(sq, (size, size), interpolation=interp)
    cx, cy, side = box_to_square(face, det)
    side = min(side, 1.0 * max(u8.shape[:2]))
    return extract_crop(u8, cx, cy, side, size)


# framer -----------------------------------------------------------------------------------------
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
    ``start_async()`` moves detection to a background thread (always on the newest frame), so
    detection time never adds to the frame's latency.
    """

    MIN_ZOOM, MAX_ZOOM = 0.3, 4.0

    def __init__(self, detector: FaceDetector | None = None, *, mode: str = "auto", zoom: float = 1.0,
                 offset: tuple[float, float] = (0.0, 0.0), detect_every: int = 3, smoothing: float = 0.7,
                 hold_seconds: float = 1.0, size: int = CROP_SIZE) -> None:
        self._detector = detector
        self.detect_every = max(1, int(detect_every))
        self.hold_seconds = hold_seconds
        self.size = size
        self._lock = threading.Lock()
        self._mode = "auto"
        self.mode = mode
        self._zoom = 1.0
        self._offset = (0.0, 0.0)
        self._initial = (float(zoom), (float(offset[0]), float(offset[1])))
        self.zoom, self.offset = self._initial
        self.smoothing = smoothing
        self._filter = OneEuroFilter(*self._filter_params(smoothing))
        self._target: np.ndarray | None = None  # (cx, cy, side) of the last detection
        self._target_t = -1e9
        self._count = 0
        self.last_detect_ms = 0.0
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
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = LBPDetector()
        return self._detector

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in ("auto", "manual"):
            raise AvatarcamError(f"unknown framing mode {value!r}; use auto or manual.")
        self._mode = value

    @property
    def zoom(self) -> float:
        return self._zoom

    @zoom.setter
    def zoom(self, value: float) -> None:
        self._zoom = float(min(max(value, self.MIN_ZOOM), self.MAX_ZOOM))

    @property
    def offset(self) -> tuple[float, float]:
        return self._offset

    @offset.setter
    def offset(self, value: tuple[float, float]) -> None:
        dx, dy = (float(min(max(v, -1.0), 1.0)) for v in value)
        self._offset = (dx, dy)

    def zoom_by(self, factor: float) -> None:
        """factor > 1 zooms in (the face gets bigger)."""
        with self._lock:
            self.zoom = self._zoom * float(factor)

    def move(self, dx: float, dy: float) -> None:
        """Shift the crop by fractions of its side (+x right, +y down)."""
        with self._lock:
            self.offset = (self._offset[0] + dx, self._offset[1] + dy)

    def reset(self) -> None:
        """Zoom 1, no offset, and forget the tracked face."""
        with self._lock:
            self.zoom, self.offset = 1.0, (0.0, 0.0)
            self._filter.reset()
            self._target, self._target_t = None, -1e9
            self._count = 0

    # detection -----------------------------------------------------------------------------------
    def _run_detector(self, image: np.ndarray, t: float) -> None:
        t0 = time.perf_counter()
        try:
            boxes = self.detector.detect(image)
        except Exception:  # noqa: BLE001 - a detector hiccup just means "no face this time"
            boxes = []
        self.last_detect_ms = (time.perf_counter() - t0) * 1000
        face = pick_face(boxes, self._target)
        if face is not None:
            with self._lock:
                self._target, self._target_t = box_to_square(face, self.detector), t

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
                zoom, (ox, oy) = self._zoom, self._offset
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
            zoom, (ox, oy) = self._zoom, self._offset
            if target is None:
                return FramingResult(None, None, False)
            smooth = self._filter(target / h, t) * h if self.smoothing > 0 else target
        cx, cy, side = smooth
        side = side / zoom
        cx, cy = cx + ox * side, cy + oy * side
        found = t - target_t <= self.hold_seconds
        return FramingResult(extract_crop(image, cx, cy, side, self.size),
                             (round(cx - side / 2), round(cy - side / 2), round(side)), found)
