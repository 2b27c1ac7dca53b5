"""Which runtime is faster on this CPU, torch or OpenVINO: each timed in its own process, quiet and
with one busy process competing (in use, the video-call app shares the cores: measured, torch slows
~2.7x then and OpenVINO ~1x, while quiet they are within ~20 %), so the score is the sum of both medians.

Two runtimes' thread pools in one process slow each other down (torch measured ~5x slower when
its calls alternate with OpenVINO's), so each candidate is built and timed in a fresh child
process, one after the other, and only the per-frame median comes back. ``backend="auto"`` on a
CPU runs this once per checkpoint and caches the winner with the precision checks.

    python -m avatarcam.engine.runtime_race '{"backend": "torch", "checkpoint": "...", "precision": "bf16"}'
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..errors import AvatarcamError

WARMUP, FRAMES = 2, 5
TIMEOUT_S = 600


def frame_times(backend, size: int, frames: int = FRAMES) -> list[float]:
    """ms of each frame's work (keypoints of the driving picture + decode), the avatar cached."""
    from .precision import seeded_inputs

    source, driving = seeded_inputs(size)
    encoded, kp_source = backend.encode(source), backend.detect(source)
    times = []
    for i in range(WARMUP + frames):
        t0 = time.perf_counter()
        backend.decode(encoded, kp_source, backend.detect(driving))
        if i >= WARMUP:
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def build(spec: dict):
    """The backend a spec names: {"backend": "torch", "checkpoint", "precision"[, "torch_threads"]} or
    {"backend": "openvino", "folder", "device", "precision"[, "split": false for the single generator graph]
    [, "properties": OpenVINO compile properties]}."""
    if spec["backend"] == "openvino":
        from .openvino_backend import OpenVINOBackend

        return OpenVINOBackend(spec["folder"], spec["device"], spec["precision"], split=spec.get("split", True),
                               properties=spec.get("properties"))
    from .checkpoint import load_networks
    from .torch_backend import TorchBackend

    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))  # this child process only
    return TorchBackend(load_networks(spec["checkpoint"]), torch.device("cpu"), spec["precision"])


def busy_process() -> subprocess.Popen:
    """One process keeping a core busy, as a video-call app would (the race and scripts/bench_runtimes.py)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(spec: dict, *, busy: bool = False) -> float:
    """Median frame ms of the spec'd backend, built and timed in a child process (``busy``: while one
    other process keeps a core busy)."""
    return statistics.median(measure_frames(spec, busy=busy))


def measure_frames(spec: dict, *, busy: bool = False) -> list[float]:
    """Each frame's ms of the spec'd backend (``spec["frames"]`` of them), built and timed in a child process."""
    package_root = str(Path(__file__).resolve().parents[2])  # this checkout, not another install
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    spinner = busy_process() if busy else None
    try:
        done = subprocess.run([sys.executable, "-m", __name__, json.dumps(spec)], env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
        if done.returncode == 0:
            return [float(ms) for ms in json.loads(done.stdout.strip().splitlines()[-1])["times"]]
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as err:
        reason = f"{type(err).__name__}: {err}"
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    raise AvatarcamError(f"timing {spec['backend']} failed: {reason}")


def race(specs: dict[str, dict]) -> dict[str, float]:
    """{name: quiet + busy median frame ms} for each spec, timed one after the other in separate processes:
    quiet in the given order, then busy in the reverse order, so that a drift in the machine's speed
    while the race runs (a shared VM, a laptop warming up) weighs on every runtime alike."""
    ms = {name: measure(spec) for name, spec in specs.items()}
    for name in reversed(list(specs)):
        ms[name] += measure(specs[name], busy=True)
    return ms


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    backend = build(spec)
    times = frame_times(backend, int(spec.get("size", 256)), int(spec.get("frames", FRAMES)))
    print(json.dumps({"ms": statistics.median(times), "times": times}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
