#!/usr/bin/env python
"""Thread settings of the CPU runtimes, each in ITS OWN PROCESS, quiet and beside one busy process.

    python scripts/bench_threads.py [--checkpoint P] [--frames 20] [--rounds 3] [--json out.json]

How the engine's thread settings were chosen (docs/performance.md, "Threads"): OpenVINO bf16 with
its default ``THREAD_PROPERTIES`` (``PERFORMANCE_HINT=LATENCY``) against the other settings that
decide how its threads meet a competing program (no pinning, TBB's work-stealing partitioner, one
thread), and torch bf16 with all cores against one intra-op thread. Each variant is built and timed
in a fresh child process by the runtime race's own child (``engine/runtime_race.py``: keypoints +
decode per frame, the avatar cached), one at a time in rotating order; every round times all
variants quiet and then all beside one process spinning a core (the video-call app). Reports p50,
p90 and p90/p50 per condition.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]

from bench_runtimes import in_process, p90_over_p50_per_process  # noqa: E402 - one definition of the ratios

from avatarcam.engine import runtime_race  # noqa: E402

VARIANTS = {
    "openvino bf16, LATENCY (default)": {"backend": "openvino"},
    "openvino bf16, LATENCY, not pinned": {"backend": "openvino", "properties": {"ENABLE_CPU_PINNING": "NO"}},
    "openvino bf16, LATENCY, TBB auto partitioner": {"backend": "openvino",
                                                     "properties": {"TBB_PARTITIONER": "AUTO"}},
    "openvino bf16, 1 thread": {"backend": "openvino", "properties": {"INFERENCE_NUM_THREADS": "1"}},
    "torch bf16, all cores (default)": {"backend": "torch"},
    "torch bf16, 1 intra-op thread": {"backend": "torch", "torch_threads": 1},
}
CONDITIONS = ("quiet", "busy")


def specs(checkpoint: str, folder: str, frames: int) -> dict[str, dict]:
    base = {"checkpoint": checkpoint, "folder": folder, "device": "CPU", "precision": "bf16", "frames": frames}
    return {name: {**base, **variant} for name, variant in VARIANTS.items()}


def measure(variants: dict[str, dict], rounds: int) -> dict[tuple[str, str], list[list[float]]]:
    """{(variant, condition): one list of frame ms per child process}."""
    times: dict[tuple[str, str], list[list[float]]] = {(n, c): [] for n in variants for c in CONDITIONS}
    names = list(variants)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for condition in CONDITIONS:
            for name in order:
                ms = runtime_race.measure_frames(variants[name], busy=condition == "busy")
                times[(name, condition)].append(ms)
                print(f"  round {r + 1} {condition:5s} {name:46s} median {statistics.median(ms):7.1f} ms",
                      flush=True)
    return times


def table(times: dict[tuple[str, str], list[list[float]]]) -> tuple[str, list[dict]]:
    """p50/p90 over all frames of a condition (as scripts/bench_runtimes.py), and each process's median:
    their spread is the machine changing between processes, not the runtime's frame-to-frame jitter."""
    rows = []
    lines = ["| variant | quiet p50 ms | quiet p90 ms | busy p50 ms | busy p90 ms | busy p90/p50 | "
             "busy p90/p50 in one process (median, worst) | process medians quiet / busy ms |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name in VARIANTS:
        row: dict = {"variant": name}
        for condition in CONDITIONS:
            values = [ms for process in times[(name, condition)] for ms in process]
            row[f"{condition}_p50_ms"] = statistics.median(values)
            row[f"{condition}_p90_ms"] = float(np.percentile(values, 90))
            row[f"{condition}_process_medians_ms"] = [statistics.median(p) for p in times[(name, condition)]]
        row["busy_p90_over_p50"] = row["busy_p90_ms"] / row["busy_p50_ms"]
        row["busy_p90_over_p50_per_process"] = p90_over_p50_per_process(times[(name, "busy")])
        rows.append(row)
        spread = " / ".join(", ".join(f"{ms:.0f}" for ms in row[f"{c}_process_medians_ms"]) for c in CONDITIONS)
        lines.append(f"| {name} | {row['quiet_p50_ms']:.1f} | {row['quiet_p90_ms']:.1f} | {row['busy_p50_ms']:.1f} | "
                     f"{row['busy_p90_ms']:.1f} | {row['busy_p90_over_p50']:.2f} | "
                     f"{in_process(row['busy_p90_over_p50_per_process'])} | {spread} |")
    return "\n".join(lines) + "\n", rows


def export_folder(checkpoint: str, data: Path) -> str:
    from avatarcam.engine import load_networks
    from avatarcam.engine.export import ensure_exported

    return str(ensure_exported(load_networks(checkpoint), checkpoint=checkpoint, folder=data / "export"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="weights (default: the full-size synthetic seed-0 checkpoint)")
    ap.add_argument("--frames", type=int, default=20, help="timed frames per child (after 2 warm-up frames)")
    ap.add_argument("--rounds", type=int, default=3, help="quiet + busy rounds over all variants")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="avatarcam-threads-") as tmp_name:
        tmp = Path(tmp_name)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from synthetic import write_synthetic_checkpoint

            checkpoint = str(write_synthetic_checkpoint(tmp / "vox-seed0.pth.tar"))
        folder = export_folder(checkpoint, tmp)
        text, rows = table(measure(specs(checkpoint, folder, args.frames), args.rounds))
    command = "python scripts/bench_threads.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\n{args.frames} frames x {args.rounds} rounds per variant and condition; `{command.strip()}`\n\n{text}")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command.strip(), "frames": args.frames,
                                               "rounds": args.rounds, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
