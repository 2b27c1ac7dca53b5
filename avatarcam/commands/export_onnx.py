"""`avatarcam export-onnx`: export the model to ONNX (cached; the onnx backend does this on demand)."""

from __future__ import annotations

import argparse

HELP = "export the model's three stages to ONNX and check them against PyTorch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="model weights (default: vox-adv-cpk.pth.tar in the models folder)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the cache the onnx backend uses, "
                        "in the user models folder)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; GridSample needs >= 16)")
    parser.add_argument("--force", action="store_true", help="export again even if a cached export exists")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..engine.checkpoint import CONFIG_KEY, load_module_weights, read_checkpoint
    from ..engine.config import FOMMConfig
    from ..engine.export import OPSET, checkpoint_key, default_cache_dir, export_onnx, is_complete
    from ..engine.generator import OcclusionAwareGenerator
    from ..engine.keypoint_detector import KeypointDetector
    from ..paths import find_checkpoint

    path = find_checkpoint(args.checkpoint)
    state = read_checkpoint(path)
    config = FOMMConfig.from_dict(state[CONFIG_KEY]) if state.get(CONFIG_KEY) else FOMMConfig.vox256()
    det, gen = KeypointDetector(config), OcclusionAwareGenerator(config)
    load_module_weights(det, state["kp_detector"], "kp_detector", path)
    load_module_weights(gen, state["generator"], "generator", path)
    opset = args.opset or OPSET
    key = checkpoint_key(path, config, opset)
    out = Path(args.out).expanduser() if args.out else default_cache_dir(key, path.name.split(".")[0] or "model")
    if is_complete(out) and not args.force and not args.out:
        print(f"Already exported (cached): {out}")
        return 0
    manifest = export_onnx(det.eval(), gen.eval(), config, out, opset=opset, key=key, show_bar=True)
    worst = max(s["max_abs_error"] for s in manifest["stages"].values())
    print(f"Exported to {out} (opset {opset}); worst ONNX Runtime vs torch error {worst:.2e}")
    return 0
