"""`avatarcam serve`: a remote GPU worker on Ray Serve (see docs/remote.md)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import stat
import sys
import threading
from pathlib import Path

from ..engine.options import DEVICES, PRECISIONS
from ..errors import AvatarcamError
from ..remote.cli import TOKEN_ENV

HELP = "Run the model for remote callers (`avatarcam run --remote`) on a Ray Serve worker."


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
            if value < 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number") from None
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="PATH", help="model weights (default: found automatically)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=_port, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--token-file", metavar="PATH",
                        help=f"a file (mode 600) holding the secret callers must present (default: ${TOKEN_ENV}, "
                             "else a new random one is printed)")
    parser.add_argument("--token", help=argparse.SUPPRESS)  # refused: a command line is readable by every user
    parser.add_argument("--replicas", type=_positive(int), default=1, help="model replicas (default: 1)")
    parser.add_argument("--gpus-per-replica", type=_positive(float), default=None, metavar="F",
                        help="GPUs per replica, fractions share a GPU (default: 1 with CUDA, else 0)")
    parser.add_argument("--address", metavar="ADDR",
                        help="deploy onto this existing Ray cluster (default: start one on this machine)")
    parser.add_argument("--no-direct", action="store_true",
                        help="keep every frame on the Serve proxy instead of moving each session to its "
                             "replica's own port on the same host (docs/remote.md)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where replicas run the model")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="model precision")


def _checkpoint(explicit: str | None) -> str:
    from ..engine import load_networks
    from ..paths import find_checkpoint

    path = find_checkpoint(explicit)
    if not path.is_file():
        raise AvatarcamError(f"{path}: model weights not found; pass --checkpoint PATH or run "
                             "`avatarcam download-model`.")
    load_networks(path)  # a bad file fails here in one line, not in every replica
    return str(path.resolve())


def _check_port(host: str, port: int) -> None:
    """A taken port is one line here, not a Ray traceback after Ray has started."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            probe.bind((host, port))
    except OSError as err:
        raise AvatarcamError(f"cannot listen on {host}:{port} ({err.strerror or err}); stop what uses it or pick "
                             "another port with --port") from None


def _token(args: argparse.Namespace) -> str:
    """The secret, from --token-file or $AVATARCAM_TOKEN (taken out of the environment, which every Ray
    process would inherit); "" when neither gives one."""
    if args.token is not None:
        raise AvatarcamError(f"--token shows the secret to every user of this machine (ps); set ${TOKEN_ENV} or "
                             "use --token-file PATH (mode 600)")
    if args.token_file:
        path = Path(args.token_file)
        try:
            if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise AvatarcamError(f"{path}: other users can read this token file; run: chmod 600 {path}")
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise AvatarcamError(f"{path}: cannot read the token file ({getattr(err, 'strerror', None) or err}); "
                                 "give a readable text file with --token-file") from None
        if not token:
            raise AvatarcamError(f"{path}: the token file is empty; put the secret in it")
        os.environ.pop(TOKEN_ENV, None)
        return token
    return os.environ.pop(TOKEN_ENV, "")


def _stop_on_sigterm(signum, frame) -> None:
    """SIGTERM (systemd, docker) stops the worker like Ctrl-C: Ray shut down, exit status 0."""
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    if args.replicas < 1:
        raise AvatarcamError("--replicas must be at least 1")
    token = _token(args)
    _check_port(args.host, args.port)
    checkpoint = _checkpoint(args.checkpoint)
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"avatarcam: no ${TOKEN_ENV} or --token-file; callers must use the token {token}", file=sys.stderr)
    own_ray = args.address is None
    if own_ray:  # a cluster of one's own: loopback, no metrics, message limit (docs/remote.md for clusters)
        from ..remote.ray_setup import init_options, prepare_environment

        prepare_environment()
    try:
        import ray
        from ray import serve

        from ..remote.server import APP_NAME, build_app, enable_direct_ingress, start
    except ImportError as err:
        raise AvatarcamError(f"the worker needs Ray Serve ({err.name} is missing); install it from the "
                             'avatarcam checkout with: pip install -e ".[serve]"') from None
    if own_ray and not args.no_direct:  # a cluster's nodes set it themselves
        enable_direct_ingress()
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # one line of ours, not Serve's start-up log
    try:
        ray.init(address=args.address, logging_level="WARNING",
                 **(init_options() if own_ray else {"log_to_driver": False}))
        signal.signal(signal.SIGTERM, _stop_on_sigterm)  # after ray.init, which sets its own
        gpus = args.gpus_per_replica
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 and args.device in ("auto", "cuda") else 0.0
        application = build_app(checkpoint, token, replicas=args.replicas, gpus_per_replica=gpus,
                                cpus_per_replica=0 if gpus else 1,
                                engine={"device": args.device, "precision": args.precision})
        start(application, args.host, args.port)
        print(f"avatarcam: worker ready on ws://{args.host}:{args.port} ({args.replicas} replica(s), "
              f"{gpus:g} GPU each); health at http://{args.host}:{args.port}/healthz; Ctrl-C stops",
              file=sys.stderr, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("avatarcam: stopping the worker", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if ray.is_initialized():
            if not own_ray:  # leave the cluster as it was; our own Ray goes down whole, replicas and all
                serve.delete(APP_NAME)
            ray.shutdown()
    return 0
