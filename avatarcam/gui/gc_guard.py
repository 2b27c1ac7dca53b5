"""Python's cyclic garbage collector runs on the GUI thread while a window is open.

Why: a collection runs in whichever thread happens to allocate. The window's worker threads
allocate a lot (loading a model builds thousands of objects), so a collection often starts there;
when the garbage it finds holds a Qt object (a closed dialog, a lambda bound to a widget), Qt
destroys that object off the GUI thread and the process dies with a segmentation fault inside
the event loop. So, while a window is open, automatic collection is off and a timer on the GUI
thread collects instead, by the same generation thresholds the collector itself uses.
"""

from __future__ import annotations

import gc

from PyQt6.QtCore import QObject, QTimer

INTERVAL_MS = 500  # often enough that garbage never piles up, rare enough to cost nothing


class GuiThreadCollector(QObject):
    """While at least one holder has it (``acquire``/``release``), only the GUI thread collects."""

    _holders = 0

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.collect)

    def acquire(self) -> None:
        if GuiThreadCollector._holders == 0:
            gc.disable()
        GuiThreadCollector._holders += 1
        self._timer.start()

    def release(self) -> None:
        """Stop collecting here; the last holder hands collection back to Python."""
        self._timer.stop()
        GuiThreadCollector._holders = max(0, GuiThreadCollector._holders - 1)
        gc.collect()  # on the GUI thread, before any worker thread could
        if GuiThreadCollector._holders == 0:
            gc.enable()

    @staticmethod
    def collect() -> None:
        """The youngest generation every tick (cheap: it holds only what was allocated since), an older
        one when its count passed its threshold, as automatic collection would. Every tick because the
        count is allocations minus frees: a worker that built and freed a model leaves it near zero
        while the garbage cycles it dropped are still there."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        due = [gen for gen in range(1, len(counts)) if thresholds[gen] and counts[gen] > thresholds[gen]]
        gc.collect(due[-1] if due else 0)
