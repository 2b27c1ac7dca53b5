"""The batch rule a shared worker relies on: every item of ``Animator.animate_batch`` equals its batch-1
result, whatever the other items are (here: keypoints with and without jacobians, mixed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarcam.engine import AnimateJob, Animator, EngineOptions, Keypoints


@pytest.fixture(scope="module", params=["torch", "openvino"])
def animator(request, tiny_checkpoint) -> Animator:
    """Every backend keeps the rule (the exported graphs take jacobians: items without them still render)."""
    if request.param == "openvino":
        pytest.importorskip("openvino")
    return Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32",
                                                                   backend=request.param))


def _jobs(animator: Animator, astronaut) -> list[AnimateJob]:
    rng = np.random.default_rng(7)
    sources = [animator.prepare_source(astronaut), animator.prepare_source(astronaut[::-1].copy())]
    k = sources[0].keypoints.value.shape[1]
    jobs = []
    for i in range(4):
        value = rng.uniform(-0.6, 0.6, (1, k, 2)).astype(np.float32)
        jac = (np.eye(2, dtype=np.float32) + rng.normal(0, 0.3, (1, k, 2, 2))).astype(np.float32)
        jobs.append(AnimateJob(sources[i % 2], Keypoints.from_numpy(value, jac if i % 2 == 0 else None)))
    return jobs


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (1, 0, 3, 2)], ids=["jacobian-first", "no-jacobian-first"])
def test_every_batch_item_equals_its_batch_of_one(animator, astronaut, order):
    jobs = _jobs(animator, astronaut)
    alone = {i: animator.animate_batch([jobs[i]])[0] for i in order}
    mixed = animator.animate_batch([jobs[i] for i in order])
    for row, i in enumerate(order):
        np.testing.assert_allclose(mixed[row], alone[i], atol=1e-4, err_msg=f"item {i} changed by its batch")
    assert np.abs(alone[0] - alone[1]).mean() > 1e-3  # the items really differ


def test_keypoints_cat_refuses_mixed_jacobians():
    with_jac = Keypoints(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2, 2))
    without = Keypoints(torch.zeros(1, 3, 2))
    assert Keypoints.cat([with_jac, with_jac]).jacobian.shape == (2, 3, 2, 2)
    assert Keypoints.cat([without, without]).jacobian is None
    for items in ([with_jac, without], [without, with_jac]):
        with pytest.raises(ValueError, match="jacobians"):
            Keypoints.cat(items)
