"""`avatarcam serve`: a remote GPU worker on Ray Serve (see docs/remote.md)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import threading

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
    parser.add_argument("--token", help=f"secret callers must present (default: ${TOKEN_ENV}, else a new "
                                        "random one is printed)")
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


def main(args: argparse.Namespace) -> int:
    if args.replicas < 1:
        raise AvatarcamError("--replicas must be at least 1")
    checkpoint = _checkpoint(args.checkpoint)
    try:
        import ray
        from ray import serve

        from ..remote.server import build_app, enable_direct_ingress, start
    except ImportError as err:
        raise AvatarcamError(f"the worker needs Ray Serve ({err.name} is missing); "
                             'install it with: pip install "avatarcam[serve]"') from None
    token = args.token or os.environ.get(TOKEN_ENV) or ""
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"avatarcam: no --token or ${TOKEN_ENV}; callers must use --token {token}", file=sys.stderr)
    if args.address is None and not args.no_direct:  # a cluster of one's own sets it on its nodes
        enable_direct_ingress()
    ray.init(address=args.address, logging_level="WARNING", log_to_driver=False)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # one line of ours, not Serve's start-up log
    try:
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
        print("avatarcam: stopping the worker", file=sys.stderr)
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
