"""Command-line options of the window (plain ``avatarcam``): they override the saved settings for
this session only. Qt-free, so ``avatarcam --help`` never loads Qt.

Choices come from the single declarations in ``pipeline/config.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

# (flag, metavar, help); the dest is the settings field of the same name
TEXT_OPTIONS = (
    ("--checkpoint", "PATH", "model weights for this session (default: the saved or found one)"),
    ("--camera", "0|PATH|URL", "camera index, video file or stream URL for this session"),
    ("--avatar", "PATH", "portrait to animate (any picture; shown in the gallery for this session)"),
)
FILE_OPTIONS = {"checkpoint", "avatar"}  # made absolute: the window may change its working folder
CHOICE_OPTIONS = (("--device", "where the model runs"), ("--precision", "model precision"),
                  ("--backend", "model runtime"), ("--framing", "auto: follow the face; manual: fixed crop"),
                  ("--detector", "face detector for framing"))
SWITCH_OPTIONS = (("--vcam", "send the output to the virtual camera"),
                  ("--ai-label", "draw the small 'AI' label on every outgoing frame"))


def _field_specs() -> dict[str, Any]:
    from ..settings import Settings

    return {spec.name: spec for spec in fields(Settings)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The window's options; each one is a settings field and left unset (None) unless given."""
    specs = _field_specs()
    group = parser.add_argument_group("window options (plain `avatarcam`; not saved)")
    for flag, metavar, text in TEXT_OPTIONS:
        group.add_argument(flag, metavar=metavar, help=text)
    for flag, text in CHOICE_OPTIONS:
        choices = specs[flag[2:]].metadata["choices"]
        group.add_argument(flag, choices=choices, help=text)
    for flag, text in SWITCH_OPTIONS:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)


def overrides(args: argparse.Namespace | None) -> dict[str, Any]:
    """The settings this command line sets: {field: value}, only for options that were given."""
    if args is None:
        return {}
    names = [flag[2:].replace("-", "_") for flag, *_ in (*TEXT_OPTIONS, *CHOICE_OPTIONS, *SWITCH_OPTIONS)]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    for name in FILE_OPTIONS.intersection(given):
        given[name] = str(Path(given[name]).expanduser().absolute())
    return given
