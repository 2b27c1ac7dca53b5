"""Command-line options for using a remote worker (``avatarcam run --remote URL --token T``).

Declared here once, so `avatarcam run` needs two calls: :func:`add_client_arguments` and
:func:`connect_from_args`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import AvatarcamError
from ..paths import find_checkpoint
from .protocol import DEFAULT_QUALITY, DOWNLINKS, MODES, QUALITY_RANGE

TOKEN_ENV = "AVATARCAM_TOKEN"
READY_TIMEOUT_S = 30.0  # connect, upload the avatar once, prepare it on a replica


def _quality(text: str) -> int:
    if not text.isdigit() or not QUALITY_RANGE[0] <= int(text) <= QUALITY_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{text!r} is not a JPEG quality ({QUALITY_RANGE[0]}-{QUALITY_RANGE[1]})")
    return int(text)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("remote worker (see docs/remote.md)")
    group.add_argument("--remote", metavar="ws://HOST:PORT",
                       help="run the model on an `avatarcam serve` worker instead of this computer")
    group.add_argument("--token", help=f"the worker's token (default: ${TOKEN_ENV})")
    group.add_argument("--uplink", choices=MODES, default=None,
                       help="send keypoints (default when the model weights are here: the camera picture never "
                            "leaves this computer) or a JPEG face crop (no weights needed)")
    group.add_argument("--downlink", choices=DOWNLINKS, default="jpeg",
                       help="how pictures come back: jpeg (default), or lossless png / raw")
    group.add_argument("--jpeg-quality", type=_quality, default=DEFAULT_QUALITY,
                       help=f"downlink JPEG quality (default: {DEFAULT_QUALITY})")


def connect_from_args(args: argparse.Namespace, avatar=None):
    """A RemoteAnimator for ``--remote`` (None without it); see :func:`connect_remote`."""
    if not getattr(args, "remote", None):
        return None
    return connect_remote(args.remote, args.token, find_checkpoint(getattr(args, "checkpoint", None)), avatar=avatar,
                          mode=args.uplink, downlink=args.downlink, quality=args.jpeg_quality)


def connect_remote(url: str | None, token: str | None, checkpoint: Path | None, *, avatar=None,
                   mode: str | None = None, **options):
    """A RemoteAnimator for the worker at ``url`` (the CLI's --remote, the GUI's "Model runs on").
    The keypoint detector runs here when ``checkpoint`` is a file; else face crops are sent. ``token``
    None: ``$AVATARCAM_TOKEN``. With ``avatar`` it waits until the worker is ready. One-line AvatarcamError."""
    if not url:
        raise AvatarcamError("no remote worker address; give one like ws://gpu-host:8000 (docs/remote.md).")
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise AvatarcamError(f"the remote worker needs its token: pass --token T, set ${TOKEN_ENV}, or enter it "
                             "in the settings.")
    try:
        from .client import RemoteAnimator
    except ImportError as err:
        raise AvatarcamError(f"the remote client needs {err.name}; install it from the avatarcam checkout "
                             'with: pip install -e ".[serve]"') from None
    local = str(checkpoint) if checkpoint is not None and checkpoint.is_file() else None
    mode = mode or ("keypoints" if local else "image")
    if mode == "keypoints" and not local:
        raise AvatarcamError(f"{checkpoint}: no model weights here for the keypoint uplink; pass --checkpoint PATH "
                             "or use --uplink image")
    return RemoteAnimator.connect(url, token, checkpoint=local if mode == "keypoints" else None, avatar=avatar,
                                  mode=mode, **options)


def await_worker(remote, pipeline, say: Callable[[str], None]) -> None:
    """After ``pipeline.start()`` handed the avatar to ``remote`` (None: nothing to do): wait until the
    worker has it, then say what runs (link changes reach the pipeline's notices). On a refusal, stops the
    pipeline and raises."""
    if remote is None:
        return
    try:
        remote.wait_ready(READY_TIMEOUT_S)
    except AvatarcamError:
        pipeline.stop()
        remote.close()
        raise
    say(remote.describe())
