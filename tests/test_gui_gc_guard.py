"""While a window is open, garbage holding Qt objects is collected on the GUI thread, never on a
worker thread (a worker-thread collection destroys Qt objects off their thread and crashes Qt)."""

from __future__ import annotations

import gc
import threading
import weakref

from gui_support import TIMEOUT_MS

from avatarcam.gui.gc_guard import INTERVAL_MS
from avatarcam.settings import Settings

pytest_plugins = ("gui_fixtures",)


class Cycle:
    """Garbage only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


def allocate_a_lot(done: threading.Event) -> None:
    """What a worker thread loading a model does: enough allocations to pass every gc threshold."""
    keep = [[i] for i in range(50 * sum(gc.get_threshold()))]
    del keep
    done.set()


def test_cycles_are_collected_on_the_gui_thread_while_a_window_is_open(qtbot, make_window, tmp_path):
    make_window(Settings(checkpoint=str(tmp_path / "none.pth.tar")), persist=False, autostart=False)
    assert not gc.isenabled()
    collected_on: list[str] = []
    garbage = Cycle()
    weakref.finalize(garbage, lambda: collected_on.append(threading.current_thread().name))
    del garbage
    done = threading.Event()
    worker = threading.Thread(target=allocate_a_lot, args=(done,), name="allocating-worker")
    worker.start()
    qtbot.waitUntil(done.is_set, timeout=TIMEOUT_MS)
    worker.join()
    qtbot.waitUntil(lambda: bool(collected_on), timeout=max(TIMEOUT_MS, 10 * INTERVAL_MS))
    assert collected_on == [threading.main_thread().name]


def test_closing_the_last_window_hands_collection_back_to_python(qtbot, make_window, tmp_path):
    first = make_window(Settings(checkpoint=str(tmp_path / "none.pth.tar")), persist=False, autostart=False)
    second = make_window(Settings(checkpoint=str(tmp_path / "none.pth.tar")), persist=False, autostart=False)
    first.close()
    assert not gc.isenabled()  # the second window still needs it
    second.close()
    assert gc.isenabled()
