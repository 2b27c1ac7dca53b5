"""The neutral pose on a remote worker: both uplink modes use the engine's one owner (engine/neutral.py).

Image mode: the worker's session keeps the neutral pose; X, F and the auto window reach it and its
reading comes back. Keypoints mode: the client keeps it, with the degenerate-pose repair. Real Ray Serve
on 127.0.0.1 (tests/remote_fixtures.py), the reduced model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import wait_until

from avatarcam.engine import Keypoints
from avatarcam.engine.neutral import AUTO, FIND_BEST, MANUAL
from avatarcam.remote.client import RemoteAnimator

pytest_plugins = ["remote_fixtures"]
pytest.importorskip("ray.serve")


@pytest.fixture(scope="module")
def faces(astronaut):
    """Driving crops: the avatar's face shifted a little in each (bounded count: 4)."""
    import cv2

    base = cv2.resize(astronaut[:300, 100:400], (300, 300))
    return [np.ascontiguousarray(base[8 * i:256 + 8 * i, 6 * i:256 + 6 * i]) for i in range(4)]


def _avatar(astronaut) -> np.ndarray:
    import cv2

    return cv2.resize(astronaut[:300, 100:400], (256, 256))


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def test_image_mode_x_f_and_the_auto_window_reach_the_worker(remote_worker, astronaut, faces):
    remote = RemoteAnimator.connect(remote_worker.url, remote_worker.token, avatar=_avatar(astronaut), downlink="raw")
    try:
        assert remote.remote.mode == "image"
        first = remote.animate(faces[0], exact=True)  # auto, window 0 s: the first frame is the neutral pose
        wait_until(lambda: remote.is_calibrated, timeout=20)  # the status line stops asking for X
        assert remote.match_reading().mode == AUTO and remote.match_reading().match is not None
        moved = remote.animate(faces[3], exact=True)
        remote.set_find_best(True)
        remote.animate(faces[1], exact=True)
        wait_until(lambda: remote.match_reading().mode == FIND_BEST, timeout=20)
        assert remote.match_reading().improvements >= 1  # the worker searched
        remote.calibrate_next()  # X: the next frame (faces[3]) is the neutral pose; find-best ends
        again = remote.animate(faces[3], exact=True)
        wait_until(lambda: remote.match_reading().mode == MANUAL, timeout=20)
        assert _diff(again, first) < _diff(moved, first)  # no motion relative to itself, like the first frame
    finally:
        remote.close()


def test_keypoints_mode_repairs_a_degenerate_neutral_pose_and_says_so(remote_worker, astronaut, faces):
    remote = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                    avatar=_avatar(astronaut), downlink="raw")
    said: list[str] = []
    remote.on_notice = said.append
    try:
        kp = remote.detect(faces[0])
        jacobian = kp.jacobian.clone()
        jacobian[:, :4] = 0.0  # singular: the relative jacobian would be inf/NaN (a frozen or broken avatar)
        remote.calibrate(keypoints=Keypoints(kp.value, jacobian))
        assert any("singular" in line for line in said), said
        pictures = [remote.animate(f, exact=True) for f in (faces[1], faces[3])]
        assert all(np.isfinite(p).all() for p in pictures)
        assert _diff(pictures[0], pictures[1]) > 1e-3  # the avatar still follows the face
        assert remote.is_calibrated
    finally:
        remote.close()
