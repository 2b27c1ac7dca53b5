"""Where avatarcam keeps and looks for files.

Weights are searched in this order: an explicit path, ``$AVATARCAM_CHECKPOINT``, the user's
models folder (platform data dir), and the source checkout's ``models/`` folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import platformdirs

APP_NAME = "avatarcam"
CHECKPOINT_NAME = "vox-adv-cpk.pth.tar"
CHECKPOINT_URL = "https://openavatarify.s3.amazonaws.com/weights/vox-adv-cpk.pth.tar"
REPO_ROOT = Path(__file__).resolve().parent.parent


def user_data_dir() -> Path:
    return Path(os.environ.get("AVATARCAM_DATA_DIR") or platformdirs.user_data_dir(APP_NAME))


def user_config_dir() -> Path:
    return Path(os.environ.get("AVATARCAM_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME))


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def user_avatars_dir() -> Path:
    return user_data_dir() / "avatars"


def bundled_avatars_dir() -> Path:
    return REPO_ROOT / "avatars"


def checkpoint_candidates(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Every place a checkpoint may be, most specific first."""
    out: list[Path] = []
    if explicit:
        out.append(Path(explicit).expanduser())
    env = os.environ.get("AVATARCAM_CHECKPOINT")
    if env:
        out.append(Path(env).expanduser())
    out += [user_models_dir() / CHECKPOINT_NAME, REPO_ROOT / "models" / CHECKPOINT_NAME]
    return out


def find_checkpoint(explicit: str | os.PathLike | None = None) -> Path:
    """The checkpoint to use: an explicit path as given (even if missing, so the error names
    it), else the first existing default location, else the user's models folder."""
    if explicit:
        return Path(explicit).expanduser()
    return next((path for path in checkpoint_candidates() if path.is_file()), user_models_dir() / CHECKPOINT_NAME)


class FileIdentity(NamedTuple):
    """A file's absolute path and version (size + mtime): the one cache key for "this file as it is now"."""

    path: str
    size: int
    mtime_ns: int


def file_identity(path: str | os.PathLike) -> FileIdentity | None:
    """The identity of ``path`` now, or None when it cannot be read (missing, unplugged drive)."""
    resolved = Path(path).expanduser().resolve()
    try:
        st = resolved.stat()
    except OSError:
        return None
    return FileIdentity(str(resolved), st.st_size, st.st_mtime_ns)


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, for a moment, for every thread)
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def make_temp_file(folder: str | os.PathLike, prefix: str, suffix: str) -> tuple[int, Path]:
    """``tempfile.mkstemp`` whose file gets the permissions a plain ``open()`` would give (the
    umask's), not mkstemp's private 0600: it is renamed into place as the user's output file."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~_umask())
    return fd, Path(tmp)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int | None = None) -> None:
    """Write ``text`` so that readers see the old file or the new one, never a half-written one.

    A temporary file in the same folder is fsynced, then renamed over ``path``; raises OSError.
    ``mode`` (e.g. 0o600 for a file holding a secret) is set before any byte is written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = make_temp_file(path.parent, f".{path.name}.", ".tmp")
    try:
        if mode is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
