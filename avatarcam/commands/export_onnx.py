"""`avatarcam export-onnx`: export the model to ONNX (cached; the onnx and openvino backends do this on demand)."""

from __future__ import annotations

import argparse
import sys

HELP = "export the model's three stages to ONNX and check them against PyTorch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="model weights (default: vox-adv-cpk.pth.tar in the models folder)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the cache the onnx and openvino "
                        "backends use, in the user models folder)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; GridSample needs >= 16)")
    parser.add_argument("--force", action="store_true", help="export again even if a cached export exists")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..engine.checkpoint import load_networks
    from ..engine.export import OPSET, checkpoint_key, default_cache_dir, export_onnx, is_complete
    from ..paths import find_checkpoint

    path = find_checkpoint(args.checkpoint)
    networks = load_networks(path)
    opset = args.opset or OPSET
    key = checkpoint_key(path, networks.config, opset)
    out = Path(args.out).expanduser() if args.out else default_cache_dir(key, path.name.split(".")[0] or "model")
    if is_complete(out) and not args.force and not args.out:
        print(f"Already exported (cached): {out}")
        return 0
    # a progress bar on a terminal; plain lines (no carriage-return updates) into a log or a pipe
    tty = sys.stderr.isatty()
    manifest = export_onnx(networks, out, opset=opset, key=key, show_bar=tty,
                           progress=None if tty else lambda message: print(message, flush=True))
    worst = max(s["max_abs_error"] for s in manifest["stages"].values())
    print(f"Exported to {out} (opset {opset}); worst ONNX Runtime vs torch error {worst:.2e}")
    return 0
