"""Where the checkpoint goes: its destination, the resumable ``.part`` next to it, the steps by hand."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..paths import CHECKPOINT_NAME, CHECKPOINT_URL, user_models_dir


def default_destination() -> Path:
    return user_models_dir() / CHECKPOINT_NAME


def resolve_destination(dest: str | os.PathLike | None) -> Path:
    """``dest`` as a file path; a folder (existing, or written with a trailing slash) gets the
    standard file name inside it."""
    if dest is None:
        return default_destination()
    text = os.fspath(dest)
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)):
        return path / CHECKPOINT_NAME
    return path


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def meta_path(dest: Path) -> Path:
    """Where the partial file came from (URL, ETag), so that a resume can be trusted."""
    return dest.with_name(dest.name + ".part.json")


def discard_partial(dest: Path) -> None:
    """Delete the partial download of ``dest`` and its description (whichever exist)."""
    for path in (part_path(dest), meta_path(dest)):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def manual_steps(dest: Path, url: str = CHECKPOINT_URL) -> str:
    return f"to get it by hand, download {url} and save it as {dest}"


def megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"
