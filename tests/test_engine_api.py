"""The Animator's public API: one route from a frame to a picture, calibration, batches (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarcam.engine import AnimateJob, Animator, EngineOptions, Keypoints, RelativeMotion


@pytest.fixture(scope="module")
def animator(tiny_checkpoint):
    return Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32"))


@pytest.fixture(scope="module")
def pictures(parity_fixture):
    fx = parity_fixture
    return fx["source"], fx["source"][:, ::-1].copy(), fx["driving_initial"], fx["driving"]


def test_options_are_resolved_and_described(animator):
    assert animator.options == EngineOptions(device="cpu", precision="fp32", backend="torch")
    assert animator.describe() == "torch-cpu fp32" and animator.size == 256
    assert animator.config.image_size == 256


def test_batch_items_equal_batch_one_results(animator, pictures):
    """3 jobs on 2 different avatars in one forward; each equals its own batch-1 run."""
    face_a, face_b, neutral_frame, moved_frame = pictures
    a, b = animator.prepare_source(face_a), animator.prepare_source(face_b)
    neutral, moved = animator.detect(neutral_frame), animator.detect(moved_frame)
    jobs = [AnimateJob(a, moved, animator.make_calibration(a, neutral)),
            AnimateJob(b, moved, animator.make_calibration(b, neutral)),
            AnimateJob(a, neutral, None)]
    batch = animator.animate_batch(jobs)
    assert batch.shape == (3, 256, 256, 3) and batch.dtype == np.float32
    singles = [animator.animate_batch([job])[0] for job in jobs]
    for got, want in zip(batch, singles, strict=True):
        assert np.abs(got - want).max() <= 1e-5
    assert np.abs(batch[0] - batch[1]).mean() > 1e-3  # the two avatars really differ
    assert animator.animate_batch([]).shape == (0, 256, 256, 3)


def test_animate_is_detect_filter_calibrate_decode(tiny_checkpoint, pictures):
    face, _, neutral_frame, moved_frame = pictures
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32"))
    anim.set_source(face)
    seen = []

    def shift(kp: Keypoints) -> Keypoints:
        seen.append(kp)
        return Keypoints(kp.value + 0.05, kp.jacobian)

    first = anim.animate(neutral_frame, keypoint_filter=shift)  # no neutral yet: this frame becomes it
    assert anim.is_calibrated and len(seen) == 1
    moved = anim.animate(moved_frame, keypoint_filter=shift)
    via_keypoints = anim.animate_keypoints(shift(anim.detect(moved_frame)))
    assert np.abs(moved - via_keypoints).max() <= 1e-6
    anim.calibrate_next()  # the next frame becomes the neutral pose: no motion, like the first frame
    again = anim.animate(moved_frame, keypoint_filter=shift)
    assert np.abs(again - first).max() < np.abs(moved - first).max()
    anim.reset_calibration()
    assert not anim.is_calibrated


def test_motion_options_are_applied(tiny_checkpoint, pictures):
    face, _, neutral_frame, moved_frame = pictures
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32"),
                                    motion=RelativeMotion(relative=False))
    anim.set_source(face)
    absolute = anim.animate(moved_frame)
    anim.motion = RelativeMotion()
    anim.calibrate(neutral_frame)
    relative = anim.animate(moved_frame)
    assert np.abs(absolute - relative).mean() > 1e-4


def test_keypoints_on_another_device_are_moved(animator, pictures):
    face, _, neutral_frame, _ = pictures
    source = animator.prepare_source(face)
    kp = Keypoints.from_numpy(**animator.detect(neutral_frame).numpy())
    out = animator.animate_batch([AnimateJob(source, kp, animator.make_calibration(source, kp))])
    assert out.shape == (1, 256, 256, 3) and torch.isfinite(torch.from_numpy(out)).all()
