"""The "download the model" panel shown when no checkpoint is found.

``ModelDownloadWidget`` has a "Download (228 MB)" button, a progress bar with bytes, rate and
time left, and Cancel. The download (``model_store.download_checkpoint``: resume, checksum,
strict-load check, atomic move) runs in a ``QThread``; the widget emits ``finished(path)`` when
the verified file is in place and ``failed(message)`` (one line) otherwise. Cancelling leaves
nothing at the destination; the ``.part`` file next to it lets the next download resume.

Construct as ``ModelDownloadWidget(parent)`` (destination: the user models folder, default
mirrors) or with ``dest=`` / ``mirrors=``. Call ``shutdown()`` (done by ``closeEvent``) before
discarding a widget whose download runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from PyQt6.QtCore import QThread, pyqtSignal
from PyQt6.QtWidgets import QApplication, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..errors import AvatarcamError
from ..model_store import (
    DEFAULT_TIMEOUT_S,
    DOWNLOAD_SIZE_LABEL,
    DownloadCancelled,
    Mirror,
    download_checkpoint,
    resolve_destination,
)
from ..paths import CHECKPOINT_NAME


def format_bytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_progress(done: int, total: int | None, rate: float | None) -> str:
    """E.g. "12.3 MB of 228.0 MB · 4.5 MB/s · 0:48 left"."""
    parts = [f"{format_bytes(done)} of {format_bytes(total)}" if total else format_bytes(done)]
    if rate and rate > 0:
        parts.append(f"{rate / 1e6:.1f} MB/s")
        if total and total > done:
            parts.append(f"{format_duration((total - done) / rate)} left")
    return " · ".join(parts)


class _DownloadThread(QThread):
    progressed = pyqtSignal(object, object)  # bytes done, total (int or None); object: no 32-bit limit
    status = pyqtSignal(str)
    succeeded = pyqtSignal(str)
    errored = pyqtSignal(str)
    cancelled = pyqtSignal(str)

    def __init__(self, dest, mirrors, force: bool, timeout: float, interval: float) -> None:
        super().__init__()
        self.dest, self.mirrors, self.force, self.timeout = dest, mirrors, force, timeout
        self.interval = interval
        self.cancel_event = threading.Event()
        self._last_emit = 0.0

    def _progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last_emit >= self.interval or (total is not None and done >= total):
            self._last_emit = now
            self.progressed.emit(done, total)

    def run(self) -> None:
        try:
            result = download_checkpoint(self.dest, self.mirrors, force=self.force, progress=self._progress,
                                         status=self.status.emit, cancel=self.cancel_event, timeout=self.timeout)
        except DownloadCancelled as err:
            self.cancelled.emit(str(err))
        except AvatarcamError as err:
            self.errored.emit(str(err))
        except Exception as err:  # noqa: BLE001 - never let a worker thread die silently
            self.errored.emit(" ".join(f"download failed unexpectedly: {type(err).__name__}: {err}".split()))
        else:
            self.succeeded.emit(str(result.path))


# Running workers, kept alive here so that a widget deleted mid-download (its window closed)
# never destroys a running QThread; such a worker is told to cancel and ends on its own.
_RUNNING: set[_DownloadThread] = set()
_QUIT_HOOKED = False


def _stop_all(timeout_ms: int = 10_000) -> None:
    for thread in list(_RUNNING):
        thread.cancel_event.set()
    for thread in list(_RUNNING):
        thread.wait(timeout_ms)


class ModelDownloadWidget(QWidget):
    """Download panel for the missing-checkpoint screen."""

    finished = pyqtSignal(str)  # path of the verified, installed checkpoint
    failed = pyqtSignal(str)  # one-line reason
    cancelled = pyqtSignal()
    progressChanged = pyqtSignal(object, object)  # noqa: N815 - Qt naming; (bytes done, total or None)

    progress_interval_s = 0.1  # at most this often a progress update crosses threads

    def __init__(self, parent: QWidget | None = None, *, dest: str | os.PathLike | None = None,
                 mirrors: Sequence[Mirror] | None = None, force: bool = False,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(parent)
        self.dest = resolve_destination(dest)
        self.mirrors = list(mirrors) if mirrors else None
        self.force = force
        self.timeout = timeout
        self._thread: _DownloadThread | None = None
        self._t0 = 0.0
        self._done0: int | None = None
        self.last_path: str | None = None

        source = "the mirrors given" if self.mirrors else "Avatarify's mirror"
        self.info_label = QLabel(
            f"Download {CHECKPOINT_NAME} ({DOWNLOAD_SIZE_LABEL}) from {source} into {self.dest}; "
            "it is checked (checksum, and that it loads) before it is used.")
        self.info_label.setWordWrap(True)
        self.download_button = QPushButton(f"Download ({DOWNLOAD_SIZE_LABEL})")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setVisible(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.info_label)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self.download_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        global _QUIT_HOOKED
        app = QApplication.instance()
        if app is not None and not _QUIT_HOOKED:
            app.aboutToQuit.connect(_stop_all)
            _QUIT_HOOKED = True

    # control ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._t0, self._done0 = time.monotonic(), None
        self.download_button.setEnabled(False)
        self.cancel_button.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setVisible(True)
        self.progress_bar.setRange(0, 0)  # busy until the size is known
        self.status_label.setStyleSheet("")
        self.status_label.setText("Connecting…")
        thread = _DownloadThread(self.dest, self.mirrors, self.force, self.timeout, self.progress_interval_s)
        thread.progressed.connect(self._on_progress)
        thread.status.connect(self._on_status)
        thread.succeeded.connect(self._on_succeeded)
        thread.errored.connect(self._on_failed)
        thread.cancelled.connect(self._on_cancelled)
        thread.finished.connect(self._on_thread_done)
        thread.finished.connect(lambda t=thread: _RUNNING.discard(t))
        self.destroyed.connect(thread.cancel_event.set)
        self._thread = thread
        _RUNNING.add(thread)
        thread.start()

    def cancel(self) -> None:
        """Stop the download; nothing is installed (the partial file lets a later run resume)."""
        if self._thread is not None:
            self._thread.cancel_event.set()
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Cancelling…")

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait for the worker thread; True when it has stopped."""
        thread = self._thread
        if thread is None:
            return True
        thread.cancel_event.set()
        return thread.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    # worker signals -----------------------------------------------------------------------
    def _on_progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self._done0 is None:  # rate counts this session only (a resume starts part-way)
            self._done0, self._t0 = done, now
        elapsed = now - self._t0
        rate = (done - self._done0) / elapsed if elapsed > 0.2 and done > self._done0 else None
        if total:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(min(1000, int(1000 * done / total)))
        self.status_label.setText(format_progress(done, total, rate))
        self.progressChanged.emit(done, total)

    def _on_status(self, message: str) -> None:
        if message.startswith("Checking"):
            self.status_label.setText(message + "…")

    def _on_succeeded(self, path: str) -> None:
        self.last_path = path
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        self.cancel_button.setVisible(False)
        self.download_button.setText("Downloaded")
        self.status_label.setText(f"Installed {path}")
        self.finished.emit(path)

    def _on_failed(self, message: str) -> None:
        self._reset_controls("Retry")
        self.status_label.setStyleSheet("color: #c0392b;")
        self.status_label.setText(message)
        self.failed.emit(message)

    def _on_cancelled(self, _message: str) -> None:
        self._reset_controls(f"Download ({DOWNLOAD_SIZE_LABEL})")
        self.status_label.setText("Cancelled; nothing was installed. Downloading again resumes where it stopped.")
        self.cancelled.emit()

    def _on_thread_done(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.wait()  # finished is emitted just before the thread ends
            thread.deleteLater()

    def _reset_controls(self, label: str) -> None:
        self.progress_bar.setVisible(False)
        self.cancel_button.setVisible(False)
        self.download_button.setText(label)
        self.download_button.setEnabled(True)
