"""Stop signals: SIGTERM and SIGHUP end a command the way Ctrl-C does.

Closing the terminal (SIGHUP), ``timeout``, ``kill`` and systemd (SIGTERM) would otherwise kill
the process on the spot and leave a recording without its index (unplayable). Inside
``stop_signals_interrupt()`` they raise ``Interrupted``, a ``KeyboardInterrupt``, in the main
thread, so every ``except KeyboardInterrupt`` that finishes a recording on Ctrl-C finishes it for
them too. The window, whose main thread sits in Qt's event loop, closes itself instead
(``gui/app.py``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

# The signals that mean "stop now, cleanly"; SIGINT keeps Python's own KeyboardInterrupt.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                                                 if hasattr(signal, name))


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by signal ``signum``."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where Ctrl-C would raise ``KeyboardInterrupt``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


def _raise(signum: int, _frame) -> None:
    raise Interrupted(signum)


@contextmanager
def _handling(signals: tuple[int, ...], handler) -> Iterator[None]:
    """``handler`` for ``signals`` inside; nothing changes off the main thread (e.g. a command run
    from a test's thread), where Python cannot set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_signals_interrupt() -> AbstractContextManager[None]:
    """Inside: SIGTERM and SIGHUP raise ``Interrupted`` in the main thread."""
    return _handling(STOP_SIGNALS, _raise)


def stop_signals_ignored() -> AbstractContextManager[None]:
    """Inside: Ctrl-C and the stop signals are ignored, so a second one cannot break a clean stop
    (finishing a recording) half-way."""
    return _handling((signal.SIGINT, *STOP_SIGNALS), signal.SIG_IGN)
