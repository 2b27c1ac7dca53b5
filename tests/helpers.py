"""Test helpers shared by every test module: waiting on a condition, a slow animator, a fake
virtual camera. Import them as ``from helpers import ...`` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

DEFAULT_TIMEOUT = 30.0  # generous: CI has 2 cores shared with torch threads


def wait_until(predicate: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT, message: str = "") -> None:
    """Return as soon as ``predicate()`` is true; fail the test after ``timeout`` seconds.

    Polls with a condition wait rather than fixed sleeps, so a fast machine is never slowed down."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message or predicate}")
        event.wait(0.005)


class RecordingVcam:
    """A pyvirtualcam backend that keeps the frames it is sent. Registered by the ``fake_vcam``
    fixture (conftest.py), which always unregisters it again."""

    frames: list[np.ndarray] = []
    fail_after: int | None = None
    sent = threading.Event()

    def __init__(self, *, width: int, height: int, fps: float, fourcc, device, **kw) -> None:
        self.width, self.height, self._fourcc = width, height, fourcc

    def send(self, frame: np.ndarray) -> None:
        cls = type(self)
        if cls.fail_after is not None and len(cls.frames) >= cls.fail_after:
            raise OSError("device unplugged")
        cls.frames.append(np.array(frame, copy=True).reshape(self.height, self.width, 3))
        cls.sent.set()

    def close(self) -> None:
        pass

    def device(self) -> str:
        return "avatarcam-test"

    def native_fourcc(self):
        return self._fourcc


class MissingVcam:
    """A pyvirtualcam backend whose driver is not installed."""

    def __init__(self, **kw) -> None:
        raise RuntimeError("virtual camera device not found")


class SlowAnimator:
    """A real animator behind an artificial delay: a model slower than the camera. Every other
    attribute is the real animator's."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def animate_keypoints(self, kp):
        threading.Event().wait(self.delay)
        return self.inner.animate_keypoints(kp)

    def animate(self, frame, **kwargs):
        threading.Event().wait(self.delay)
        return self.inner.animate(frame, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)
