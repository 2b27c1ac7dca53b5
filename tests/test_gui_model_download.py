"""The GUI's model download panel, against a local HTTP server (offscreen Qt)."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtCore import Qt  # noqa: E402

from avatarcam.gui.model_download import ModelDownloadWidget, format_duration, format_progress  # noqa: E402
from avatarcam.model_store import Mirror, part_path  # noqa: E402
from avatarcam.paths import CHECKPOINT_NAME  # noqa: E402


def make(qtbot, dest, mirrors) -> ModelDownloadWidget:
    widget = ModelDownloadWidget(dest=dest, mirrors=mirrors, timeout=10)
    widget.progress_interval_s = 0.0
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_success_emits_finished_with_progress(qtbot, server, ckpt_bytes, tmp_path):
    url = server.add("/vox", ckpt_bytes, chunk=65_536, delay_s=0.005)
    dest = tmp_path / CHECKPOINT_NAME
    widget = make(qtbot, dest, [Mirror(url, md5=hashlib.md5(ckpt_bytes).hexdigest())])
    assert widget.download_button.text() == "Download (228 MB)"
    updates: list[tuple[int, int]] = []
    widget.progressChanged.connect(lambda d, t: updates.append((d, t)))
    with qtbot.waitSignal(widget.finished, timeout=20_000) as blocker:
        qtbot.mouseClick(widget.download_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [str(dest)]
    assert dest.read_bytes() == ckpt_bytes
    assert len(updates) >= 3 and updates[-1] == (len(ckpt_bytes), len(ckpt_bytes))
    assert widget.progress_bar.value() == widget.progress_bar.maximum()
    assert "Installed" in widget.status_label.text()
    qtbot.waitUntil(lambda: not widget.is_running(), timeout=5_000)


def test_cancel_leaves_nothing_at_destination(qtbot, server, ckpt_bytes, tmp_path):
    url = server.add("/vox", ckpt_bytes, chunk=16_384, delay_s=0.03)  # ~1.7 s in all
    dest = tmp_path / CHECKPOINT_NAME
    widget = make(qtbot, dest, [Mirror(url)])
    texts: list[str] = []
    widget.progressChanged.connect(lambda d, t: texts.append(widget.status_label.text()))
    finished: list[str] = []
    widget.finished.connect(finished.append)
    widget.download_button.click()
    # the rate needs 0.2 s of data: wait for the first line that has it, however fast the machine is
    qtbot.waitUntil(lambda: any("MB/s" in t for t in texts), timeout=10_000)
    assert widget.cancel_button.isVisible() and not widget.download_button.isEnabled()
    with_rate = next(t for t in texts if "MB/s" in t)
    assert "left" in with_rate and f"of {len(ckpt_bytes) / 1e6:.1f} MB" in with_rate
    with qtbot.waitSignal(widget.cancelled, timeout=10_000):
        widget.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.is_running(), timeout=5_000)
    assert not dest.exists() and not finished
    assert part_path(dest).exists()  # resumable
    assert widget.download_button.isEnabled() and not widget.cancel_button.isVisible()
    assert "nothing was installed" in widget.status_label.text()


def test_failure_emits_one_line(qtbot, server, tmp_path):
    dest = tmp_path / CHECKPOINT_NAME
    widget = make(qtbot, dest, [Mirror(server.url("/missing"))])
    with qtbot.waitSignal(widget.failed, timeout=10_000) as blocker:
        widget.start()
    (message,) = blocker.args
    assert "HTTP 404" in message and "\n" not in message
    assert widget.status_label.text() == message and widget.download_button.text() == "Retry"
    qtbot.waitUntil(lambda: not widget.is_running(), timeout=5_000)
    assert not dest.exists()


def test_close_while_downloading_stops_the_thread(qtbot, server, ckpt_bytes, tmp_path):
    url = server.add("/vox", ckpt_bytes, chunk=16_384, delay_s=0.05)
    dest = tmp_path / CHECKPOINT_NAME
    widget = make(qtbot, dest, [Mirror(url)])
    widget.start()
    qtbot.waitUntil(lambda: part_path(dest).exists(), timeout=10_000)
    widget.close()
    assert widget.shutdown(timeout_ms=0)  # True only when no download thread is left running
    assert not dest.exists()


def test_formatting():
    assert format_duration(48) == "0:48" and format_duration(3725) == "1:02:05"
    assert format_progress(12_300_000, 228_000_000, 4_500_000) == "12.3 MB of 228.0 MB · 4.5 MB/s · 0:48 left"
    assert format_progress(1_000_000, None, None) == "1.0 MB"


def test_default_construction_with_parent(qtbot):
    from PyQt6.QtWidgets import QWidget

    from avatarcam.paths import user_models_dir

    parent = QWidget()
    qtbot.addWidget(parent)
    widget = ModelDownloadWidget(parent)  # how the GUI's missing-checkpoint panel builds it
    assert widget.parent() is parent and widget.dest == user_models_dir() / CHECKPOINT_NAME
    assert not widget.is_running() and widget.download_button.isEnabled()


def test_deleting_the_widget_mid_download_cancels_it(qtbot, server, ckpt_bytes, tmp_path):
    from PyQt6.QtWidgets import QWidget

    from avatarcam.gui import model_download

    url = server.add("/vox", ckpt_bytes, chunk=16_384, delay_s=0.05)
    dest = tmp_path / CHECKPOINT_NAME
    window = QWidget()
    widget = ModelDownloadWidget(window, dest=dest, mirrors=[Mirror(url)])
    widget.start()
    qtbot.waitUntil(lambda: part_path(dest).exists(), timeout=10_000)
    window.deleteLater()  # e.g. the main window goes away without closing the panel first
    del window, widget
    qtbot.waitUntil(lambda: not model_download._RUNNING, timeout=10_000)
    assert not dest.exists()
