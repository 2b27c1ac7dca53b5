"""Avatar pictures: the bundled ``avatars/`` folder plus the user's avatar folder.

Qt-free. ``add_avatar`` validates an image, crops it around its face and copies it into the
user's avatar folder under a name that never replaces an existing file. ``prepare_avatar_image``
turns any picture into the model's 256x256 avatar.
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
from ..imaging import IMAGE_SUFFIXES, center_square, load_image, resize_square, to_rgb_float, to_uint8
from .crop import CROP_SIZE, crop_portrait

AVATAR_SIZE = CROP_SIZE


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


def crop_face(image: np.ndarray) -> np.ndarray:
    """A square portrait around the picture's face, AVATAR_SIZE x AVATAR_SIZE RGB uint8; the
    centred square when the face detector fails."""
    img = to_uint8(image)
    try:
        return resize_square(crop_portrait(img), AVATAR_SIZE)
    except MediaError:
        raise
    except Exception:  # noqa: BLE001 - a detector problem must not stop the user adding a picture
        return resize_square(np.ascontiguousarray(center_square(img)), AVATAR_SIZE)


def default_avatar() -> str:
    """The first bundled avatar (``avatars/`` in the install)."""
    folder = paths.bundled_avatars_dir()
    found = _images_in(folder)
    if not found:
        raise AvatarcamError(f"no bundled avatars in {folder}; pass --avatar PATH with a portrait picture.")
    return str(found[0])


def prepare_avatar_image(image: str | os.PathLike | np.ndarray) -> np.ndarray:
    """A path or an array -> the 256x256 uint8 avatar. A picture of exactly 256x256 is taken as
    already framed; anything else is cropped around its face (``crop_portrait``)."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[:2] == (AVATAR_SIZE, AVATAR_SIZE):
        return to_uint8(to_rgb_float(arr))
    return crop_portrait(arr)


_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _base_name(src: Path) -> str:
    stem = _SAFE.sub("_", src.stem).strip(" ._-")[:60]
    return stem or "avatar"


def add_avatar(src: str | os.PathLike, user_dir: str | os.PathLike | None = None) -> Path:
    """Copy an image into the user's avatar folder (face-cropped, as PNG); returns the new path.

    Never overwrites: ``name.png``, ``name-2.png``, ``name-3.png``... A bad image raises
    ``MediaError`` and nothing is written.
    """
    src = Path(src).expanduser()
    image = load_image(src)  # MediaError with a one-line fix for anything unreadable
    portrait = crop_face(image)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(portrait, cv2.COLOR_RGB2BGR))
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


def load_avatar(path: str | os.PathLike) -> np.ndarray:
    """An avatar file as AVATAR_SIZE x AVATAR_SIZE RGB uint8 (centre-cropped if not square)."""
    img = to_uint8(load_image(path))
    return resize_square(np.ascontiguousarray(center_square(img)), AVATAR_SIZE)
