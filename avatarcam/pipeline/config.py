"""Settings of the real-time pipeline (camera in, avatar out), each range and choice declared once.

The settings file (``avatarcam.settings``), the CLI (``choices=`` and range-checked types) and the
GUI's settings dialog all read the declarations below; ``check_value`` is the one validator.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields
from typing import Any

from ..engine.options import BACKENDS, DEVICES, NEUTRAL_WINDOW_RANGE, PRECISIONS, EngineOptions, check_choice
from ..errors import AvatarcamError

FRAMINGS = ("auto", "manual")  # follow the face | fixed centred crop
# the avatar picture covers the output (never bars) | the whole picture, padded | the model's square alone
OUTPUT_LAYOUTS = ("picture", "fit", "face")
DETECTORS = ("auto", "face-alignment", "lbp")
CAPTURE_SIZES = ((640, 480), (1280, 720), (960, 540), (320, 240), (1920, 1080))
VCAM_SIZES = ((1280, 720), (640, 480), (1920, 1080), (960, 540), (512, 512), (256, 256))
ZOOM_RANGE = (0.3, 4.0)
OFFSET_RANGE = (-1.0, 1.0)  # crop shift, in crop sides
STABILIZE_RANGE = (0.0, 1.0)
FPS_RANGE = (1.0, 240.0)
AUTO_CALIBRATE_RANGE = NEUTRAL_WINDOW_RANGE  # seconds at the start of the stream searched for the best neutral pose
SIZE_RANGE = (16, 7680)  # pixels, either side
MAX_FRAMES_RANGE = (0, 10**9)  # 0 = no limit
MAX_TEXT = 4096
# Fields that describe one run (a test backend, a recording path, a passthrough toggle), not a
# preference: the settings file never stores them, so a restart never starts recording by itself.
SESSION_ONLY = {"session_only": True}


@dataclass
class PipelineConfig:
    """Everything :class:`~avatarcam.pipeline.Pipeline` needs; defaults suit a 640x480 webcam.

    ``camera``: a camera index as digits ("0"), a video file path or a stream URL.
    ``stabilize``: keypoint smoothing strength in [0, 1]; 0 turns it off.
    ``auto_calibrate_seconds``: until X is pressed, the best pose match in this first part of the
    stream is the neutral pose (``calibration.py``).
    ``record``: an .mp4 path to record the output to while streaming, or None.
    Field metadata holds each field's range or choices: the single declaration every check reads.

    A recording holds every output frame exactly once (not padded to real time: see ``FileSink``).
    ``max_frames``: stop making frames after this many output frames (0 = no limit).
    ``ai_label``: draw a small "AI" label in the corner of every animated output frame (virtual
    camera and recordings) so viewers can tell the picture is generated; on by default.
    """

    camera: str = "0"
    capture_size: tuple[int, int] = field(default=(640, 480), metadata={"range": SIZE_RANGE})
    capture_fps: float = field(default=30.0, metadata={"range": FPS_RANGE})
    loop_video: bool = True
    checkpoint: str | None = None  # None = look in the default places (paths.find_checkpoint)
    device: str = field(default="auto", metadata={"choices": DEVICES})
    precision: str = field(default="auto", metadata={"choices": PRECISIONS})
    backend: str = field(default="auto", metadata={"choices": BACKENDS})
    avatar: str | None = None  # None = the first bundled avatar
    framing: str = field(default="auto", metadata={"choices": FRAMINGS})
    detector: str = field(default="auto", metadata={"choices": DETECTORS})
    zoom: float = field(default=1.0, metadata={"range": ZOOM_RANGE})
    offset: tuple[float, float] = field(default=(0.0, 0.0), metadata={"range": OFFSET_RANGE})
    relative: bool = True
    adapt_scale: bool = True
    stabilize: float = field(default=0.5, metadata={"range": STABILIZE_RANGE})
    auto_calibrate_seconds: float = field(default=3.0, metadata={"range": AUTO_CALIBRATE_RANGE})
    vcam: bool = True
    vcam_size: tuple[int, int] = field(default=(1280, 720), metadata={"range": SIZE_RANGE})
    output_layout: str = field(default="picture", metadata={"choices": OUTPUT_LAYOUTS})
    avatar_detail: bool = False
    vcam_fps: float = field(default=30.0, metadata={"range": FPS_RANGE})
    vcam_backend: str | None = field(default=None, metadata=SESSION_ONLY)
    mirror_output: bool = False
    record: str | None = field(default=None, metadata=SESSION_ONLY)
    passthrough: bool = field(default=False, metadata=SESSION_ONLY)
    max_frames: int = field(default=0, metadata={"range": MAX_FRAMES_RANGE, **SESSION_ONLY})
    ai_label: bool = True

    def engine_options(self) -> EngineOptions:
        return EngineOptions(device=self.device, precision=self.precision, backend=self.backend)


def _number(name: str, value: Any, bounds: tuple[float, float] | None, kind: type) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AvatarcamError(f"{name} {value!r} is not a number.")
    if kind is int and value != int(value):
        raise AvatarcamError(f"{name} {value!r} is not a whole number.")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise AvatarcamError(f"{name} {value:g} is out of range; use a value between {bounds[0]:g} and {bounds[1]:g}.")
    return kind(value)


def check_value(spec, value: Any) -> Any:
    """``value`` converted to the type of dataclass field ``spec``, within its declared range or
    choices; raises a one-line ``AvatarcamError`` naming the field and the allowed values."""
    name, default, meta = spec.name, spec.default, spec.metadata
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise AvatarcamError(f"{name} {value!r} is not true or false.")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise AvatarcamError(f"{name} {value!r} is not a pair of numbers.")
        return tuple(_number(name, v, meta.get("range"), type(d)) for v, d in zip(value, default, strict=True))
    if isinstance(default, (int, float)):
        return _number(name, value, meta.get("range"), type(default))
    if value is None and default is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
        raise AvatarcamError(f"{name} {value!r} is not a text value.")
    if "choices" in meta:
        return check_choice(name, value, meta["choices"])
    if default is None:
        return value or None  # "" (older settings files) means "not set"
    if not value.strip():
        raise AvatarcamError(f"{name} must not be empty.")
    return value


def arg_type(name: str, cls: type = PipelineConfig):
    """An argparse ``type=`` for field ``name``: parses "WxH" for sizes, numbers otherwise, and
    range-checks with the field's declaration."""
    spec = next(f for f in fields(cls) if f.name == name)

    def parse(text: str) -> Any:
        try:
            if isinstance(spec.default, tuple):
                value = tuple(int(v) for v in text.lower().split("x"))
            else:
                value = type(spec.default)(text)
            return check_value(spec, value)
        except AvatarcamError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        except ValueError:
            hint = " like 640x480" if isinstance(spec.default, tuple) else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {name}{hint}") from None

    parse.__name__ = name  # argparse names the type in its messages
    return parse
