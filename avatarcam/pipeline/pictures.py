"""Picture helpers every output shares: fit (letterbox) and cover geometry, the "AI" label.

Qt-free and model-free; the compositor (``compositor.py``), the worker and ``avatarcam animate``
use them. Sizes are (width, height); pictures are HxWx3 uint8 RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..imaging import to_uint8

AI_LABEL = "AI"  # drawn in the bottom-right corner of every animated frame that leaves avatarcam
Box = tuple[int, int, int, int]  # (left, top, width, height)


def fitted_box(shape: tuple[int, ...], size: tuple[int, int]) -> Box:
    """(left, top, width, height) of a picture of ``shape`` (H, W, ...) fitted inside ``size`` =
    (width, height) with its aspect kept, centred: where ``letterbox`` puts it."""
    w, h = size
    ih, iw = shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    return (w - nw) // 2, (h - nh) // 2, nw, nh


def resize_affine(shape: tuple[int, ...], box: Box) -> np.ndarray:
    """2x3: pixels of a picture of ``shape`` (H, W, ...) -> pixels of it resized into ``box``
    (cv2.resize's convention: pixel centres on integers)."""
    left, top, nw, nh = box
    fx, fy = nw / shape[1], nh / shape[0]
    return np.array([[fx, 0, 0.5 * fx - 0.5 + left], [0, fy, 0.5 * fy - 0.5 + top]])


def covering_box(shape: tuple[int, ...], size: tuple[int, int], centre: tuple[float, float] | None = None) -> Box:
    """(left, top, width, height) of a picture of ``shape`` scaled to cover ``size`` with its aspect
    kept (never bars), in output pixels: left/top <= 0. The part cut away is where the aspects differ,
    placed so that ``centre`` (picture pixels; default its middle) is as central as the picture allows."""
    w, h = size
    ih, iw = shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    cx, cy = centre if centre is not None else (iw / 2, ih / 2)
    left = min(0, max(w - nw, round(w / 2 - cx * nw / iw)))
    top = min(0, max(h - nh, round(h / 2 - cy * nh / ih)))
    return left, top, nw, nh


def place(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled into ``box`` (any part of it may lie outside) on a black ``size`` frame."""
    img = to_uint8(image)
    w, h = size
    left, top, nw, nh = box
    ih, iw = img.shape[:2]
    if (nw, nh) != (iw, ih):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if nw < iw else cv2.INTER_LINEAR)
    if (left, top, nw, nh) == (0, 0, w, h):
        return np.ascontiguousarray(img)
    out = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + nw), min(h, top + nh)
    out[y0:y1, x0:x1] = img[y0 - top:y1 - top, x0 - left:x1 - left]
    return out


def letterbox(image: np.ndarray, size: tuple[int, int], mirror: bool = False) -> np.ndarray:
    """Fit an RGB image (any shape) inside ``size`` = (width, height) keeping its aspect, padded
    with black; optionally mirrored left-right. Returns a new HxWx3 uint8 array."""
    return place(image[:, ::-1] if mirror else image, fitted_box(image.shape, size), size)


def draw_ai_label(image: np.ndarray, box: Box | None = None, *, copy: bool = True) -> np.ndarray:
    """``image`` (HxWx3 uint8; a copy unless ``copy=False``) with a small "AI" badge in the
    bottom-right corner of ``box`` = (left, top, width, height) (default: the whole image; a
    letterboxed picture passes its area inside the bars, so an app that crops the bars away keeps
    the label): white text on a dark box, about 1/20 of the picture's height, away from the face."""
    if copy:
        image = np.array(image, dtype=np.uint8)  # the caller's frame may be a held picture
    left, top, w, h = box or (0, 0, image.shape[1], image.shape[0])
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(h / 240))
    scale = cv2.getFontScaleFromHeight(font, max(9, round(h / 22)), thickness)
    (tw, th), _ = cv2.getTextSize(AI_LABEL, font, scale, thickness)
    pad = max(2, th // 3)
    x1, y1 = left + w - pad, top + h - pad
    x0, y0 = max(left, x1 - tw - 2 * pad), max(top, y1 - th - 2 * pad)
    badge = image[y0:y1, x0:x1]
    badge[:] = (badge.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40%: legible on any background
    cv2.putText(image, AI_LABEL, (x0 + pad, y1 - pad), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image
