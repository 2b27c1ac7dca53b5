"""Keypoint stabiliser: a One Euro filter on the driving keypoints and jacobians.

FOMM's keypoints jitter by a fraction of a pixel from frame to frame even on a still face, which
makes the avatar shimmer. The filter removes that jitter at rest and lets real motion through
(its cutoff rises with speed). Hook it in with ``animator.keypoint_filter = KeypointStabilizer(0.5)``
or call it between ``animator.detect`` and ``animator.animate_keypoints``.
"""

from __future__ import annotations

from ..engine.motion import Keypoints
from .framing import OneEuroFilter


def stabilizer_params(strength: float) -> tuple[float, float]:
    """strength in (0, 1] -> (min_cutoff Hz, beta) in keypoint units ([-1, 1] across the crop)."""
    s = min(max(float(strength), 0.0), 1.0)
    return 4.0 * (1.0 - s) ** 2 + 0.5 * s, 2.0


class KeypointStabilizer:
    def __init__(self, strength: float = 0.5) -> None:
        self.strength = float(strength)
        min_cutoff, beta = stabilizer_params(strength)
        self._value = OneEuroFilter(min_cutoff, beta)
        self._jacobian = OneEuroFilter(min_cutoff, beta)

    @property
    def enabled(self) -> bool:
        return self.strength > 0

    def reset(self) -> None:
        self._value.reset()
        self._jacobian.reset()

    def __call__(self, kp: Keypoints, t: float | None = None) -> Keypoints:
        if not self.enabled:
            return kp
        arrays = kp.numpy()
        value = self._value(arrays["value"], t)
        jacobian = self._jacobian(arrays["jacobian"], t) if "jacobian" in arrays else None
        return Keypoints.from_numpy(value, jacobian, device=kp.value.device)
