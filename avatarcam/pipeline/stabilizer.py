"""Keypoint stabiliser: a One Euro filter on the driving keypoints and jacobians.

FOMM's keypoints jitter by a fraction of a pixel from frame to frame even on a still face, which
makes the avatar shimmer. The filter removes that jitter at rest and lets real motion through
(its cutoff rises with speed). It filters the tensors where they are (no copy to the CPU) and is
passed to the animator as its keypoint filter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..engine import Keypoints
from .filters import OneEuroFilter


def stabilizer_params(strength: float) -> tuple[float, float]:
    """strength in (0, 1] -> (min_cutoff Hz, beta) in keypoint units ([-1, 1] across the crop)."""
    s = min(max(float(strength), 0.0), 1.0)
    return 4.0 * (1.0 - s) ** 2 + 0.5 * s, 2.0


class KeypointStabilizer:
    """Call with ``Keypoints`` and the frame time; returns them smoothed, in the input's dtype and device."""

    def __init__(self, strength: float = 0.5) -> None:
        self.strength = float(strength)
        min_cutoff, beta = stabilizer_params(strength)
        self._filters = {"value": OneEuroFilter(min_cutoff, beta), "jacobian": OneEuroFilter(min_cutoff, beta)}

    def at(self, t: float) -> Callable[[Keypoints], Keypoints]:
        """This stabiliser as a one-argument keypoint filter for the frame taken at ``t``."""
        return lambda kp: self(kp, t)

    def __call__(self, kp: Keypoints, t: float | None = None) -> Keypoints:
        if self.strength <= 0:
            return kp
        smoothed = {}
        for key, filt in self._filters.items():
            ref = getattr(kp, key)
            if ref is not None:
                smoothed[key] = filt(ref, t).to(dtype=ref.dtype)
        return dataclasses.replace(kp, **smoothed)
