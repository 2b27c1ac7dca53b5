#!/usr/bin/env python
"""Every CPU backend x precision, each in ITS OWN PROCESS, quiet and with one competing busy process.

    python scripts/benchmark.py --isolated [--frames 20] [--rounds 3] [--starts 3] [--out docs/bench]

(``benchmark.py --isolated`` runs this script.) Torch and OpenVINO in one process disturb each
other's thread pools, so each variant is a fresh child process that loads the model, animates 2
warm-up frames and then ``--frames`` timed ones (``Animator.animate``: keypoints + decode). Children
run one at a time, the variants' order rotating, alternating quiet and loaded rounds; "loaded"
means one extra process spinning a core (the video-call app). All children share one user data
folder, primed by one untimed ``auto`` start (ONNX export, precision checks, the CPU runtime race).
Accuracy: PSNR of each variant's frames against torch fp32 on the same frames (worst frame).
The split's cost: OpenVINO bf16 as run (geometry stages f32, conv stacks bf16) against the single
generator graph at the bf16 hint (geometry in bf16: faster, below the accuracy bar), alternated in
separate processes (``engine/runtime_race.py``), quiet. Start times come from
``scripts/bench_start.py``. Writes ``<out>/<cpu>-openvino.json`` and ``<out>/<cpu>-openvino.md``
(the tables in docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]

from avatarcam.engine.runtime_race import busy_process  # noqa: E402 - the race's own competitor

VARIANTS = {
    "default (auto)": {},
    "torch bf16": {"backend": "torch", "precision": "bf16"},
    "torch fp32": {"backend": "torch", "precision": "fp32"},
    "openvino bf16": {"backend": "openvino", "precision": "bf16"},
    "openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "onnx fp32": {"backend": "onnx", "precision": "fp32"},
}
REFERENCE = "torch fp32"
CONDITIONS = ("quiet", "busy")


def child(spec: dict) -> None:
    """Load one variant, animate the frames, print the per-frame seconds; save the frames."""
    from synthetic import astronaut_face, driving_frames

    from avatarcam.engine import Animator, EngineOptions

    anim = Animator.from_checkpoint(spec["checkpoint"], EngineOptions(device="cpu", **spec["options"]))
    frames = driving_frames(spec["frames"] + 3, amplitude=1.0)
    anim.set_source(astronaut_face(256))
    anim.calibrate(frames[0])
    for frame in frames[1:3]:
        anim.animate(frame)
    times, outputs = [], []
    for frame in frames[3:]:
        t0 = time.perf_counter()
        outputs.append(anim.animate(frame))
        times.append(time.perf_counter() - t0)
    if spec.get("save"):
        np.save(spec["save"], np.stack(outputs))
    print(json.dumps({"times": times, "describe": anim.describe()}), flush=True)


def run_child(spec: dict, env: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['options']}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def frames_file(tmp: Path, variant: str) -> Path:
    return tmp / (re.sub(r"\W+", "_", variant) + ".npy")


def measure(checkpoint: str, frames: int, rounds: int, tmp: Path, env: dict) -> dict:
    names = list(VARIANTS)
    times = {(n, c): [] for n in names for c in CONDITIONS}
    processes = {(n, c): [] for n in names for c in CONDITIONS}  # each child's frame times, for in-process p90/p50
    describe = {}
    for r in range(rounds):
        for condition in CONDITIONS:
            spinner = busy_process() if condition == "busy" else None
            try:
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    save = str(frames_file(tmp, name)) if r == 0 and condition == "quiet" else None
                    spec = {"checkpoint": checkpoint, "options": VARIANTS[name], "frames": frames, "save": save}
                    try:
                        result = run_child(spec, env)
                    except RuntimeError as err:
                        print(f"  {name}: failed ({err})")
                        continue
                    times[(name, condition)] += result["times"]
                    processes[(name, condition)].append(result["times"])
                    describe[name] = result["describe"]
                    print(f"  round {r + 1} {condition:5s} {name:16s} {result['describe']:24s} "
                          f"median {statistics.median(result['times']) * 1e3:7.1f} ms", flush=True)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    return {"times": times, "processes": processes, "describe": describe}


def accuracy(tmp: Path) -> dict[str, float | None]:
    from avatarcam.engine.precision import psnr

    def load(name):
        path = frames_file(tmp, name)
        return np.load(path) if path.exists() else None

    reference = load(REFERENCE)
    out = {}
    for name in VARIANTS:
        got = load(name)
        if got is None or reference is None or name == REFERENCE:
            out[name] = None
            continue
        out[name] = min(psnr(a, b) for a, b in zip(got, reference, strict=True))
    return out


def p90_over_p50_per_process(processes: list[list[float]]) -> list[float]:
    """The steadiness a user sees in one session: each process's p90 over its own p50 (the pooled ratio
    also counts the machine changing between processes, minutes apart)."""
    return [float(np.percentile(t, 90) / np.median(t)) for t in processes if len(t)]


def rows_of(measured: dict, dbs: dict) -> list[dict]:
    rows = []
    for name in VARIANTS:
        row = {"variant": name, "runs_as": measured["describe"].get(name), "psnr_db": dbs.get(name)}
        for condition in CONDITIONS:
            t = np.array(measured["times"][(name, condition)]) * 1e3
            if len(t):
                row[f"{condition}_p50_ms"] = float(np.median(t))
                row[f"{condition}_p90_ms"] = float(np.percentile(t, 90))
        row["busy_p90_over_p50_per_process"] = p90_over_p50_per_process(measured["processes"][(name, "busy")])
        rows.append(row)
    return rows


def in_process(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}, {max(ratios):.2f}" if ratios else "-"


def markdown(rows: list[dict], starts: dict, runs_as: dict, header: str) -> str:
    lines = [header, "", "| variant | runs as | quiet p50 ms | quiet p90 ms | busy p50 ms | busy p90 ms | "
             "busy p90/p50 | busy p90/p50 in one process (median, worst) | PSNR vs torch fp32 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "quiet_p50_ms" not in r:
            lines.append(f"| {r['variant']} | unavailable | | | | | | | |")
            continue
        ratio = r.get("busy_p90_ms", 0) / r["busy_p50_ms"] if r.get("busy_p50_ms") else float("nan")
        db = "reference" if r["variant"] == REFERENCE else (f"{r['psnr_db']:.1f} dB" if r["psnr_db"] else "-")
        lines.append(f"| {r['variant']} | {r['runs_as']} | {r['quiet_p50_ms']:.1f} | {r['quiet_p90_ms']:.1f} | "
                     f"{r.get('busy_p50_ms', float('nan')):.1f} | {r.get('busy_p90_ms', float('nan')):.1f} | "
                     f"{ratio:.2f} | {in_process(r['busy_p90_over_p50_per_process'])} | {db} |")
    lines += ["", "| start | runs as | median s | min-max s |", "|---|---|---:|---:|"]
    for name, values in starts.items():
        lines.append(f"| {name} | {runs_as[name]} | {statistics.median(values):.2f} | "
                     f"{min(values):.2f}-{max(values):.2f} |")
    return "\n".join(lines) + "\n"


def ratios(rows: list[dict]) -> dict:
    by = {r["variant"]: r for r in rows}
    default, base = by.get("default (auto)", {}), by.get("torch bf16", {})
    out = {}
    for condition in CONDITIONS:
        key = f"{condition}_p50_ms"
        if key in default and key in base:
            out[f"default_vs_torch_bf16_{condition}"] = base[key] / default[key]
    if "busy_p50_ms" in default:
        out["default_busy_p90_over_p50"] = default["busy_p90_ms"] / default["busy_p50_ms"]
        out["default_busy_p90_over_p50_in_one_process_worst"] = max(default["busy_p90_over_p50_per_process"])
    return out


def split_cost(data: Path, rounds: int) -> dict:
    """Median frame ms of OpenVINO bf16 split vs the single bf16 generator graph, each in its own
    process, alternated; on the export the priming start made."""
    from avatarcam.engine import runtime_race

    manifests = sorted(data.glob("**/export.json"))
    if not manifests:
        return {}
    folder = str(manifests[0].parent)
    ms: dict[str, list[float]] = {"split": [], "single graph": []}
    for _ in range(max(rounds, 1)):
        for name, split in (("split", True), ("single graph", False)):
            spec = {"backend": "openvino", "folder": folder, "device": "CPU", "precision": "bf16", "split": split}
            ms[name].append(runtime_race.measure(spec))
    out = {name: statistics.median(values) for name, values in ms.items()}
    print(f"  split cost: {json.dumps(ms)}", flush=True)
    return {"split_ms": out["split"], "single_graph_ms": out["single graph"], "runs_ms": ms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help="weights (default: the full-size synthetic seed-0 checkpoint)")
    ap.add_argument("--frames", type=int, default=20, help="timed frames per child (after 2 warm-up frames)")
    ap.add_argument("--rounds", type=int, default=3, help="quiet + busy rounds over all variants")
    ap.add_argument("--starts", type=int, default=3, help="process starts per start-time row (0: skip)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench"), help="folder for the JSON and markdown")
    ap.add_argument("--note", default="", help="a line put above the tables (e.g. 'provisional: loaded machine')")
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    from bench_start import measure_starts
    from benchmark import hardware

    with tempfile.TemporaryDirectory(prefix="avatarcam-bench-") as tmp_name:
        tmp = Path(tmp_name)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from synthetic import write_synthetic_checkpoint

            checkpoint = str(write_synthetic_checkpoint(tmp / "vox-seed0.pth.tar"))
        env = dict(os.environ, AVATARCAM_DATA_DIR=str(tmp / "data"), PYTHONPATH=str(ROOT))
        env.pop("AVATARCAM_AUTO_BACKEND", None)
        print("Priming the shared data folder (export, checks, runtime race)...", flush=True)
        run_child({"checkpoint": checkpoint, "options": {}, "frames": 1}, env)
        measured = measure(checkpoint, args.frames, args.rounds, tmp, env)
        split = split_cost(tmp / "data", args.rounds)
        rows = rows_of(measured, accuracy(tmp))
        starts, runs_as = measure_starts(checkpoint, "cpu", args.starts, str(tmp / "starts")) if args.starts \
            else ({}, {})
    hw = hardware()
    try:
        import openvino

        hw["openvino"] = openvino.get_version()
    except Exception:  # noqa: BLE001
        pass
    command = "python scripts/benchmark.py --isolated " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"{args.note + chr(10) + chr(10) if args.note else ''}{hw['cpu']}, {hw['cpu_count']} cores; torch "
              f"{hw['torch']}, OpenVINO {hw.get('openvino', '-')}; {args.frames} frames x {args.rounds} rounds "
              f"per variant and condition; `{command.strip()}`")
    text = markdown(rows, starts, runs_as, header)
    if split:
        text += (f"\nOpenVINO bf16, quiet, keypoints + decode per frame: geometry split {split['split_ms']:.1f} ms, "
                 f"single bf16 graph {split['single_graph_ms']:.1f} ms (median of {args.rounds} processes each).\n")
    print("\n" + text)
    summary = ratios(rows)
    print("targets:", json.dumps({k: round(v, 2) for k, v in summary.items()}))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^a-z0-9]+", "-", hw["cpu"].lower()).strip("-") + f"-{hw['cpu_count']}core-openvino"
    (out / f"{stem}.json").write_text(json.dumps({"hardware": hw, "command": command.strip(), "note": args.note,
                                                  "frames": args.frames, "rounds": args.rounds, "results": rows,
                                                  "ratios": summary, "starts_s": starts, "split_cost": split,
                                                  "starts_run_as": runs_as}, indent=2))
    (out / f"{stem}.md").write_text(text)
    print(f"wrote {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
