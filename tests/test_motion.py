from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull

from avatarcam.engine.motion import Keypoints, RelativeMotion, hull_area, inverse_2x2


def test_inverse_2x2_matches_linalg():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(4, 10, 2, 2, generator=g) + 2 * torch.eye(2)
    assert torch.allclose(inverse_2x2(m), torch.linalg.inv(m), atol=1e-5)


def test_hull_area_matches_scipy():
    rng = np.random.default_rng(1)
    for _ in range(20):
        pts = rng.normal(size=(10, 2)).astype(np.float32)
        assert abs(hull_area(pts) - ConvexHull(pts).volume) < 1e-12
    assert hull_area(np.zeros((10, 2))) == 0.0  # degenerate: no crash
    assert hull_area(np.array([[0, 0], [1, 1], [2, 2], [3, 3]])) == 0.0  # collinear


def test_keypoints_numpy_round_trip():
    kp = _kp([[0.1, 0.2], [-0.3, 0.4]])
    back = Keypoints.from_numpy(**kp.numpy())
    assert torch.equal(back.value, kp.value) and torch.equal(back.jacobian, kp.jacobian)
    assert Keypoints.from_numpy(kp.numpy()["value"]).jacobian is None


def _kp(value, jac=None):
    v = torch.tensor(value, dtype=torch.float32)[None]
    j = torch.eye(2).expand(1, v.shape[1], 2, 2).clone() if jac is None else jac
    return Keypoints(v, j)


def test_relative_motion_no_movement_gives_source_pose():
    src = _kp([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.5]])
    neutral = _kp([[0.0, 0.1], [-0.2, 0.3], [0.4, -0.6]])
    motion = RelativeMotion()
    out = motion.apply(src, neutral, neutral, motion.movement_scale(src, neutral))
    assert torch.allclose(out.value, src.value, atol=1e-7)
    assert torch.allclose(out.jacobian, src.jacobian, atol=1e-6)


def test_relative_motion_scales_movement_by_face_size():
    src = _kp([[0.0, 0.0], [0.2, 0.0], [0.0, 0.2]])  # hull area 0.02
    neutral = _kp([[0.0, 0.0], [0.4, 0.0], [0.0, 0.4]])  # 4x the area: driving face twice as large
    moved = _kp([[0.1, 0.0], [0.5, 0.0], [0.1, 0.4]])  # shifted right by 0.1
    motion = RelativeMotion()
    scale = motion.movement_scale(src, neutral)
    assert abs(scale - 0.5) < 1e-6
    out = motion.apply(src, moved, neutral, scale)
    assert torch.allclose(out.value - src.value, torch.tensor([[0.05, 0.0]] * 3)[None], atol=1e-6)
    absolute = RelativeMotion(relative=False).apply(src, moved, neutral, 1.0)
    assert torch.equal(absolute.value, moved.value)
