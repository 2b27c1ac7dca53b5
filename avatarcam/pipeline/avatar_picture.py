"""The avatar as the pipeline keeps it: its whole picture, where the model's crop lies in it, the
model's input, and (once prepared) the animator's cached source.

The crop geometry is kept so that the compositor (``compositor.py``) can paste each animated crop
back into the full picture. The model's size comes from the animator (``animator.size``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..imaging import load_image, to_rgb_float, to_uint8
from .crop import crop_transform, extract_crop, portrait_square
from .detectors import FaceDetector
from .pictures import resize_affine

MAX_PICTURE_SIDE = 2048  # a larger avatar picture is scaled down to this long side once, when loaded


@dataclass(frozen=True, eq=False)
class AvatarPicture:
    """One avatar, ready for the stream. ``to_picture`` maps model pixels (the size x size crop) to
    picture pixels, ``to_model`` the other way (2x3 affines, OpenCV's pixel-centre convention)."""

    picture: np.ndarray  # HxWx3 uint8 RGB, long side <= MAX_PICTURE_SIDE
    to_picture: np.ndarray  # 2x3 float64, model -> picture
    to_model: np.ndarray  # 2x3 float64, picture -> model
    model_input: np.ndarray  # size x size x 3 uint8 RGB: what the animator sees
    source: Any = None  # the animator's prepared source (``prepare_source``), None until prepared

    @property
    def size(self) -> int:
        return self.model_input.shape[0]

    @property
    def crop_square(self) -> tuple[float, float, float]:
        """(cx, cy, side) of the model's crop in picture pixels."""
        m = self.to_picture
        side = m[0, 0] * self.size
        return m[0, 2] + side / 2, m[1, 2] + side / 2, side

    @property
    def centre(self) -> tuple[float, float]:
        """The model crop's centre in picture pixels."""
        c = (self.size - 1) / 2
        x, y = self.to_picture @ np.array([c, c, 1.0])
        return float(x), float(y)

    @property
    def nbytes(self) -> int:
        return self.picture.nbytes + self.model_input.nbytes


def bounded_picture(image: np.ndarray) -> np.ndarray:
    """RGB uint8, scaled down (area filter) when its long side exceeds MAX_PICTURE_SIDE."""
    img = to_uint8(to_rgb_float(image))
    h, w = img.shape[:2]
    if max(h, w) > MAX_PICTURE_SIDE:
        s = MAX_PICTURE_SIDE / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def frame_avatar(image: str | os.PathLike | np.ndarray, size: int,
                 detector: FaceDetector | None = None, *, whole: bool = False) -> AvatarPicture:
    """A path or an array -> the avatar record for a model of ``size``. A picture of exactly
    size x size is taken as already framed (the crop is the whole picture); anything else is framed
    around its face like the model's training data (``crop.portrait_square``); the crop may reach
    past the picture's border (its pixels are then the edge's, and nothing is pasted there).
    ``whole``: the whole picture resized to the square (full-frame domains such as taichi)."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    picture = bounded_picture(np.asarray(image))
    h, w = picture.shape[:2]
    if whole:
        to_picture = resize_affine((size, size), (0, 0, w, h))
        model_input = cv2.resize(picture, (size, size), interpolation=cv2.INTER_AREA)
        return AvatarPicture(picture, to_picture, cv2.invertAffineTransform(to_picture), model_input)
    square = (w / 2, h / 2, float(size)) if (h, w) == (size, size) else portrait_square(picture, detector)
    return avatar_at(picture, square, size)


def avatar_at(picture: np.ndarray, square: tuple[float, float, float], size: int) -> AvatarPicture:
    """The avatar record for the crop square (cx, cy, side) of an RGB uint8 ``picture``."""
    to_model = crop_transform(*square, size)
    model_input = extract_crop(picture, *square, size)
    return AvatarPicture(picture, cv2.invertAffineTransform(to_model), to_model, model_input)
