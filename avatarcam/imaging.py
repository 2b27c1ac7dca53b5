"""Image conversions and safe image loading.

Images are untrusted files: the pixel count is checked from the header before decoding
(decompression bombs), and every failure is one ``MediaError`` line.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import MediaError

MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_BYTES = 200 << 20
MIN_IMAGE_SIDE = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """Any grey / RGB / RGBA array, uint8, uint16 or float in [0,1] -> HxWx3 float32 RGB in [0,1].

    Transparency is composited onto white, as a viewer would show it.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise MediaError(f"image of shape {arr.shape} is not a grey, RGB or RGBA picture")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        out = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    else:
        raise MediaError(f"image dtype {arr.dtype} is not supported (use uint8, uint16 or float)")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        alpha = out[:, :, 3:4]
        out = out[:, :, :3] * alpha + (1.0 - alpha)
    return np.ascontiguousarray(out)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0,1] (values outside are clipped) -> uint8, rounded to nearest; uint8 passes through."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def opencv_to_rgb(frame: np.ndarray) -> np.ndarray:
    """A frame as OpenCV decodes it (grey, BGR or BGRA) -> HxWx3 uint8 RGB."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 image to size x size (area filter when shrinking)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an image."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header without decoding pixels, or None if unknown."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with scikit-image / face-alignment
        return None
    Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit below, with a clearer message
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 float32 RGB in [0,1]; grey, RGBA and 16-bit are converted."""
    path = Path(path).expanduser()
    if not path.exists():
        raise MediaError(f"{path}: image not found; check the path.")
    if not path.is_file():
        raise MediaError(f"{path}: not a file; pass an image file (PNG or JPEG).")
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"{path}: file is empty; pick another image.")
    if size > MAX_IMAGE_BYTES:
        raise MediaError(f"{path}: {size >> 20} MB is too large for an avatar; use a smaller image.")
    dims = _header_size(path)
    if dims is not None and dims[0] * dims[1] > MAX_IMAGE_PIXELS:
        raise MediaError(f"{path}: {dims[0]}x{dims[1]} pixels is over the {MAX_IMAGE_PIXELS // 1_000_000} "
                         f"megapixel limit; scale the image down first.")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MediaError(f"{path}: not a readable image (corrupt or unsupported format); use a PNG or JPEG.")
    if img.ndim == 2 or img.shape[2] == 1:
        rgb = img
    elif img.shape[2] == 3:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.shape[2] == 4:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    else:
        raise MediaError(f"{path}: {img.shape[2]}-channel images are not supported; save it as RGB.")
    if min(rgb.shape[:2]) < MIN_IMAGE_SIDE:
        raise MediaError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is too small; use a picture at least "
                         f"{MIN_IMAGE_SIDE} pixels on each side (256 or more looks best).")
    try:
        return to_rgb_float(rgb)
    except MediaError as err:
        raise MediaError(f"{path}: {err}") from None
