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
LIVE, RESTART = "live", "restart"  # how a change reaches a running pipeline (a field's "apply")
RECORD_HELP = ("also record the output to this mp4: every output frame exactly once, played back at --fps "
               "(not padded to real time, so when the model makes fewer frames a second than --fps the "
               "recording plays faster than it happened); tagged as synthetic video")


def declare(apply: str, **more: Any) -> dict[str, Any]:
    """A field's metadata, its single declaration. ``apply``: LIVE (a running pipeline or window
    takes the new value over) or RESTART (the pipeline restarts for it). Optional keys:
    ``range``/``choices``/``sizes`` (allowed values, offered sizes); ``label`` and ``group`` (the
    settings dialog's row and tab, also named in the restart notice); ``flag``, ``help``, ``metavar``
    (the ``avatarcam run`` option; fields sharing a flag get the same value); ``session_only`` (a field
    that describes one run, not a preference: never stored, so a restart never records by itself);
    ``secret`` (shown masked)."""
    if apply not in (LIVE, RESTART):
        raise ValueError(f"apply must be {LIVE!r} or {RESTART!r}, not {apply!r}")
    return {"apply": apply, **more}


@dataclass
class PipelineConfig:
    """Everything :class:`~avatarcam.pipeline.Pipeline` needs; defaults suit a 640x480 webcam and a
    1280x720 output (``vcam_size``: every sink's frame size; ``output_layout``: how the avatar picture
    fills it, ``compositor.py``; ``avatar_detail``: detail transfer, ``engine/detail.py``).

    ``camera``: a camera index as digits ("0"), a video file path or a stream URL.
    ``stabilize``: keypoint smoothing strength in [0, 1]; 0 turns it off.
    ``auto_calibrate_seconds``: until X is pressed, the best pose match in this first part of the
    stream is the neutral pose (``engine/neutral.py``).
    ``record``: an .mp4 path to record the output to while streaming, or None.
    Field metadata (``declare``) holds each field's range or choices and whether a change applies
    live: the single declaration every check, the CLI, the settings dialog and the window read.
    A LIVE field of this class has a public setter on ``Pipeline`` (the window calls it).

    A recording holds every output frame exactly once (not padded to real time: see ``FileSink``).
    ``max_frames``: stop making frames after this many output frames (0 = no limit).
    ``ai_label``: draw a small "AI" label in the corner of every animated output frame (virtual
    camera and recordings) so viewers can tell the picture is generated; on by default.
    """

    camera: str = field(default="0", metadata=declare(
        RESTART, label="Source", group="Camera", flag="--camera", metavar="0|PATH|URL",
        help="camera index, video file or stream URL (default: 0)"))
    capture_size: tuple[int, int] = field(default=(640, 480), metadata=declare(
        RESTART, range=SIZE_RANGE, sizes=CAPTURE_SIZES, label="Capture size", group="Camera", flag="--size",
        metavar="WxH", help="camera capture size (default: 640x480; the output size is --output-size)"))
    capture_fps: float = field(default=30.0, metadata=declare(
        RESTART, range=FPS_RANGE, flag="--fps", help="camera and output fps (default: 30)"))
    loop_video: bool = field(default=True, metadata=declare(
        RESTART, flag="--loop", help="a video file as camera starts again at its end (default: on)"))
    checkpoint: str | None = field(default=None, metadata=declare(  # None = the default places
        RESTART, label="Checkpoint", group="Model", flag="--checkpoint", metavar="PATH",
        help="model weights (default: found automatically)"))
    device: str = field(default="auto", metadata=declare(
        RESTART, choices=DEVICES, label="Device", group="Model", flag="--device",
        help="where the model runs (default: auto)"))
    precision: str = field(default="auto", metadata=declare(
        RESTART, choices=PRECISIONS, label="Precision", group="Model", flag="--precision",
        help="model precision (default: auto)"))
    backend: str = field(default="auto", metadata=declare(
        RESTART, choices=BACKENDS, label="Runtime", group="Model", flag="--backend",
        help="model runtime (default: auto); onnx needs onnxruntime (pip install onnxruntime)"))
    avatar: str | None = field(default=None, metadata=declare(  # None = the first bundled avatar
        LIVE, flag="--avatar", metavar="PATH", help="portrait to animate (default: the first bundled avatar)"))
    framing: str = field(default="auto", metadata=declare(
        LIVE, choices=FRAMINGS, label="Framing", group="Face framing", flag="--framing",
        help="auto: follow the face; manual: fixed centred crop"))
    detector: str = field(default="auto", metadata=declare(
        RESTART, choices=DETECTORS, flag="--detector",
        help="face detector for framing (default: auto = face-alignment if its weights are cached, else lbp)"))
    zoom: float = field(default=1.0, metadata=declare(LIVE, range=ZOOM_RANGE, label="Zoom", group="Face framing"))
    offset: tuple[float, float] = field(default=(0.0, 0.0), metadata=declare(LIVE, range=OFFSET_RANGE))
    relative: bool = field(default=True, metadata=declare(
        LIVE, label="Relative motion (recommended)", group="Model",
        help="Move the avatar by how your face moves from the calibrated pose"))
    adapt_scale: bool = field(default=True, metadata=declare(
        LIVE, label="Adapt movement scale to the avatar", group="Model"))
    stabilize: float = field(default=0.5, metadata=declare(
        LIVE, range=STABILIZE_RANGE, label="Smoothing", group="Face framing", flag="--stabilize", metavar="S",
        help="keypoint smoothing strength from 0 (off) to 1 (default: 0.5)"))
    auto_calibrate_seconds: float = field(default=3.0, metadata=declare(LIVE, range=AUTO_CALIBRATE_RANGE))
    vcam: bool = field(default=True, metadata=declare(
        LIVE, label="Send the output to the virtual camera", group="Virtual camera", flag="--vcam",
        help="send the avatar to the virtual camera (default: on)"))
    vcam_size: tuple[int, int] = field(default=(1280, 720), metadata=declare(
        RESTART, range=SIZE_RANGE, sizes=VCAM_SIZES, label="Output size", group="Virtual camera",
        flag="--output-size", metavar="WxH",
        help="size of every output frame: virtual camera, recording, preview (default: 1280x720)"))
    output_layout: str = field(default="picture", metadata=declare(
        LIVE, choices=OUTPUT_LAYOUTS, label="Output layout", group="Virtual camera", flag="--output-layout",
        help="picture: the whole avatar picture covering the output, the face animated in it (default); "
             "fit: the whole picture, padded; face: the model's square alone"))
    avatar_detail: bool = field(default=False, metadata=declare(
        LIVE, label="Detail from the avatar picture (experimental)", group="Virtual camera", flag="--avatar-detail",
        help="add the avatar picture's own fine detail, moved by the model's motion field, to the animated face "
             "(torch backend only; default: off)"))
    vcam_fps: float = field(default=30.0, metadata=declare(
        RESTART, range=FPS_RANGE, label="Output frame rate", group="Virtual camera", flag="--fps"))
    vcam_backend: str | None = field(default=None, metadata=declare(RESTART, session_only=True))
    mirror_output: bool = field(default=False, metadata=declare(
        LIVE, flag="--mirror", help="mirror the output left-right"))
    record: str | None = field(default=None, metadata=declare(  # the window records with start_recording
        RESTART, session_only=True, flag="--record", metavar="OUT.mp4", help=RECORD_HELP))
    passthrough: bool = field(default=False, metadata=declare(
        LIVE, session_only=True, flag="--passthrough", help="send the real camera picture (no avatar)"))
    max_frames: int = field(default=0, metadata=declare(
        RESTART, range=MAX_FRAMES_RANGE, session_only=True, flag="--max-frames", metavar="N",
        help="stop after exactly N output frames (a recording then holds exactly N frames)"))
    ai_label: bool = field(default=True, metadata=declare(
        LIVE, label="Label the output as AI-generated (recommended)", group="Responsible use", flag="--ai-label",
        help="draw a small 'AI' label in the corner of every animated frame sent out or recorded, "
             "so viewers can tell the picture is generated (default: on)"))

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


def label_of(spec) -> str:
    """How the user knows field ``spec``: its dialog label, else its name in words."""
    return spec.metadata.get("label") or spec.name.replace("_", " ")


def changed_fields(old: Any, new: Any) -> list:
    """The fields (of ``new``'s dataclass) whose values differ between ``old`` and ``new``."""
    return [spec for spec in fields(new) if getattr(old, spec.name) != getattr(new, spec.name)]


def _flag_options(spec, cls: type, unset: bool) -> dict[str, Any]:
    meta = spec.metadata
    options: dict[str, Any] = {"default": None if unset else spec.default, "help": meta.get("help")}
    if isinstance(spec.default, bool):
        options["action"] = argparse.BooleanOptionalAction
    elif "choices" in meta:
        options["choices"] = meta["choices"]
    elif isinstance(spec.default, (int, float, tuple)):
        options["type"] = arg_type(spec.name, cls)
    if "metavar" in meta:
        options["metavar"] = meta["metavar"]
    return options


def flag_dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def add_config_arguments(parser: Any, cls: type = PipelineConfig, names: tuple[str, ...] | None = None, *,
                         unset: bool = False) -> None:
    """On ``parser`` (an argparse parser or group), one option per declared ``flag`` of ``cls``'s
    fields (or of those in ``names``): type, range, choices, default and help all come from the
    declaration; fields sharing a flag share one option. ``unset``: options not given are None."""
    seen: set[str] = set()
    for spec in fields(cls):
        flag = spec.metadata.get("flag")
        if flag and flag not in seen and (names is None or spec.name in names):
            seen.add(flag)
            parser.add_argument(flag, dest=flag_dest(flag), **_flag_options(spec, cls, unset))


def config_from_args(args: argparse.Namespace, cls: type = PipelineConfig, **changes: Any) -> Any:
    """``cls`` with every flagged field taken from ``args`` (see ``add_config_arguments``), then ``changes``."""
    values = {spec.name: getattr(args, flag_dest(spec.metadata["flag"])) for spec in fields(cls)
              if spec.metadata.get("flag")}
    return cls(**{**values, **changes})
