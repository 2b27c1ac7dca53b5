"""The animator contract (engine/protocols.py) and the one owner of the neutral pose (engine/neutral.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import wait_until
from synthetic import astronaut_face, write_clip

from avatarcam.engine import Animator, AnimatorProtocol, EngineOptions, Keypoints, NeutralPose
from avatarcam.pipeline import Pipeline, PipelineConfig
from avatarcam.remote.client import RemoteAnimator, RemoteOptions

PACKAGE = Path(__file__).resolve().parents[1] / "avatarcam"


@pytest.fixture(scope="module")
def animator(tiny_checkpoint):
    return Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32"))


def _protocol_members() -> set[str]:
    return {name for name in AnimatorProtocol.__dict__ if not name.startswith("_")} | set(
        AnimatorProtocol.__annotations__)


def test_both_animators_satisfy_the_protocol(animator):
    assert isinstance(animator, AnimatorProtocol)
    remote = RemoteAnimator(RemoteOptions("ws://127.0.0.1:9", "t", mode="image"))  # nothing listens on port 9
    try:
        assert isinstance(remote, AnimatorProtocol)
        for anim in (animator, remote):  # every member, also the ones isinstance does not look at
            missing = [m for m in _protocol_members() if not hasattr(anim, m)]
            assert not missing, (type(anim).__name__, missing)
    finally:
        remote.close()


def _names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def test_only_remote_knows_the_remote_animator_and_only_the_engine_picks_the_neutral_pose():
    """No `isinstance(x, RemoteAnimator)` (no use of the class at all) outside remote/; the neutral-pose
    rule (NeutralPose, make_calibration, RelativeMotion.calibration) is used only by the engine and the
    two remote ends, never copied into the pipeline, the window or the commands."""
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        names = _names(ast.parse(path.read_text()))
        if not rel.startswith("remote/"):
            assert "RemoteAnimator" not in names, rel
        if not rel.startswith(("engine/", "remote/server.py", "remote/client.py")):
            assert not names & {"NeutralPose", "make_calibration", "movement_scale", "NeutralPicker"}, rel
        if rel not in ("engine/neutral.py", "engine/motion.py"):  # the repair runs in one place
            calls = [n.func.attr for n in ast.walk(ast.parse(path.read_text()))
                     if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
            assert "calibration" not in calls, rel


def _degenerate(kp: Keypoints) -> Keypoints:
    jacobian = kp.jacobian.clone()
    jacobian[:, :3] = 0.0  # singular: relative motion would divide by zero
    return Keypoints(kp.value, jacobian)


def test_the_pipeline_forwards_the_animators_notices(tmp_path, animator):
    """A repaired neutral pose is said in the window and in `avatarcam run` (Pipeline.on_notice)."""
    face = astronaut_face(256)
    clip = write_clip(tmp_path / "c.mp4", [face] * 3, 10.0)
    pipeline = Pipeline(PipelineConfig(camera=clip, vcam=False, loop_video=False, framing="manual"),
                        animator=animator)
    notices: list[str] = []
    pipeline.on_notice = notices.append
    pipeline.start()
    try:
        wait_until(lambda: pipeline.stats().frames_out >= 1, timeout=60)
        animator.calibrate(keypoints=_degenerate(animator.detect(face)))
        assert any("singular" in n for n in notices), notices
    finally:
        pipeline.stop()


def test_neutral_pose_repairs_a_degenerate_pose_and_keeps_the_avatar_moving(animator):
    face = astronaut_face(256)
    prepared = animator.prepare_source(face)
    said: list[str] = []
    neutral = NeutralPose(animator.motion, on_notice=said.append)
    neutral.set_avatar(prepared.keypoints)
    neutral.set_neutral(_degenerate(animator.detect(face)))
    assert said and torch.isfinite(neutral.calibration.neutral.jacobian).all()
    assert np.linalg.matrix_rank(neutral.calibration.neutral.jacobian[0, 0].numpy()) == 2
