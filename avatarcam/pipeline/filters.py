"""Casiez et al.'s One Euro filter: strong smoothing at rest, little lag in fast motion."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np


class OneEuroFilter:
    """One Euro filter on a numpy array (computed in float64) or a torch tensor (in float32, on the
    tensor's own device, so keypoints never leave the GPU). ``min_cutoff`` (Hz) sets the smoothing
    at rest, ``beta`` the speed response."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x: Any = None
        self._dx: Any = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: Any, dt: float) -> Any:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: Any, t: float | None = None) -> Any:
        x = x.detach().float() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)  # torch | numpy
        t = time.monotonic() if t is None else float(t)
        if (self._x is None or self._x.shape != x.shape or type(self._x) is not type(x)
                or getattr(self._x, "device", None) != getattr(x, "device", None)):  # a new stream: restart
            self._x, self._dx, self._t = x * 1.0, x * 0.0, t
            return x * 1.0
        dt = t - self._t
        if dt <= 0:
            dt = 1e-3
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x * 1.0
