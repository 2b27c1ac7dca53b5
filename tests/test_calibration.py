"""Neutral pose from the pose match: auto-calibration, F (find best frame), X; the live match.

The driving clip is the avatar itself, warped (turned, scaled, shifted) in every frame but one that
shows the avatar's own pose. The clip is 256x256 and framing is manual (the centred square), so the
crop is the frame: the avatar-pose frame has the avatar's keypoints up to video compression. It
plays at 4 fps so the worker (tiny model, ~30 ms a frame) animates every frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import wait_until
from synthetic import Warp, astronaut_face, warp_image, write_clip

from avatarcam.engine import Animator, EngineOptions, Keypoints
from avatarcam.engine.neutral import AUTO, FIND_BEST, MANUAL, NeutralPose
from avatarcam.pipeline import FrameBundle, Pipeline, PipelineConfig

FPS = 4.0
POSE_FRAMES = 1  # frames in the avatar's own pose


@pytest.fixture(scope="module")
def animator(tiny_checkpoint):
    return Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"))


def _warp(i: int) -> Warp:
    sign = 1 if i % 2 else -1
    return Warp(angle_deg=sign * (12 + i % 5), scale=1.12 + 0.02 * (i % 3), tx=sign * 14.0, ty=10.0)


def pose_clip(path, n: int, at: int) -> tuple[str, np.ndarray, set[int]]:
    """n frames at FPS; frame ``at`` (POSE_FRAMES of them) is the avatar itself, the others warped."""
    avatar = astronaut_face(256)
    pose = set(range(at, at + POSE_FRAMES))
    frames = [avatar.copy() if i in pose else warp_image(avatar, _warp(i)) for i in range(n)]
    return write_clip(path, frames, FPS), avatar, pose


def _run(clip: str, avatar: np.ndarray, animator, *, window: float, find_best: bool = False):
    path = str(Path(clip).with_suffix(".png"))
    cv2.imwrite(path, cv2.cvtColor(avatar, cv2.COLOR_RGB2BGR))
    cfg = PipelineConfig(camera=clip, avatar=path, vcam=False, loop_video=False, framing="manual", stabilize=0.0,
                         auto_calibrate_seconds=window)
    p = Pipeline(cfg, animator=animator)
    bundles: list[FrameBundle] = []
    notices: list[str] = []
    p.add_listener(bundles.append)
    p.on_notice = notices.append
    if find_best:
        p.set_find_best(True)
    p.start()
    try:
        wait_until(lambda: p.stats().camera_state == "ended", timeout=60)
        stats = p.stats()
    finally:
        p.stop()
    return bundles, stats, notices, p


def _best_bundle(bundles: list[FrameBundle]) -> FrameBundle:
    animated = [b for b in bundles if b.match is not None]
    assert len(animated) >= len({b.index for b in bundles}) - 1, "the worker animated (nearly) every frame"
    return max(animated, key=lambda b: b.match)


def test_auto_calibration_takes_the_avatar_pose_seen_in_the_first_seconds(tmp_path, animator):
    clip, avatar, pose = pose_clip(tmp_path / "c.mp4", 20, at=6)  # the pose at 1.5 s; window 3 s
    bundles, stats, _, p = _run(clip, avatar, animator, window=3.0)
    best = _best_bundle(bundles)
    assert best.index in pose
    assert stats.calibration == AUTO and stats.calibrated
    assert stats.best_match == pytest.approx(best.match)
    warped = max(b.match for b in bundles if b.match is not None and b.index not in pose)
    assert best.match > warped + 5, (best.match, warped)


def test_auto_calibration_ignores_frames_after_its_window(tmp_path, animator):
    clip, avatar, pose = pose_clip(tmp_path / "c.mp4", 20, at=14)  # the pose at 3.5 s; window 1 s
    bundles, stats, _, _ = _run(clip, avatar, animator, window=1.0)
    t0 = bundles[0].t_capture
    first_second = [b for b in bundles if b.match is not None and b.t_capture - t0 <= 1.0]
    assert stats.best_match is not None and stats.best_match <= max(b.match for b in first_second) + 1e-6
    assert stats.best_match < _best_bundle(bundles).match  # the better pose came too late


def test_find_best_mode_ends_on_the_avatar_pose(tmp_path, animator):
    clip, avatar, pose = pose_clip(tmp_path / "c.mp4", 20, at=11)
    bundles, stats, notices, p = _run(clip, avatar, animator, window=0.0, find_best=True)
    best = _best_bundle(bundles)
    assert best.index in pose and stats.calibration == FIND_BEST and p.find_best
    assert stats.best_match == pytest.approx(best.match) == pytest.approx(p.best_match)
    assert p.match_reading().improvements >= 2  # the first frame, then better ones
    p.set_find_best(False)
    assert p.match_reading().mode == MANUAL and p.best_match == stats.best_match  # the best one stays


def _kp(x: float) -> Keypoints:
    value = torch.full((1, 10, 2), 0.0)
    value[0, :, 0] = torch.linspace(-0.5, 0.5, 10)
    value[0, :, 1] = torch.linspace(-0.5, 0.5, 10) ** 2
    value[0, :3, 1] += x  # a change of shape (not of position or scale, which a pose distance ignores)
    return Keypoints(value, torch.eye(2).expand(1, 10, 2, 2).clone())


def test_x_sets_the_neutral_explicitly_and_ends_the_search():
    picker = NeutralPose(window_s=10.0)
    picker.set_avatar(_kp(0.0))
    taken = []

    def observe(x: float, t: float) -> None:
        before = picker.calibration
        after = picker.observe(_kp(x), t)
        if after is not before:
            taken.append(after.neutral)

    observe(0.3, 0.0)  # auto: the first frame is the neutral pose
    observe(0.1, 0.1)  # a better match: taken
    observe(0.2, 0.2)  # worse: not taken
    assert len(taken) == 2 and picker.reading().mode == AUTO
    picker.calibrate_next()
    observe(0.4, 0.3)  # X: taken although worse
    observe(0.0, 0.4)  # perfect, but X ended auto-calibration
    assert len(taken) == 3 and taken[-1].value[0, 0, 1] == pytest.approx(0.25 + 0.4)
    reading = picker.reading()
    assert reading.mode == MANUAL and not reading.searching and reading.match > reading.best


def test_meter_jitter_on_a_still_face(tmp_path, animator):
    """The match of a still face (the same frame, re-encoded: only compression noise) barely moves."""
    avatar = astronaut_face(256)
    still = warp_image(avatar, Warp(angle_deg=5, scale=1.05))
    clip = write_clip(tmp_path / "still.mp4", [still] * 15, FPS)
    bundles, _, _, _ = _run(clip, avatar, animator, window=3.0)
    matches = np.array([b.match for b in bundles if b.match is not None])
    assert len(matches) >= 10
    print(f"meter on a still face: mean {matches.mean():.2f} %, std {matches.std():.3f} points, "
          f"range {np.ptp(matches):.3f} points")
    assert np.ptp(matches) < 1.0
