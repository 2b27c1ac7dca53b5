"""Pose distance between keypoint sets / landmarks, the match scale, and the landmark path's availability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avatarcam.engine import Keypoints, LandmarkPose, LandmarkPoseUnavailable, match_percent, pose_distance
from avatarcam.engine.pose import landmark_distance


def _kp(seed: int = 0, jac: bool = True) -> Keypoints:
    rng = np.random.default_rng(seed)
    value = rng.uniform(-0.5, 0.5, (1, 10, 2))
    jacobian = np.eye(2)[None, None] + rng.normal(0, 0.1, (1, 10, 2, 2)) if jac else None
    return Keypoints.from_numpy(value, jacobian)


def _transform(kp: Keypoints, scale: float = 1.0, shift=(0.0, 0.0), angle: float = 0.0) -> Keypoints:
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float32)
    value = kp.value @ rot.T * scale + torch.tensor(shift, dtype=torch.float32)
    jac = None if kp.jacobian is None else rot @ kp.jacobian * scale
    return Keypoints(value, jac)


def test_same_pose_is_distance_zero_and_match_100():
    kp = _kp()
    assert pose_distance(kp, kp) == pytest.approx(0.0, abs=1e-9)
    assert match_percent(pose_distance(kp, kp)) == pytest.approx(100.0)


def test_position_and_size_in_the_picture_do_not_count():
    kp = _kp()
    moved = _transform(kp, scale=1.7, shift=(0.2, -0.1))
    assert pose_distance(kp, moved) < 1e-5


def test_rotation_counts_and_distance_grows_with_it():
    kp = _kp()
    d = [pose_distance(kp, _transform(kp, angle=a)) for a in (0.05, 0.2, 0.5)]
    assert 0 < d[0] < d[1] < d[2]


def test_jacobians_count_when_both_have_them():
    kp = _kp()
    squashed = Keypoints(kp.value, kp.jacobian * torch.tensor([1.0, 0.5]))
    assert pose_distance(kp, squashed) > 0.01
    assert pose_distance(_kp(jac=False), Keypoints(kp.value, None)) == pytest.approx(0.0, abs=1e-9)


def test_uses_batch_row_zero():
    a, b = _kp(0), _kp(1)
    stacked = Keypoints.cat([a, b])
    assert pose_distance(stacked, a) == pytest.approx(0.0, abs=1e-9)


def test_collinear_keypoints_give_a_finite_distance():
    line = Keypoints.from_numpy(np.stack([np.linspace(-1, 1, 10), np.zeros(10)], -1)[None])
    d = pose_distance(line, _kp(jac=False))
    assert math.isfinite(d) and d > 0


def test_match_percent_is_monotone_decreasing_in_0_100():
    values = [match_percent(d) for d in (0.0, 0.05, 0.1, 0.3, 1.0, 10.0)]
    assert values[0] == 100.0 and all(a > b for a, b in zip(values, values[1:], strict=False))
    assert all(0.0 <= v <= 100.0 for v in values)
    assert match_percent(math.inf) == 0.0 and match_percent(math.nan) == 0.0


def test_landmark_distance_normalises_like_the_keypoints():
    pts = np.random.default_rng(3).uniform(0, 200, (68, 2))
    assert landmark_distance(pts, pts * 2.5 + 40) < 1e-9
    assert landmark_distance(pts, pts[::-1]) > 0.1


def test_landmark_pose_unavailable_without_cached_weights(tmp_path):
    # conftest points TORCH_HOME at an empty folder: the weights are not cached, nothing downloads
    assert LandmarkPose.available() is False
    with pytest.raises(LandmarkPoseUnavailable, match="face-alignment"):
        LandmarkPose()


def test_landmark_pose_is_available_once_the_weights_are_in_the_hub_cache():
    files = LandmarkPose.weight_files()
    assert [p.name for p in files] == ["s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar"]
    for path in files:  # TORCH_HOME is a per-test folder (conftest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert LandmarkPose.available() is True
