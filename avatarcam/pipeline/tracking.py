"""Face tracking with continuity: which detected box is *the* face the crop follows.

A detector answers per frame and sometimes finds a face-like region elsewhere (a shoulder, a poster)
that is bigger than the real face. Jumping to it makes the avatar lurch, because relative motion reads
the jump as head motion. So a new box only moves the track when it agrees with the tracked face
(centre and size close to it); a box that does not agree must persist over several detections while
the tracked face is not seen before the track switches to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Square = np.ndarray  # (cx, cy, side) in image pixels


@dataclass(frozen=True)
class TrackGate:
    max_shift: float = 0.5  # a box agrees when its centre is within this many tracked sides ...
    max_scale: float = 1.5  # ... and its side within this factor of the tracked side
    persist: int = 8  # detections in a row a disagreeing face needs (tracked face unseen) to take over


def agrees(square: Square, tracked: Square, gate: TrackGate) -> bool:
    """Whether ``square`` is plausibly the tracked face one detection later."""
    shift = float(np.hypot(square[0] - tracked[0], square[1] - tracked[1]))
    ratio = float(square[2] / max(tracked[2], 1e-6))
    return shift <= gate.max_shift * tracked[2] and 1 / gate.max_scale <= ratio <= gate.max_scale


def _nearest(squares: list[Square], to: Square) -> Square:
    return min(squares, key=lambda s: float(np.hypot(s[0] - to[0], s[1] - to[1])))


class FaceTrack:
    """The tracked face square. ``update(squares, hint)`` takes one detection's squares and returns
    the tracked square when it moved (None: nothing usable; hold the previous one). ``hint`` is where
    the model's keypoints last put the face (cx, cy): among boxes that agree with the track, the one
    nearest to it wins (two faces close together)."""

    def __init__(self, gate: TrackGate | None = None) -> None:
        self.gate = gate or TrackGate()
        self.reset()

    def reset(self) -> None:
        self.square: Square | None = None
        self._candidate: Square | None = None
        self._seen = 0  # detections in a row the candidate was found while the track was not

    def update(self, squares: list[Square], hint: Square | None = None) -> Square | None:
        if not squares:
            return None
        if self.square is None:  # nothing tracked yet: the largest face
            self.square = max(squares, key=lambda s: float(s[2]))
            return self.square
        near = [s for s in squares if agrees(s, self.square, self.gate)]
        if near:
            self.square, self._candidate, self._seen = _nearest(near, self.square if hint is None else hint), None, 0
            return self.square
        return self._challenge(squares)

    def _challenge(self, squares: list[Square]) -> Square | None:
        """The tracked face is not among the boxes: count how long another face stays in view."""
        same = [s for s in squares if self._candidate is not None and agrees(s, self._candidate, self.gate)]
        if same:
            self._candidate, self._seen = _nearest(same, self._candidate), self._seen + 1
        else:
            self._candidate, self._seen = max(squares, key=lambda s: float(s[2])), 1
        if self._seen < self.gate.persist:
            return None
        self.square, self._candidate, self._seen = self._candidate, None, 0
        return self.square
