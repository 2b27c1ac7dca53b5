"""User settings: a small JSON file in the user's config folder.

Qt-free. ``Settings`` is the pipeline's ``PipelineConfig`` plus the window's own preferences, so
every range and choice comes from ``pipeline/config.py``; each field declares (``declare``) whether a
change applies live or restarts the pipeline. Loading never fails: a corrupt file is
moved aside (``settings.json.corrupt-<time>``) and defaults are used; unknown keys are ignored and
bad values replaced by their defaults. Saving is atomic; a folder that cannot be written gives a
notice string, never an exception.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import paths
from .engine.options import DEVICES, PRECISIONS
from .errors import AvatarcamError
from .pipeline.config import (
    CAPTURE_SIZES,
    DETECTORS,
    FRAMINGS,
    LIVE,
    RESTART,
    VCAM_SIZES,
    PipelineConfig,
    check_value,
    declare,
)

SETTINGS_NAME = "settings.json"
MAX_SETTINGS_BYTES = 1 << 20
OVERLAY_OPACITY_RANGE = (0.05, 0.95)
MODEL_PLACES = ("local", "remote")  # the model runs on this computer | an `avatarcam serve` worker


@dataclass
class Settings(PipelineConfig):
    """Everything the user can set: the pipeline's config plus UI preferences; defaults are the defaults."""

    # The window's own preferences: the keys (O, Z, I...) change them while it runs, and the record
    # folder and the consent notice are read when used, so all apply live.
    mirror_preview: bool = field(default=True, metadata=declare(LIVE))
    overlay: bool = field(default=False, metadata=declare(LIVE))
    overlay_opacity: float = field(default=0.4, metadata=declare(LIVE, range=OVERLAY_OPACITY_RANGE))
    show_stats: bool = field(default=False, metadata=declare(LIVE))
    record_dir: str | None = field(default=None, metadata=declare(LIVE))  # None = the user's videos folder
    consent_seen: bool = field(default=False, metadata=declare(LIVE))  # the first-run consent notice was read
    # Where the model runs is chosen when the pipeline starts: a change restarts it.
    model_on: str = field(default="local", metadata=declare(
        RESTART, choices=MODEL_PLACES, label="Model runs on", group="Model"))
    remote_url: str | None = field(default=None, metadata=declare(  # ws://host:port (docs/remote.md)
        RESTART, label="Worker address", group="Model"))
    remote_token: str | None = field(default=None, metadata=declare(  # None = $AVATARCAM_TOKEN
        RESTART, label="Worker token", group="Model", secret=True))

    def copy(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(**{f.name: getattr(self, f.name) for f in fields(PipelineConfig)})


def from_dict(data: Any) -> tuple[Settings, list[str]]:
    """Settings from parsed JSON; returns the names of values that were replaced by defaults."""
    if not isinstance(data, dict):
        return Settings(), ["(whole file)"]
    values: dict[str, Any] = {}
    bad: list[str] = []
    for spec in fields(Settings):
        if spec.name not in data or spec.metadata.get("session_only"):
            continue
        try:
            values[spec.name] = check_value(spec, data[spec.name])
        except AvatarcamError:
            bad.append(spec.name)
    return Settings(**values), bad


def to_dict(settings: Settings) -> dict[str, Any]:
    """What the settings file stores: every preference, no session-only field."""
    session = {f.name for f in fields(Settings) if f.metadata.get("session_only")}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items() if k not in session}


def settings_path() -> Path:
    return paths.user_config_dir() / SETTINGS_NAME


def _move_aside(path: Path) -> Path | None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 2
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        os.replace(path, target)
        return target
    except OSError:
        return None


def load_settings(path: str | os.PathLike | None = None) -> tuple[Settings, str | None]:
    """(settings, notice): the notice is a one-line message for the user, or None."""
    path = Path(path) if path is not None else settings_path()
    try:
        if not path.exists():
            return Settings(), None
        if path.stat().st_size > MAX_SETTINGS_BYTES:
            raise ValueError("file too large")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return Settings(), f"Settings file {path} could not be read ({reason}), so defaults are used."
    except ValueError:  # includes JSON and Unicode decoding errors
        moved = _move_aside(path)
        where = f"; the old file was kept as {moved}" if moved else ""
        return Settings(), f"Settings file {path} could not be read, so defaults are used{where}."
    settings, bad = from_dict(data)
    notice = None
    if bad:
        notice = f"Settings file {path}: invalid value(s) for {', '.join(bad)} were reset to defaults."
    return settings, notice


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> str | None:
    """Write atomically; returns None on success or a one-line notice saying what went wrong."""
    path = Path(path) if path is not None else settings_path()
    try:
        # 0600: the file may hold the remote worker's token
        paths.atomic_write_text(path, json.dumps(to_dict(settings), indent=2, sort_keys=True) + "\n", mode=0o600)
        return None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return f"Settings could not be saved to {path} ({reason}); check that the folder is writable."


def checkpoint_path(settings: Settings) -> Path:
    """The checkpoint these settings use: the chosen file, else the default places."""
    return paths.find_checkpoint(settings.checkpoint or None)


__all__ = ["Settings", "load_settings", "save_settings", "settings_path", "from_dict", "to_dict",
           "checkpoint_path", "DEVICES", "PRECISIONS", "FRAMINGS", "DETECTORS", "CAPTURE_SIZES", "VCAM_SIZES",
           "OVERLAY_OPACITY_RANGE", "MODEL_PLACES"]
