#!/usr/bin/env python
"""How the two pose distances behave on the same frames (numbers for docs/pose.md).

    python scripts/pose_compare.py [--checkpoint P] [--clips 5] [--frames 20] [--json OUT]

* Warped clips: the astronaut avatar, and driving clips of it rotated/scaled/shifted at random,
  one frame being the avatar itself. Reported per method: how often the best frame is that one,
  and the Spearman rank correlation of the distances with the true rotation (position and size are
  normalised away, so rotation is the pose difference that remains). With both methods: the rank
  agreement between them and how often they pick the same best frame.
* Cost per frame on this CPU: the keypoint detector (offline scans run it; live it runs anyway),
  ``pose_distance`` itself (the meter's only extra cost live), face-alignment landmarks.
* Jitter: a still face (fixed 5 degree turn) under camera noise (Gaussian, sigma 2/255), 60
  frames: std of ``match_percent``.

face-alignment is measured only when its weights are cached (``LandmarkPose.available()``); it
never downloads. Without --checkpoint the full-size synthetic seed-0 checkpoint is used (random
weights: its keypoints are not trained on faces, so its rankings are a lower bound).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data

from synthetic import Warp, astronaut_face, warp_image, write_synthetic_checkpoint  # noqa: E402

from avatarcam.engine import Animator, EngineOptions, LandmarkPose, match_percent, pose_distance  # noqa: E402


def warped_clip(rng: np.random.Generator, face: np.ndarray, frames: int) -> tuple[list[np.ndarray], np.ndarray, int]:
    """(frames, |rotation| per frame in degrees, index of the unwarped frame)."""
    angles = rng.uniform(4, 20, frames) * rng.choice([-1, 1], frames)
    own = int(rng.integers(frames))
    angles[own] = 0.0
    clip = [face.copy() if i == own else
            warp_image(face, Warp(a, rng.uniform(0.9, 1.1), rng.uniform(-8, 8), rng.uniform(-8, 8)))
            for i, a in enumerate(angles)]
    return clip, np.abs(angles), own


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def rank_study(anim: Animator, landmarks: LandmarkPose | None, clips: int, frames: int) -> dict:
    face = astronaut_face(256)
    source = anim.set_source(face)
    rng = np.random.default_rng(0)
    stats = {"keypoints": {"hits": 0, "rho": []}, "landmarks": {"hits": 0, "rho": []}, "agree_best": 0,
             "agree_rho": []}
    for _ in range(clips):
        clip, angle, own = warped_clip(rng, face, frames)
        kp = np.array([pose_distance(source.keypoints, anim.detect(f)) for f in clip])
        stats["keypoints"]["hits"] += int(np.argmin(kp) == own)
        stats["keypoints"]["rho"].append(float(spearmanr(kp, angle).statistic))
        if landmarks is not None:
            lm = np.array([landmarks.distance(face, f) for f in clip])
            stats["landmarks"]["hits"] += int(np.argmin(lm) == own)
            stats["landmarks"]["rho"].append(float(spearmanr(lm, angle).statistic))
            stats["agree_best"] += int(np.argmin(lm) == np.argmin(kp))
            stats["agree_rho"].append(float(spearmanr(lm, kp).statistic))
    summary = {"clips": clips, "frames_per_clip": frames}
    for name in ("keypoints", "landmarks") if landmarks is not None else ("keypoints",):
        s = stats[name]
        summary[name] = {"best_is_own_pose": f"{s['hits']}/{clips}", "spearman_vs_rotation": np.mean(s["rho"])}
    if landmarks is not None:
        summary["methods_pick_same_best"] = f"{stats['agree_best']}/{clips}"
        summary["spearman_between_methods"] = float(np.mean(stats["agree_rho"]))
    return summary


def cost_and_jitter(anim: Animator, landmarks: LandmarkPose | None) -> dict:
    face = astronaut_face(256)
    source = anim.set_source(face)
    still = warp_image(face, Warp(5.0))
    rng = np.random.default_rng(1)
    noisy = [np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8) for _ in range(60)]
    kps = [anim.detect(f) for f in noisy]
    meter = np.array([match_percent(pose_distance(source.keypoints, kp)) for kp in kps])
    out = {"detect_ms": median_ms(lambda: anim.detect(still), 20),
           "pose_distance_ms": median_ms(lambda: pose_distance(source.keypoints, kps[0]), 200),
           "still_face_match_mean": float(meter.mean()), "still_face_match_std": float(meter.std())}
    if landmarks is not None:
        ref = landmarks.landmarks(face)
        out["landmarks_ms"] = median_ms(lambda: landmarks.landmarks(still), 5)
        lm = [landmarks.landmarks(f) for f in noisy[:20]]
        from avatarcam.engine.pose import landmark_distance

        lm_meter = np.array([match_percent(landmark_distance(ref, p)) for p in lm if p is not None])
        out["landmark_still_face_match_std"] = float(lm_meter.std())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or write_synthetic_checkpoint(Path(tmp) / "vox-seed0.pth.tar", seed=0)
        anim = Animator.from_checkpoint(ckpt, EngineOptions())
    landmarks = LandmarkPose() if LandmarkPose.available() else None
    result = {"engine": anim.describe(), "landmarks": "measured" if landmarks else
              "unavailable: face-alignment weights not cached (" +
              ", ".join(str(p) for p in LandmarkPose.weight_files()) + ")"}
    result["ranking"] = rank_study(anim, landmarks, args.clips, args.frames)
    result["cost_and_jitter"] = cost_and_jitter(anim, landmarks)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
