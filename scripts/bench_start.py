"""Time from process start to the first animated frame: cold (export, precision checks and the CPU
runtime race run) and warm (their results cached on disk), against explicit settings that need no
check.

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
options = EngineOptions(device=sys.argv[2], precision=sys.argv[3], backend=sys.argv[4])
anim = Animator.from_checkpoint(sys.argv[1], options)
face = np.full((256, 256, 3), 0.5, np.float32)
anim.set_source(face)
anim.animate(face)
print(f"FIRST-FRAME {time.time():.6f} {anim.describe()}", flush=True)
"""


def start_seconds(checkpoint: str, device: str, precision: str, data_dir: str,
                  backend: str = "auto") -> tuple[float, str]:
    env = dict(os.environ, AVATARCAM_DATA_DIR=data_dir, PYTHONPATH=str(ROOT))
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, checkpoint, device, precision, backend], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(text for text in out.splitlines() if text.startswith("FIRST-FRAME"))
    _, stamp, *describe = line.split()
    return float(stamp) - t0, " ".join(describe)


def measure_starts(checkpoint: str, device: str, repeat: int, tmp: str) -> tuple[dict[str, list[float]], dict]:
    """{start kind: seconds per repeat} and {start kind: what ran}, the kinds interleaved so that
    load changes hit every kind alike. "explicit" starts reuse the warm data folder (export cached)."""
    explicit = [("torch", "fp16" if device == "cuda" else "bf16")]
    if device == "cpu":
        explicit.append(("openvino", "bf16"))
    rows: dict[str, list[float]] = {"auto, cold (checks run)": [], "auto, warm (cached)": []}
    rows.update({f"explicit {b} {p}": [] for b, p in explicit})
    runs_as: dict[str, str] = {}
    for i in range(repeat):
        data = str(Path(tmp) / f"data{i}")
        for name, backend, precision in [("auto, cold (checks run)", "auto", "auto"),
                                         ("auto, warm (cached)", "auto", "auto")] + \
                                        [(f"explicit {b} {p}", b, p) for b, p in explicit]:
            seconds, runs_as[name] = start_seconds(checkpoint, device, precision, data, backend)
            rows[name].append(seconds)
    return rows, runs_as


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--checkpoint", help="weights (default: the full-size synthetic seed-0 checkpoint)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from synthetic import write_synthetic_checkpoint

            checkpoint = str(write_synthetic_checkpoint(Path(tmp) / "vox-seed0.pth.tar"))
        rows, runs_as = measure_starts(checkpoint, args.device, args.repeat, tmp)
        print(f"device {args.device}; {args.repeat} starts each, median (min-max) s")
        for name, values in rows.items():
            print(f"  {name:28s} {statistics.median(values):6.2f}  ({min(values):.2f}-{max(values):.2f})"
                  f"  runs as {runs_as[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
