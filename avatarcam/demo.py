"""Synthetic driving clips from the public-domain astronaut portrait (scikit-image sample data).

Used by tests, benchmarks and demos on machines without a webcam: a face that moves, turns and
zooms smoothly over time, optionally pasted on a larger background at known positions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np


def astronaut_face(size: int = 256) -> np.ndarray:
    """The astronaut portrait, square-cropped around the face, size x size RGB uint8."""
    from skimage.data import astronaut

    img = astronaut()  # 512x512; the face spans about x 170..330, y 20..200
    crop = img[0:300, 105:405]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Warp:
    angle_deg: float = 0.0
    scale: float = 1.0
    tx: float = 0.0
    ty: float = 0.0

    def matrix(self, size: int) -> np.ndarray:
        c = (size - 1) / 2
        m = cv2.getRotationMatrix2D((c, c), self.angle_deg, self.scale)
        m[0, 2] += self.tx
        m[1, 2] += self.ty
        return m


def warp_image(image: np.ndarray, warp: Warp) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, warp.matrix(w), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def head_motion(t: float, amplitude: float = 1.0) -> Warp:
    """A smooth nod/turn/zoom path; t in frames at 30 fps."""
    a = amplitude
    return Warp(angle_deg=6 * a * math.sin(t / 9), scale=1 + 0.04 * a * math.sin(t / 13),
                tx=8 * a * math.sin(t / 7), ty=5 * a * math.sin(t / 11))


def driving_frames(n: int, size: int = 256, amplitude: float = 1.0, face: np.ndarray | None = None) -> list[np.ndarray]:
    """n RGB uint8 frames of the astronaut face moving; frame 0 is the neutral pose."""
    face = astronaut_face(size) if face is None else face
    return [warp_image(face, head_motion(i, amplitude)) if i else face.copy() for i in range(n)]


def write_clip(path: str | os.PathLike, frames: list[np.ndarray], fps: float = 30.0) -> str:
    """Write RGB uint8 frames as an mp4 (mp4v) readable by OpenCV."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return os.fspath(path)


def face_on_background(positions: list[tuple[int, int]], face_size: int = 200,
                       frame_size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """Frames of the astronaut face pasted at known top-left positions on a plain background."""
    face = astronaut_face(face_size)
    w, h = frame_size
    out = []
    for x, y in positions:
        frame = np.full((h, w, 3), (60, 80, 100), np.uint8)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + face_size), min(h, y + face_size)
        frame[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
        out.append(frame)
    return out
