"""Which driving frame is the neutral pose: auto-calibration, F ("find best frame") and X.

Relative motion only looks right when the neutral driving pose matches the avatar's pose. Every
animated frame's keypoints (already computed: no extra model) are compared with the avatar's
(``engine.pose``); the match (0-100 %) is shown live.

* ``auto`` (from the start of the stream until X): during the first ``auto_calibrate_seconds`` the
  best-matching frame so far is the neutral pose; after that window it stays.
* ``find-best`` (F, a toggle): while on, every better-matching frame becomes the neutral pose;
  ``MatchReading.improvements`` counts them so the window can confirm each one.
* ``manual`` (X): the next frame is the neutral pose, explicitly; nothing replaces it by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..engine import Keypoints
from ..engine.pose import match_percent, pose_distance

AUTO, FIND_BEST, MANUAL = "auto", "find-best", "manual"


@dataclass(frozen=True)
class MatchReading:
    match: float | None  # the last animated frame's match with the avatar, 0-100 (None: no reading yet)
    best: float | None  # the neutral pose's match (None: not known, e.g. no frame yet)
    mode: str  # auto | find-best | manual
    searching: bool  # whether a better frame would become the neutral pose now
    improvements: int = 0  # neutral poses taken by find-best since F was turned on


class NeutralPicker:
    """Keypoint filter (``observe``) that measures the match and picks the neutral pose.

    ``calibrate(keypoints)`` is the animator's ``calibrate``.
    """

    def __init__(self, calibrate: Callable[[Keypoints], None], window_s: float) -> None:
        self._calibrate = calibrate
        self.window_s = float(window_s)
        self._lock = threading.Lock()
        self._avatar: Keypoints | None = None
        self._mode, self._explicit_next = AUTO, False
        self._t0: float | None = None  # time of the stream's first observed frame
        self._match: float | None = None
        self._best: float | None = None
        self._improvements = 0

    # controls (any thread) -----------------------------------------------------------------------
    def set_avatar(self, keypoints: Keypoints) -> None:
        """A new avatar: matches are against its pose now; a search in progress starts over."""
        with self._lock:
            self._avatar = keypoints
            self._match = None
            if self._mode != MANUAL:
                self._best = None

    def calibrate_next(self) -> None:
        """X: the next frame is the neutral pose; auto and find-best end."""
        with self._lock:
            self._mode, self._explicit_next = MANUAL, True

    def set_find_best(self, enabled: bool) -> None:
        """F: on = search from now on (the next frame first); off = keep the best found."""
        with self._lock:
            if enabled:
                self._mode, self._best, self._improvements = FIND_BEST, None, 0
            elif self._mode == FIND_BEST:
                self._mode = MANUAL

    @property
    def find_best(self) -> bool:
        return self._mode == FIND_BEST

    def reading(self, t: float | None = None) -> MatchReading:
        with self._lock:
            return MatchReading(self._match, self._best, self._mode, self._searching(t), self._improvements)

    # per frame (the inference thread) ------------------------------------------------------------
    def _searching(self, t: float | None) -> bool:
        if self._mode == FIND_BEST:
            return True
        if self._mode != AUTO:
            return False
        return self._t0 is None or t is None or t - self._t0 <= self.window_s

    def observe(self, kp: Keypoints, t: float) -> Keypoints:
        """Measure this frame's match; make it the neutral pose when it is the one to use."""
        with self._lock:
            if self._t0 is None:
                self._t0 = t
            avatar = self._avatar
            match = None if avatar is None else match_percent(pose_distance(kp, avatar))
            self._match = match
            take = self._explicit_next or (self._searching(t) and (
                self._best is None or (match is not None and match > self._best)))
            if not take:
                return kp
            self._explicit_next, self._best = False, match
            self._improvements += self._mode == FIND_BEST
        self._calibrate(kp)
        return kp
