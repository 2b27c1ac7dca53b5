"""Command-line options of the window (plain ``avatarcam``): they override the saved settings for
this session only. Qt-free, so ``avatarcam --help`` never loads Qt.

Each option, its type, choices and help come from the field declarations in ``pipeline/config.py``
(``add_config_arguments``), as for ``avatarcam run``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

# the settings fields the window takes from its command line
WINDOW_FIELDS = ("checkpoint", "camera", "avatar", "device", "precision", "backend", "framing", "detector", "vcam",
                 "ai_label")
FILE_OPTIONS = {"checkpoint", "avatar"}  # made absolute: the window may change its working folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The window's options; each one is a settings field and left unset (None) unless given."""
    from ..pipeline.config import add_config_arguments
    from ..settings import Settings

    group = parser.add_argument_group("window options (plain `avatarcam`; not saved)")
    add_config_arguments(group, Settings, WINDOW_FIELDS, unset=True)


def overrides(args: argparse.Namespace | None) -> dict[str, Any]:
    """The settings this command line sets: {field: value}, only for options that were given."""
    if args is None:
        return {}
    from ..pipeline.config import flag_dest
    from ..settings import Settings

    dests = {spec.name: flag_dest(spec.metadata["flag"]) for spec in fields(Settings) if spec.name in WINDOW_FIELDS}
    given = {name: getattr(args, dest) for name, dest in dests.items() if getattr(args, dest, None) is not None}
    for name in FILE_OPTIONS.intersection(given):
        given[name] = str(Path(given[name]).expanduser().absolute())
    return given
