"""Crop geometry: a detector's face box -> the VoxCeleb-like square the model was trained on (the
face fills ~55-65% of the side, eyes a little above the centre; see each detector's box convention)."""

from __future__ import annotations

import cv2
import numpy as np

from ..imaging import to_rgb_float, to_uint8
from .detectors import Box, FaceDetector, LBPDetector

CROP_SIZE = 256


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


def crop_transform(cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The 2x3 affine from picture pixels to the size x size crop of the square (cx, cy, side)
    (OpenCV's convention: pixel centres on integers). Its inverse pastes the crop back."""
    s = size / max(side, 2.0)
    x0, y0 = cx - side / 2, cy - side / 2
    return np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)


def extract_crop(image: np.ndarray, cx: float, cy: float, side: float, size: int = CROP_SIZE) -> np.ndarray:
    """The square (cx, cy, side) of an image resized to size x size; outside pixels replicate the edge."""
    side = max(side, 2.0)
    m = crop_transform(cx, cy, side, size)
    s = m[0, 0]
    if s < 0.5:  # strong downscale: pre-shrink so linear sampling does not alias
        k = int(1 / s) // 2 * 2 or 1
        small = cv2.resize(image, None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA)
        m[:, :2] *= k
        image = small
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def portrait_square(image: np.ndarray, detector: FaceDetector | None = None) -> tuple[float, float, float]:
    """(cx, cy, side) of the VoxCeleb-like square around a photo's face (uint8 RGB), in its pixels;
    the centred square when no face is found. The square may reach past the picture's border."""
    h, w = image.shape[:2]
    det = detector or LBPDetector(work_size=400)
    face = pick_face(det.detect(image))
    if face is None:
        side = float(min(h, w))
        return w / 2, h / 2, side
    cx, cy, side = box_to_square(face, det)
    return float(cx), float(cy), float(min(side, 1.0 * max(h, w)))


def crop_portrait(image: np.ndarray, detector: FaceDetector | None = None, size: int = CROP_SIZE) -> np.ndarray:
    """Any photo (grey/RGB/RGBA, uint8 or float) -> size x size uint8 RGB framed around its face
    like the model's training data (``portrait_square``); the centred square when no face is found."""
    u8 = to_uint8(to_rgb_float(image))
    return extract_crop(u8, *portrait_square(u8, detector), size)
