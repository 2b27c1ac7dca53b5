"""Avatar pictures: the bundled ``avatars/`` folder plus the user's avatar folder.

Qt-free. ``add_avatar`` validates an image, crops it around its face and copies it into the
user's avatar folder under a name that never replaces an existing file. ``prepare_avatar_image``
turns any picture into the model's input (``avatar_picture.frame_avatar`` keeps the whole picture too).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import paths
from ..errors import AvatarcamError, MediaError
from ..imaging import IMAGE_SUFFIXES, center_square, load_image, resize_square, to_uint8
from .avatar_picture import bounded_picture, frame_avatar
from .crop import CROP_SIZE


@dataclass(frozen=True)
class Avatar:
    path: Path
    bundled: bool

    @property
    def name(self) -> str:
        return self.path.stem.replace("_", " ").replace("-", " ")


def _images_in(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted((p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                   and p.is_file()), key=lambda p: p.name.lower())


def list_avatars(user_dir: str | os.PathLike | None = None,
                 bundled_dir: str | os.PathLike | None = None) -> list[Avatar]:
    """Bundled avatars first (by name), then the user's (by name)."""
    bundled = Path(bundled_dir) if bundled_dir is not None else paths.bundled_avatars_dir()
    user = Path(user_dir) if user_dir is not None else paths.user_avatars_dir()
    out = [Avatar(p, True) for p in _images_in(bundled)]
    if user.resolve() != bundled.resolve():
        out += [Avatar(p, False) for p in _images_in(user)]
    return out


def default_avatar() -> str:
    """The first bundled avatar (``avatars/`` in the install)."""
    folder = paths.bundled_avatars_dir()
    found = _images_in(folder)
    if not found:
        raise AvatarcamError(f"no bundled avatars in {folder}; pass --avatar PATH with a portrait picture.")
    return str(found[0])


def prepare_avatar_image(image: str | os.PathLike | np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """A path or an array -> the size x size uint8 picture the model sees (``frame_avatar``): a
    picture of exactly that size is taken as already framed; anything else is cropped around its face."""
    return frame_avatar(image, size).model_input


_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _base_name(src: Path) -> str:
    stem = _SAFE.sub("_", src.stem).strip(" ._-")[:60]
    return stem or "avatar"


def add_avatar(src: str | os.PathLike, user_dir: str | os.PathLike | None = None) -> Path:
    """Copy an image into the user's avatar folder (the whole picture, as PNG, scaled down only
    beyond ``MAX_PICTURE_SIDE``: the output shows it, the face is framed when it is used); returns the new path.

    Never overwrites: ``name.png``, ``name-2.png``, ``name-3.png``... A bad image raises
    ``MediaError`` and nothing is written.
    """
    src = Path(src).expanduser()
    image = load_image(src)  # MediaError with a one-line fix for anything unreadable
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(bounded_picture(image), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - encoding a valid uint8 array does not fail
        raise MediaError(f"{src}: could not be converted to PNG; try another image.")
    folder = Path(user_dir) if user_dir is not None else paths.user_avatars_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MediaError(f"{folder}: cannot create the avatar folder ({err.strerror}); "
                         f"check its permissions.") from None
    base = _base_name(src)
    for n in range(1, 10_000):
        target = folder / (f"{base}.png" if n == 1 else f"{base}-{n}.png")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        except FileExistsError:
            continue
        except OSError as err:
            raise MediaError(f"{target}: cannot write the avatar ({err.strerror}); check the folder's permissions.") \
                from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encoded.tobytes())
        except OSError as err:
            try:
                target.unlink()
            except OSError:
                pass
            raise MediaError(f"{target}: cannot write the avatar ({err.strerror}); free some disk space.") from None
        return target
    raise MediaError(f"{folder}: too many avatars named {base}; rename the picture.")


def load_avatar(path: str | os.PathLike, size: int = CROP_SIZE) -> np.ndarray:
    """An avatar file as size x size RGB uint8 (centre-cropped if not square)."""
    img = to_uint8(load_image(path))
    return resize_square(np.ascontiguousarray(center_square(img)), size)
