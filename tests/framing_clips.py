"""Synthetic moving-face clips with known truth, for framing tests and scripts/bench_framing.py.

Each clip is the astronaut face (tests/synthetic.py) pasted on a plain 640x480 background, moving,
turning or zooming; ``Clip.centres``/``sides`` are the true face centre and pasted size per frame.
``FalseDetections`` wraps a real detector and adds a large face-like box on the shoulder on given
frames: the false detection of issue 14 (crop side 170 -> 420 px, centre ~190 px off the face).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from synthetic import Warp, astronaut_face, warp_image

FRAME = (640, 480)
BACKGROUND = (60, 80, 100)


@dataclass
class Clip:
    name: str
    frames: list[np.ndarray]
    centres: np.ndarray  # (N, 2) true face centre, pixels
    sides: np.ndarray  # (N,) pasted face size, pixels


def _paste(face: np.ndarray, cx: float, cy: float) -> np.ndarray:
    w, h = FRAME
    frame = np.full((h, w, 3), BACKGROUND, np.uint8)
    s = face.shape[0]
    x, y = round(cx - s / 2), round(cy - s / 2)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + s), min(h, y + s)
    frame[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


def _clip(name: str, n: int, path) -> Clip:
    frames, centres, sides = [], [], []
    for i in range(n):
        cx, cy, size, angle = path(i)
        size = int(round(size))
        face = astronaut_face(size)
        if angle:
            face = warp_image(face, Warp(angle_deg=angle))
        frames.append(_paste(face, cx, cy))
        centres.append((cx, cy))
        sides.append(size)
    return Clip(name, frames, np.array(centres, float), np.array(sides, float))


def moving_clip(n: int = 60) -> Clip:
    """The face drifts across the frame and back (up to ~6 px per frame)."""
    return _clip("moving", n, lambda i: (320 + 120 * math.sin(i / 12), 230 + 40 * math.sin(i / 17), 200, 0.0))


def turning_clip(n: int = 60) -> Clip:
    """The face tilts +-15 degrees while drifting a little."""
    return _clip("turning", n, lambda i: (300 + 30 * math.sin(i / 15), 230, 200, 15 * math.sin(i / 8)))


def zooming_clip(n: int = 60) -> Clip:
    """The face comes closer and goes back (160 -> 250 -> 160 px)."""
    return _clip("zooming", n, lambda i: (320, 230, 205 + 45 * math.sin(i / 10), 0.0))


def clips(n: int = 60) -> list[Clip]:
    return [moving_clip(n), turning_clip(n), zooming_clip(n)]


class FalseDetections:
    """A real detector plus a large false box on the shoulder on the frames in ``frames``
    (counted per ``detect`` call): the second face-like region of issue 14."""

    def __init__(self, detector, frames: set[int], box: tuple[float, float, float, float] = (300, 270, 150, 150)):
        self.detector, self.frames, self.box = detector, frames, box
        self.name, self.side_scale, self.shift_y = detector.name, detector.side_scale, detector.shift_y
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        boxes = list(self.detector.detect(image))
        if self.calls in self.frames:
            boxes.append(self.box)
        self.calls += 1
        return boxes


def two_false_bursts(n: int = 60, length: int = 5) -> set[int]:
    """Two bursts of ``length`` frames with a false detection, in a 2-second clip."""
    return set(range(n // 4, n // 4 + length)) | set(range(n * 2 // 3, n * 2 // 3 + length))


def measure(framer, clip: Clip) -> dict[str, np.ndarray]:
    """Per frame: crop centre error vs the true face centre (pixels) and crop side (pixels)."""
    errors, sides = [], []
    for i, frame in enumerate(clip.frames):
        box = framer.frame(frame, i / 30).box
        if box is None:
            errors.append(np.nan)
            sides.append(np.nan)
            continue
        x, y, side = box
        errors.append(float(np.hypot(x + side / 2 - clip.centres[i, 0], y + side / 2 - clip.centres[i, 1])))
        sides.append(float(side))
    return {"centre_error": np.array(errors), "side": np.array(sides)}


class PreviousPicker:
    """The picking rule before issue 14 (``crop.pick_face``: the largest face, or the one nearest the
    last square among those at least half as large as the largest), as a detector that returns only
    the picked box. With ``NO_GATE`` framing follows it blindly: the old behaviour, for comparison."""

    def __init__(self, detector):
        self.detector = detector
        self.name, self.side_scale, self.shift_y = detector.name, detector.side_scale, detector.shift_y
        self.last = None

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        from avatarcam.pipeline.crop import box_to_square, pick_face

        face = pick_face(self.detector.detect(image), self.last)
        if face is None:
            return []
        self.last = box_to_square(face, self)
        return [face]


def no_gate():
    from avatarcam.pipeline.tracking import TrackGate

    return TrackGate(max_shift=math.inf, max_scale=math.inf, persist=1)
