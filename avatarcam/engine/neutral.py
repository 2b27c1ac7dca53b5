"""The neutral pose: which driving pose counts as "at rest", and the calibration made from it.

Relative motion only looks right when the neutral driving pose matches the avatar's pose. This module
is the one owner of that rule, used by every animator: the local ``Animator``, ``RemoteAnimator`` (in
keypoints mode here, in image mode on the worker, whose readings the client shows), the remote
worker's sessions and ``avatarcam animate``.

How the neutral pose is chosen (``NeutralPose.observe`` sees every animated frame's keypoints, already
computed, so measuring the match costs no extra model step):

* ``auto`` (from the start of the stream until X): during the first ``window_s`` seconds the
  best-matching frame so far is the neutral pose; after that window it stays. ``window_s=0`` makes
  the first frame the neutral pose (the authors' demo).
* ``find-best`` (F, a toggle): while on, every better-matching frame becomes the neutral pose;
  ``MatchReading.improvements`` counts them so a window can confirm each one.
* ``manual`` (X, or an explicit pose): the next frame (or the given keypoints) is the neutral pose;
  nothing replaces it by itself.

The calibration made from the neutral pose goes through ``RelativeMotion.calibration``, which repairs
a degenerate neutral pose (a singular jacobian, coincident keypoints) and says so in one line each:
``on_notice`` receives those lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .motion import Keypoints, RelativeMotion
from .options import NEUTRAL_MODES
from .pose import match_percent, pose_distance

AUTO, FIND_BEST, MANUAL = NEUTRAL_MODES


@dataclass(frozen=True)
class Calibration:
    neutral: Keypoints  # the driving face's neutral pose (repaired where it was degenerate)
    scale: float  # movement-scale adaptation for the avatar it was made for
    notices: tuple[str, ...] = ()  # what was repaired (RelativeMotion.calibration), one line each


@dataclass(frozen=True)
class MatchReading:
    match: float | None  # the last animated frame's match with the avatar, 0-100 (None: no reading yet)
    best: float | None  # the neutral pose's match (None: not known, e.g. no frame yet)
    mode: str = AUTO  # auto | find-best | manual
    searching: bool = True  # whether a better frame would become the neutral pose now
    improvements: int = 0  # neutral poses taken by find-best since F was turned on
    calibrated: bool = False  # a neutral pose is set for the current avatar


def make_calibration(motion: RelativeMotion, avatar: Keypoints, neutral: Keypoints) -> Calibration:
    """The calibration of ``avatar`` for this neutral driving pose, repaired where it is degenerate."""
    neutral, scale, notices = motion.calibration(avatar, neutral)
    return Calibration(neutral, scale, tuple(notices))


def best_frame(avatar: Keypoints, frames: Sequence[Keypoints]) -> int:
    """Index of the driving pose that best matches the avatar's (``animate --find-best-frame``):
    the same distance the live match meter shows."""
    return int(np.argmin([pose_distance(kp, avatar) for kp in frames]))


class NeutralPose:
    """Picks the neutral pose and keeps the calibration for the current avatar. Thread-safe: the
    controls come from any thread, ``observe`` from the one that animates."""

    def __init__(self, motion: RelativeMotion | None = None, window_s: float = 0.0, *,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.on_notice = on_notice
        self._motion = motion or RelativeMotion()
        self._window_s = float(window_s)
        self._lock = threading.RLock()
        self._avatar: Keypoints | None = None
        self._neutral: Keypoints | None = None
        self._calibration: Calibration | None = None
        self._mode, self._explicit_next = AUTO, False
        self._t0: float | None = None  # time of the stream's first observed frame
        self._match: float | None = None
        self._best: float | None = None
        self._improvements = 0

    # settings ------------------------------------------------------------------------------------
    @property
    def motion(self) -> RelativeMotion:
        return self._motion

    @motion.setter
    def motion(self, motion: RelativeMotion) -> None:
        with self._lock:
            self._motion = motion
            self._recalibrate()

    @property
    def window_s(self) -> float:
        return self._window_s

    @window_s.setter
    def window_s(self, seconds: float) -> None:
        with self._lock:
            self._window_s = float(seconds)

    # controls (any thread) -----------------------------------------------------------------------
    def set_avatar(self, keypoints: Keypoints | None) -> None:
        """A new avatar: matches are against its pose now, its calibration is made from the neutral
        pose in hand, and a search in progress starts over."""
        with self._lock:
            self._avatar, self._match = keypoints, None
            if self._mode != MANUAL:
                self._best = None
            self._recalibrate()

    def calibrate_next(self) -> None:
        """X: the next frame is the neutral pose; auto and find-best end."""
        with self._lock:
            self._mode, self._explicit_next = MANUAL, True

    def set_neutral(self, keypoints: Keypoints) -> None:
        """This pose is the neutral pose, explicitly (a chosen frame, a calibration picture)."""
        with self._lock:
            self._mode, self._explicit_next = MANUAL, False
            self._take(keypoints, self._match_of(keypoints))

    def set_find_best(self, enabled: bool) -> None:
        """F: on = search from now on (the next frame first); off = keep the best found."""
        with self._lock:
            if enabled:
                self._mode, self._best, self._improvements = FIND_BEST, None, 0
            elif self._mode == FIND_BEST:
                self._mode = MANUAL

    def reset(self) -> None:
        """Back to the start of a stream: no neutral pose, auto mode, a new auto window."""
        with self._lock:
            self._neutral = self._calibration = None
            self._mode, self._explicit_next, self._t0 = AUTO, False, None
            self._match = self._best = None
            self._improvements = 0

    # state ---------------------------------------------------------------------------------------
    @property
    def find_best(self) -> bool:
        return self._mode == FIND_BEST

    @property
    def calibration(self) -> Calibration | None:
        """The calibration for the current avatar (None: no neutral pose or no avatar yet)."""
        return self._calibration

    def reading(self, t: float | None = None) -> MatchReading:
        with self._lock:
            return MatchReading(self._match, self._best, self._mode, self._searching(t), self._improvements,
                                self._calibration is not None)

    # per frame (the animating thread) ------------------------------------------------------------
    def observe(self, kp: Keypoints, t: float) -> Calibration | None:
        """Measure this frame's match with the avatar; make it the neutral pose when it is the one
        to use. Returns the calibration to animate this frame with."""
        with self._lock:
            if self._t0 is None:
                self._t0 = t
            self._match = match = self._match_of(kp)
            take = self._explicit_next or (self._searching(t) and (
                self._best is None or (match is not None and match > self._best)))
            if take:
                self._improvements += self._mode == FIND_BEST and not self._explicit_next
                self._explicit_next = False
                self._take(kp, match)
            return self._calibration

    def _searching(self, t: float | None) -> bool:
        if self._mode == FIND_BEST:
            return True
        if self._mode != AUTO:
            return False
        return self._t0 is None or t is None or t - self._t0 <= self._window_s

    def _match_of(self, kp: Keypoints) -> float | None:
        return None if self._avatar is None else match_percent(pose_distance(kp, self._avatar))

    def _take(self, kp: Keypoints, match: float | None) -> None:
        self._neutral, self._best = kp, match
        self._recalibrate()

    def _recalibrate(self) -> None:
        if self._neutral is None or self._avatar is None:
            self._calibration = None
            return
        self._calibration = make_calibration(self._motion, self._avatar, self._neutral)
        callback = self.on_notice
        for line in self._calibration.notices if callback is not None else ():
            callback(line)
