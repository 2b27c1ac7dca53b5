"""Keypoint stabiliser: a One Euro filter on the driving keypoints and jacobians.

FOMM's keypoints jitter by a fraction of a pixel from frame to frame even on a still face, which
makes the avatar shimmer. The filter removes that jitter at rest and lets real motion through
(its cutoff rises with speed). It filters the tensors where they are (no copy to the CPU) and is
passed to the animator as its keypoint filter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .filters import OneEuroFilter


def stabilizer_params(strength: float) -> tuple[float, float]:
    """strength in (0, 1] -> (min_cutoff Hz, beta) in keypoint units ([-1, 1] across the crop)."""
    s = min(max(float(strength), 0.0), 1.0)
    return 4.0 * (1.0 - s) ** 2 + 0.5 * s, 2.0


class KeypointStabilizer:
    """Call with keypoints (a ``{"value", "jacobian"}`` dict or a ``Keypoints`` dataclass) and the
    frame time; returns the same kind of object, smoothed, in the input's dtype and device."""

    def __init__(self, strength: float = 0.5) -> None:
        self.strength = float(strength)
        min_cutoff, beta = stabilizer_params(strength)
        self._filters = {"value": OneEuroFilter(min_cutoff, beta), "jacobian": OneEuroFilter(min_cutoff, beta)}

    def at(self, t: float) -> Callable[[Any], Any]:
        """This stabiliser as a one-argument keypoint filter for the frame taken at ``t``."""
        return lambda kp: self(kp, t)

    def __call__(self, kp: Any, t: float | None = None) -> Any:
        if self.strength <= 0:
            return kp
        is_dict = isinstance(kp, dict)
        smoothed = {}
        for key, filt in self._filters.items():
            ref = kp.get(key) if is_dict else getattr(kp, key, None)
            if ref is not None:
                smoothed[key] = filt(ref, t).to(dtype=ref.dtype)
        return {**kp, **smoothed} if is_dict else dataclasses.replace(kp, **smoothed)
