"""Time from process start to the first animated frame: cold (precision check runs) and warm
(its result cached on disk), against an explicit precision that needs no check.

Each start is a fresh Python process, as a user's would be. The user data folder is a temporary
one, so the first "auto" start is really cold.

    python scripts/bench_start.py [--device cpu|cuda] [--repeat 3] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data

CHILD = """
import sys, time
import numpy as np
from avatarcam.engine import Animator, EngineOptions
anim = Animator.from_checkpoint(sys.argv[1], EngineOptions(device=sys.argv[2], precision=sys.argv[3]))
face = np.full((256, 256, 3), 0.5, np.float32)
anim.set_source(face)
anim.animate(face)
print(f"FIRST-FRAME {time.time():.6f} {anim.describe()}", flush=True)
"""


def start_seconds(checkpoint: str, device: str, precision: str, data_dir: str) -> tuple[float, str]:
    env = dict(os.environ, AVATARCAM_DATA_DIR=data_dir, PYTHONPATH=str(ROOT))
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, checkpoint, device, precision], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(text for text in out.splitlines() if text.startswith("FIRST-FRAME"))
    _, stamp, *describe = line.split()
    return float(stamp) - t0, " ".join(describe)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--checkpoint", help="weights (default: the full-size synthetic seed-0 checkpoint)")
    args = ap.parse_args()
    explicit = "fp16" if args.device == "cuda" else "bf16"
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from synthetic import write_synthetic_checkpoint

            checkpoint = write_synthetic_checkpoint(Path(tmp) / "vox-seed0.pth.tar")
        rows: dict[str, list[float]] = {"auto, cold (check runs)": [], "auto, warm (cached check)": [],
                                        f"explicit {explicit}": []}
        for i in range(args.repeat):  # interleaved, so load changes hit every variant alike
            data = str(Path(tmp) / f"data{i}")
            rows["auto, cold (check runs)"].append(start_seconds(checkpoint, args.device, "auto", data)[0])
            seconds, describe = start_seconds(checkpoint, args.device, "auto", data)
            rows["auto, warm (cached check)"].append(seconds)
            rows[f"explicit {explicit}"].append(start_seconds(checkpoint, args.device, explicit, data)[0])
        print(f"device {args.device}, model runs as: {describe}; {args.repeat} starts each, median (min-max) s")
        for name, values in rows.items():
            print(f"  {name:28s} {statistics.median(values):6.2f}  ({min(values):.2f}-{max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
