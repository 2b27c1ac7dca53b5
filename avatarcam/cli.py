"""Command line entry point: ``avatarcam [COMMAND] ...``.

Each subcommand lives in ``avatarcam/commands/<name>.py`` and provides ``HELP``,
``add_arguments(parser)`` and ``main(args) -> int``. Plain ``avatarcam`` opens the window.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import AvatarcamError
from .gui.options import add_arguments as add_window_arguments

COMMANDS = {
    "run": "avatarcam.commands.run",
    "animate": "avatarcam.commands.animate",
    "doctor": "avatarcam.commands.doctor",
    "download-model": "avatarcam.commands.download_model",
    "export-onnx": "avatarcam.commands.export_onnx",
    "serve": "avatarcam.commands.serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatarcam",
        description="Real-time webcam avatar: animate a portrait with your face. "
        "With no command, opens the control window.",
    )
    parser.add_argument("--version", action="version", version=f"avatarcam {__version__}")
    add_window_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # command not built yet
                continue
            raise
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = getattr(args, "handler", None)
        if handler is None:
            from .gui.app import main as gui_main

            return gui_main(args)
        return int(handler(args) or 0)
    except AvatarcamError as err:
        print(f"avatarcam: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM / SIGHUP (interrupts.Interrupted) in run / animate
        try:
            print("avatarcam: interrupted", file=sys.stderr)
        except OSError:  # the terminal is gone (SIGHUP)
            pass
        return getattr(err, "exit_code", 130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
