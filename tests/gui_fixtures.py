"""Fixtures of the GUI tests, loaded with ``pytest_plugins = ("gui_fixtures",)``.

Every window is real (Qt offscreen) and, when it runs, runs the real pipeline on a video clip
with the reduced-size checkpoint (``tiny_checkpoint``).
"""

from __future__ import annotations

import math

import pytest
from gui_support import TIMEOUT_MS, wait_frames
from PyQt6.QtCore import QCoreApplication, QEvent

from avatarcam.gui.app import create_window, ensure_app
from avatarcam.settings import Settings


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    """A 640x480 mp4 of a moving face: the camera of the GUI tests."""
    from synthetic import face_on_background, write_clip

    pos = [(200 + int(60 * math.sin(i / 5)), 100 + int(30 * math.sin(i / 7))) for i in range(45)]
    return write_clip(tmp_path_factory.mktemp("clip") / "face.mp4", face_on_background(pos, 200))


@pytest.fixture
def make_window(qtbot):
    """make_window(settings, **kw) -> a shown MainWindow; every window is closed after the test."""
    ensure_app()
    windows = []

    def make(settings: Settings, **kw):
        window = create_window(settings, **kw)
        windows.append(window)
        window.show()
        return window

    yield make
    for window in windows:
        window.close()
        window.deleteLater()
    # Destroy the windows here, on the GUI thread: left to Python's collector, a window could be
    # destroyed on whichever thread allocates next (a later test's worker thread) and crash Qt.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)


@pytest.fixture
def live_window(qtbot, make_window, tiny_checkpoint, clip):
    """A window whose pipeline runs on ``clip`` and has shown two frames (no virtual camera)."""
    window = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=clip, vcam=False))
    qtbot.waitUntil(lambda: window.pipeline is not None, timeout=TIMEOUT_MS)
    wait_frames(qtbot, window, 2)
    return window
