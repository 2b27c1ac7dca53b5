"""The animator contract: what the pipeline, the window and the commands may call on an animator.

Two classes satisfy it: the local :class:`~avatarcam.engine.animator.Animator` (the model runs in this
process) and :class:`~avatarcam.remote.client.RemoteAnimator` (the model runs on an ``avatarcam serve``
worker). Code outside ``remote/`` uses only these names, never the concrete class, so a new kind of
animator is a new class that satisfies this protocol (``tests/test_animator_protocol.py`` checks
both). The engine's other seam, the ``Backend`` protocol (what runs the three networks), is in
``backends.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .dense_motion import MotionField
from .motion import Keypoints, RelativeMotion
from .neutral import MatchReading

KeypointFilter = Callable[[Keypoints], Keypoints]


@runtime_checkable
class AnimatorProtocol(Protocol):
    """A portrait animated by driving frames. Thread model: ``animate`` runs on one thread (the
    pipeline's inference thread); the controls (avatar, neutral pose, motion) may come from any other."""

    on_notice: Callable[[str], None] | None  # one-line notices (a repaired neutral pose, a lost link)

    @property
    def size(self) -> int:
        """The model's square input and output side in pixels."""

    @property
    def options(self) -> Any:
        """What runs the model, resolved: ``.device``, ``.precision``, ``.backend``."""

    def describe(self) -> str:
        """One line for status bars and logs, naming what really runs (e.g. "torch-cpu bf16")."""

    def link_stats(self) -> Any | None:
        """The remote link's figures (round trip, state) for the stats overlay; None when local."""

    # the avatar -----------------------------------------------------------------------------------
    @property
    def has_source(self) -> bool: ...

    @property
    def ready(self) -> bool:
        """Pictures can be made now (a remote worker has confirmed the avatar). Until then the pipeline
        publishes nothing: no still avatar, no recording of a start that is then refused."""

    def prepare_source(self, image: np.ndarray) -> Any:
        """Everything that depends only on the avatar (cacheable; thread-safe, no side effect)."""

    def use_source(self, prepared: Any) -> None: ...

    def set_source(self, image: np.ndarray) -> Any: ...

    # motion and the neutral pose (engine/neutral.py) --------------------------------------------
    motion: RelativeMotion

    @property
    def is_calibrated(self) -> bool: ...

    def calibrate_next(self) -> None:
        """X: the next animated frame becomes the neutral pose."""

    def set_find_best(self, enabled: bool) -> None:
        """F: while on, every better-matching frame becomes the neutral pose."""

    def set_auto_window(self, seconds: float) -> None:
        """Until X, the best match in the stream's first ``seconds`` is the neutral pose."""

    def match_reading(self, t: float | None = None) -> MatchReading: ...

    def reset_calibration(self) -> None: ...

    # the per-frame step ---------------------------------------------------------------------------
    def animate(self, frame: np.ndarray, *, keypoint_filter: KeypointFilter | None = None,
                t: float | None = None) -> np.ndarray | None:
        """A driving face crop (HxWx3 RGB) -> the animated avatar (SxSx3 float32 RGB in [0,1]), or
        None when no new picture exists since the last call (a remote worker has not answered yet):
        the caller then publishes and counts nothing."""

    def set_motion_output(self, enabled: bool) -> str | None:
        """Ask ``animate`` to keep each frame's dense motion field (detail transfer); None when it
        can, else the one-line reason it cannot (then :meth:`last_motion` stays None)."""

    def last_motion(self) -> MotionField | None:
        """The dense motion field of the picture the last ``animate`` returned, or None."""

    def close(self) -> None: ...
