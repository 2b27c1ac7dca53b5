"""Avatar pictures: the bundled ``avatars/`` folder plus the user's avatar folder.

Qt-free. ``add_avatar`` validates an image, crops it around its face and copies it into the
user's avatar folder under a name that never replaces an existing file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import paths
from .errors import MediaError
from .imaging import IMAGE_SUFFIXES, center_square, load_image, resize_square

AVATAR_SIZE = 256


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


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def crop_face(image: np.ndarray) -> np.ndarray:
    """A square portrait around the picture's face, AVATAR_SIZE x AVATAR_SIZE RGB uint8.

    Uses the pipeline's face framing when available; otherwise the centred square.
    """
    img = to_uint8(image)
    try:
        from .pipeline.framing import crop_portrait
    except ImportError:
        crop_portrait = None
    if crop_portrait is not None:
        try:
            out = np.asarray(crop_portrait(img))
            if out.ndim == 3 and out.shape[2] == 3:
                return resize_square(to_uint8(out), AVATAR_SIZE)
        except MediaError:
            raise
        except Exception:  # a detector problem must not stop the user adding a picture
            pass
    return resize_square(np.ascontiguousarray(center_square(img)), AVATAR_SIZE)


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
