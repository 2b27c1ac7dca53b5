"""A neutral pose that relative motion cannot use is repaired with a notice, never a broken frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarcam.engine import Animator, EngineOptions, Keypoints, RelativeMotion


def _kp(value, jac=None):
    v = torch.tensor(value, dtype=torch.float32)[None]
    j = torch.eye(2).expand(1, v.shape[1], 2, 2).clone() if jac is None else jac
    return Keypoints(v, j)


SRC = _kp([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.5], [0.0, 0.0]])


def test_singular_neutral_jacobian_is_replaced_and_named():
    jac = torch.eye(2).expand(1, 4, 2, 2).clone()
    jac[0, 2] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # rank 1: the inverse is inf
    neutral = Keypoints(SRC.value + 0.05, jac)
    motion = RelativeMotion()
    assert not torch.isfinite(motion.apply(SRC, neutral, neutral, 1.0).jacobian).all()  # the bug, unrepaired
    fixed, scale, notices = motion.calibration(SRC, neutral)
    assert len(notices) == 1 and "jacobian(s) 2 are singular" in notices[0]
    out = motion.apply(SRC, neutral, fixed, scale)
    assert torch.isfinite(out.jacobian).all() and torch.isfinite(out.value).all()
    assert torch.allclose(out.jacobian[0, 2], neutral.jacobian[0, 2])  # follows the driving jacobian directly
    assert torch.allclose(fixed.jacobian[0, [0, 1, 3]], jac[0, [0, 1, 3]])  # the others untouched


def test_nearly_singular_and_nan_jacobians_are_caught():
    jac = torch.eye(2).expand(1, 4, 2, 2).clone()
    jac[0, 0] = torch.tensor([[1.0, 1.0], [1.0, 1.0 + 1e-6]])
    jac[0, 3] = float("nan")
    _, _, notices = RelativeMotion().calibration(SRC, Keypoints(SRC.value, jac))
    assert "jacobian(s) 0, 3 are singular" in notices[0]


def test_collinear_neutral_keypoints_scale_from_spread_with_a_notice():
    line = _kp([[-0.4, 0.0], [-0.1, 0.0], [0.2, 0.0], [0.5, 0.0]])
    _, scale, notices = RelativeMotion().calibration(SRC, line)
    assert scale != 1.0 and np.isfinite(scale)
    assert any("collinear" in n for n in notices)
    half = _kp([[-0.2, 0.0], [-0.05, 0.0], [0.1, 0.0], [0.25, 0.0]])
    assert RelativeMotion().calibration(SRC, half)[1] == pytest.approx(2 * scale)  # half the spread: twice the scale


def test_coincident_keypoints_say_the_scale_is_not_adapted():
    point = _kp([[0.1, 0.1]] * 4)
    _, scale, notices = RelativeMotion().calibration(SRC, point)
    assert scale == 1.0 and "not adapted" in notices[0]


def test_healthy_neutral_pose_has_no_notice():
    neutral = _kp([[0.0, 0.1], [-0.2, 0.3], [0.4, -0.6], [0.1, 0.0]])
    fixed, scale, notices = RelativeMotion().calibration(SRC, neutral)
    assert notices == [] and fixed is neutral
    assert scale == pytest.approx(RelativeMotion().movement_scale(SRC, neutral))


def test_animator_frame_stays_finite_and_notice_is_reported(tiny_checkpoint):
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32", backend="torch"))
    heard = []
    anim.on_notice = heard.append
    anim.set_source(np.full((64, 64, 3), 0.5, np.float32))
    kp = anim.detect(np.full((64, 64, 3), 0.3, np.float32))
    jac = kp.jacobian.clone()
    jac[0, :] = torch.tensor([[1.0, 2.0], [2.0, 4.0]])  # every neutral jacobian singular
    anim.calibrate(keypoints=Keypoints(kp.value, jac))
    out = anim.animate_keypoints(kp)
    assert np.isfinite(out).all()
    assert len(heard) == 1 and "singular" in heard[0]
