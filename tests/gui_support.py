"""Helpers of the GUI tests; their fixtures are in gui_fixtures.py (``pytest_plugins``).

Waits are on events, never fixed sleeps.
"""

from __future__ import annotations

import threading

import numpy as np
from PyQt6.QtCore import Qt

TIMEOUT_MS = 30_000


def wait_frames(qtbot, window, n: int) -> None:
    """Wait until the output preview has shown ``n`` more frames."""
    start = window.ui.output_view.frames_shown
    qtbot.waitUntil(lambda: window.ui.output_view.frames_shown >= start + n, timeout=TIMEOUT_MS)


def press(qtbot, window, key, mods=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(window, key, mods)


def pixels(widget) -> np.ndarray:
    """The widget as rendered: HxWx3 uint8 RGB."""
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def avatarcam_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("avatarcam") and t.is_alive()]
