"""Speed of this checkout's engine against an older commit's, in one process (interleaved frames).

The old ``avatarcam`` package is extracted from git under another name, so both run side by side
on the same frames and the same machine load; their outputs are compared too.

    python scripts/ab_engine.py --rev 5d822c0 [--frames 20] [--precisions fp32,bf16]

(The old side is called with the engine API of before the consolidation:
``Animator.from_checkpoint(path, device=..., precision=...)``.)
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data

from synthetic import astronaut_face, driving_frames, write_synthetic_checkpoint  # noqa: E402

from avatarcam.engine import Animator, EngineOptions  # noqa: E402


def old_package(rev: str, folder: Path):
    """``avatarcam`` at ``rev``, importable as ``avatarcam_old`` (its imports are relative)."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "avatarcam"], capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "avatarcam").rename(folder / "avatarcam_old")
    sys.path.insert(0, str(folder))
    return importlib.import_module("avatarcam_old.engine")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the older commit (e.g. the one before a refactor)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    tmp = Path(tempfile.mkdtemp(prefix="avatarcam-ab-"))
    os.environ["AVATARCAM_DATA_DIR"] = str(tmp / "data")
    old = old_package(args.rev, tmp)
    ckpt = write_synthetic_checkpoint(tmp / "vox.pth.tar")
    source, frames = astronaut_face(256), driving_frames(args.frames + 3)
    runs = {}
    for precision in args.precisions.split(","):
        makers = {"old": lambda p: old.Animator.from_checkpoint(ckpt, device="cpu", precision=p),
                  "new": lambda p: Animator.from_checkpoint(ckpt, EngineOptions(device="cpu", precision=p))}
        for side, make in makers.items():
            anim = make(precision)
            anim.set_source(source)
            anim.calibrate(frames[0])
            runs[f"{side} {precision}"] = anim.animate
    times = {name: [] for name in runs}
    outputs = {name: [] for name in runs}
    for frame in frames[1:3]:  # warm-up
        for run in runs.values():
            run(frame)
    for i, frame in enumerate(frames[3:]):
        names = list(runs)
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            outputs[name].append(runs[name](frame))
            times[name].append(time.perf_counter() - t0)
    print(f"{args.frames} frames, {torch.get_num_threads()} threads, old = {args.rev}")
    for precision in args.precisions.split(","):
        old_ms, new_ms = (np.median(times[f"{s} {precision}"]) * 1e3 for s in ("old", "new"))
        pairs = zip(outputs[f"old {precision}"], outputs[f"new {precision}"], strict=True)
        diff = max(np.abs(a - b).max() for a, b in pairs)
        print(f"  {precision}: old {old_ms:6.1f} ms, new {new_ms:6.1f} ms (new/old {new_ms / old_ms:.2f}), "
              f"max |old - new| {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
