"""Image conversions and safe image loading.

Images are untrusted files: the size is read from the header before decoding, and every
failure is one ``MediaError`` line. Big pictures (phones take 48-200 megapixel photos) are not
refused: a JPEG is decoded at 1/2, 1/4 or 1/8 of its size by the JPEG decoder itself
(``cv2.IMREAD_REDUCED_COLOR_*``, chosen from the header), other formats are decoded whole within
a memory bound and scaled down, so an avatar never holds more than ``MAX_DECODED_PIXELS``. Only
absurd headers (decompression bombs: a few KB that claim gigapixels) are refused before decoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import MediaError

MAX_IMAGE_PIXELS = 400_000_000  # twice the largest phone sensor (200 MP); more is refused from the header
MAX_DECODE_BYTES = 768 << 20  # memory a whole-picture decode may take (formats without reduced decoding)
MAX_DECODED_PIXELS = 12_000_000  # what a picture is reduced to at most (the avatar itself is 256x256)
MAX_IMAGE_BYTES = 200 << 20
REDUCED_DECODE = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}  # JPEG decodes at these scales directly (DCT scaling)
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


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str  # Pillow's name: "JPEG", "PNG", ...
    bytes_per_pixel: int  # as OpenCV decodes it (a palette becomes 3 channels, 16-bit stays 2 bytes)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _read_header(path: Path) -> ImageHeader | None:
    """The picture's size and format from its header, without decoding pixels; None if unknown."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with scikit-image / face-alignment
        return None
    Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit, with a clearer message
    try:
        with Image.open(path) as im:
            depth = 2 if im.mode.startswith("I;16") else 4 if im.mode in ("I", "F") else 1
            return ImageHeader(im.size[0], im.size[1], im.format or "", max(3, len(im.getbands())) * depth)
    except Exception:  # noqa: BLE001 - not a format Pillow knows: OpenCV may still read it
        return None


def reduction(header: ImageHeader) -> int:
    """The JPEG decoder's scale-down factor (1, 2, 4 or 8) for a picture of this size: the
    smallest that keeps it within MAX_DECODED_PIXELS (8 at most; the rest is a resize)."""
    for factor in REDUCED_DECODE:
        if -(-header.width // factor) * -(-header.height // factor) <= MAX_DECODED_PIXELS:
            return factor
    return max(REDUCED_DECODE)


def _decode(path: Path, header: ImageHeader | None) -> np.ndarray | None:
    """The decoded picture (OpenCV channel order), reduced to at most MAX_DECODED_PIXELS."""
    data = np.fromfile(path, dtype=np.uint8)
    if header is not None and header.format == "JPEG":  # EXIF orientation applied, as viewers show it
        img = cv2.imdecode(data, REDUCED_DECODE[reduction(header)])
    else:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data
    if img is not None and img.shape[0] * img.shape[1] > MAX_DECODED_PIXELS:
        scale = (MAX_DECODED_PIXELS / (img.shape[0] * img.shape[1])) ** 0.5
        size = (max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def _check_header(path: Path, header: ImageHeader | None) -> None:
    """Refuse, before decoding, what no avatar needs: absurd sizes (decompression bombs)."""
    if header is None:
        return
    size = f"{header.width}x{header.height} pixels"
    if header.pixels > MAX_IMAGE_PIXELS:
        raise MediaError(f"{path}: {size} is over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit "
                         f"(a damaged or malicious file?); use a smaller picture.")
    if header.format != "JPEG" and header.pixels * header.bytes_per_pixel > MAX_DECODE_BYTES:
        raise MediaError(f"{path}: {size} as {header.format or 'this format'} needs "
                         f"{header.pixels * header.bytes_per_pixel >> 20} MB to decode; save it as JPEG "
                         f"(decoded reduced) or scale it down.")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 float32 RGB in [0,1]; grey, RGBA and 16-bit are converted; a
    picture over MAX_DECODED_PIXELS is reduced (its aspect kept)."""
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
    header = _read_header(path)
    _check_header(path, header)
    img = _decode(path, header)
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
