"""User settings: a small JSON file in the user's config folder.

Qt-free. Loading never fails: a corrupt file is moved aside (``settings.json.corrupt-<time>``)
and defaults are used; unknown keys are ignored and bad values replaced by their defaults.
Saving is atomic (temporary file + ``os.replace``); a folder that cannot be written gives a
notice string, never an exception.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from . import paths

SETTINGS_NAME = "settings.json"
MAX_SETTINGS_BYTES = 1 << 20

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
FRAMINGS = ("auto", "manual")
DETECTORS = ("auto", "face-alignment", "lbp")
CAPTURE_SIZES = ((640, 480), (1280, 720), (960, 540), (320, 240), (1920, 1080))
VCAM_SIZES = ((640, 480), (1280, 720), (960, 540), (512, 512), (256, 256))


@dataclass
class Settings:
    """Everything the user can set; field defaults are the defaults."""

    camera: str = "0"  # camera index, video file or stream URL
    capture_size: tuple[int, int] = (640, 480)
    checkpoint: str = ""  # "" = look in the default places (paths.find_checkpoint)
    device: str = "auto"
    precision: str = "auto"
    framing: str = "auto"
    detector: str = "auto"
    zoom: float = 1.0
    relative: bool = True
    adapt_scale: bool = True
    stabilize: float = 0.5
    vcam: bool = True
    vcam_size: tuple[int, int] = (640, 480)
    vcam_fps: float = 30.0
    mirror_output: bool = False
    mirror_preview: bool = True
    overlay: bool = False
    overlay_opacity: float = 0.4
    show_stats: bool = False
    avatar: str = ""  # path of the last avatar used
    record_dir: str = ""  # "" = the user's videos folder

    def copy(self, **changes: Any) -> Settings:
        data = asdict(self)
        data.update(changes)
        return Settings(**data)


_CHOICES: dict[str, tuple[str, ...]] = {
    "device": DEVICES, "precision": PRECISIONS, "framing": FRAMINGS, "detector": DETECTORS,
}
_RANGES: dict[str, tuple[float, float]] = {
    "zoom": (0.3, 4.0), "stabilize": (0.0, 1.0), "vcam_fps": (1.0, 120.0), "overlay_opacity": (0.05, 0.95),
}
_SIZE_RANGE = (16, 7680)


def _valid(name: str, value: Any, default: Any) -> Any:
    """The value converted to the field's type, or raise ValueError."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ValueError
    if isinstance(default, tuple):
        if (isinstance(value, (list, tuple)) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                and all(_SIZE_RANGE[0] <= v <= _SIZE_RANGE[1] for v in value)):
            return (int(value[0]), int(value[1]))
        raise ValueError
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError
        lo, hi = _RANGES.get(name, (-math.inf, math.inf))
        if not lo <= value <= hi:
            raise ValueError
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str) or len(value) > 4096 or "\x00" in value:
            raise ValueError
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ValueError
        if name == "camera" and not value.strip():
            raise ValueError
        return value
    raise ValueError


def from_dict(data: Any) -> tuple[Settings, list[str]]:
    """Settings from parsed JSON; returns the names of values that were replaced by defaults."""
    defaults = Settings()
    if not isinstance(data, dict):
        return defaults, ["(whole file)"]
    values: dict[str, Any] = {}
    bad: list[str] = []
    for f in fields(Settings):
        if f.name not in data:
            continue
        default = getattr(defaults, f.name)
        try:
            values[f.name] = _valid(f.name, data[f.name], default)
        except ValueError:
            bad.append(f.name)
    return Settings(**values), bad


def to_dict(settings: Settings) -> dict[str, Any]:
    data = asdict(settings)
    for k, v in data.items():
        if isinstance(v, tuple):
            data[k] = list(v)
    return data


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
    text = json.dumps(to_dict(settings), indent=2, sort_keys=True) + "\n"
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        return None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return f"Settings could not be saved to {path} ({reason}); check that the folder is writable."
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def checkpoint_path(settings: Settings) -> Path:
    """The checkpoint these settings use: the chosen file, else the default places."""
    return paths.find_checkpoint(settings.checkpoint or None)


__all__ = ["Settings", "load_settings", "save_settings", "settings_path", "from_dict", "to_dict",
           "checkpoint_path"]
