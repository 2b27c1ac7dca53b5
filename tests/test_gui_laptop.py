"""The window on a 1366x768 laptop screen: real Qt widgets (offscreen) measured at that size.

The usable height is the screen less a desktop panel and a window title bar; every text the user
needs is shown whole (wrapped, or cut with its whole text in a tooltip) and never under another.
"""

from __future__ import annotations

from gui_support import TIMEOUT_MS
from PyQt6.QtCore import QPoint, QRect
from PyQt6.QtWidgets import QAbstractButton, QApplication, QDialogButtonBox, QLabel, QTableWidget

from avatarcam.engine.neutral import AUTO, MatchReading
from avatarcam.gui.hotkeys import KeyMapDialog
from avatarcam.gui.layout import PAGE_CHECKPOINT
from avatarcam.gui.match_meter import MatchMeter
from avatarcam.gui.settings_dialog import SettingsDialog
from avatarcam.settings import Settings

pytest_plugins = ("gui_fixtures",)

SCREEN_W, SCREEN_H = 1366, 768
USABLE_H = SCREEN_H - 40 - 32  # a desktop panel and the window's title bar
VCAM_FIX = "Virtual camera unavailable: install v4l2loopback (fix: sudo modprobe v4l2loopback)"


def _rect_in(widget, ancestor) -> QRect:
    return QRect(widget.mapTo(ancestor, QPoint(0, 0)), widget.size())


def _cut_texts(dialog) -> list[str]:
    """Texts of ``dialog`` not shown whole: labels too small for their text, table cells too narrow."""
    cut = []
    for label in dialog.findChildren(QLabel):
        if not label.isVisible() or not label.text():
            continue
        if label.wordWrap():
            if label.heightForWidth(label.width()) > label.height():
                cut.append(label.text())
        elif label.sizeHint().width() > label.width():
            cut.append(label.text())
    for table in dialog.findChildren(QTableWidget):
        fm = table.fontMetrics()
        for row in range(table.rowCount()):
            for col in range(table.columnCount()):
                text = table.item(row, col).text()
                if fm.horizontalAdvance(text) + 8 > table.columnWidth(col) or table.rowHeight(row) < fm.height():
                    cut.append(text)
    return cut


def _buttons_visible(dialog, texts: set[str]) -> bool:
    shown = {b.text().replace("&", "") for b in dialog.findChildren(QAbstractButton)
             if b.isVisible() and dialog.rect().contains(_rect_in(b, dialog))}
    return texts <= shown


def test_the_settings_dialog_fits_a_laptop_screen_with_ok_and_cancel_visible(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    dlg = SettingsDialog(w.settings, w)
    qtbot.addWidget(dlg)
    dlg.show()
    hint = dlg.sizeHint()
    assert hint.height() <= USABLE_H and hint.width() <= SCREEN_W
    dlg.resize(hint)
    QApplication.processEvents()
    assert dlg.findChild(QDialogButtonBox) is not None and _buttons_visible(dlg, {"OK", "Cancel"})
    dlg.reject()


def test_the_key_map_is_readable_and_has_a_close_button(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    dlg = KeyMapDialog(w)
    qtbot.addWidget(dlg)
    dlg.show()
    QApplication.processEvents()
    assert dlg.height() <= USABLE_H and dlg.width() <= SCREEN_W
    assert _cut_texts(dlg) == []
    assert _buttons_visible(dlg, {"Close"})
    close = next(b for b in dlg.findChildren(QAbstractButton) if b.text().replace("&", "") == "Close")
    close.click()
    assert not dlg.isVisible()


def test_a_long_status_message_never_widens_the_window_and_stays_whole_in_its_tooltip(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    w.resize(SCREEN_W, USABLE_H)
    long = "Saved /home/someone/Videos/" + "a-long-folder-name/" * 12 + "avatarcam-20261206-101010.mp4"
    w.tell(long)
    QApplication.processEvents()
    assert w.minimumSizeHint().width() <= SCREEN_W and w.width() <= SCREEN_W
    state = w.ui.status_state
    assert state.text() == long and state.toolTip() == long  # cut on screen, whole under the mouse
    for label in w.ui.status_labels.values():  # the permanent fields stay on the screen
        assert w.rect().contains(_rect_in(label, w))


def test_a_new_banner_never_hides_the_virtual_camera_warning(qtbot, make_window):
    w = make_window(Settings(vcam=False, consent_seen=True), autostart=False)
    w.resize(SCREEN_W, USABLE_H)
    bar = w.ui.notice_bar
    bar.show_message(VCAM_FIX)
    bar.show_message("Added me.png to /home/someone/.local/share/avatarcam/avatars", "info")
    QApplication.processEvents()
    shown = [label.text() for label in bar.findChildren(QLabel) if label.isVisible()]
    assert VCAM_FIX in shown and any(text.startswith("Added me.png") for text in shown)
    assert _cut_texts(bar) == []
    bar.show_message(VCAM_FIX)  # said again: shown once
    assert [label.text() for label in bar.findChildren(QLabel) if label.isVisible()].count(VCAM_FIX) == 1


def test_the_pose_match_percentage_is_beside_its_bar_not_over_it(qtbot):
    meter = MatchMeter()
    qtbot.addWidget(meter)
    meter.resize(520, 90)
    meter.show()
    meter.show_reading(MatchReading(57.0, 60.0, AUTO, True), 3.0)
    QApplication.processEvents()
    labels = [label for label in meter.findChildren(QLabel) if label.isVisible() and label.text() == "57 %"]
    assert labels, "no label shows the percentage"
    assert not _rect_in(labels[0], meter).intersects(_rect_in(meter.bar, meter))
    assert not meter.bar.isTextVisible() and _cut_texts(meter) == []


def test_a_truncated_checkpoint_is_not_called_missing_and_says_one_avatarcam_line(qtbot, make_window, clip,
                                                                                   tiny_checkpoint, tmp_path):
    truncated = tmp_path / "vox-adv-cpk.pth.tar"
    data = tiny_checkpoint.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    w = make_window(Settings(checkpoint=str(truncated), camera=clip, vcam=False))
    qtbot.waitUntil(lambda: w.ui.stack.currentIndex() == PAGE_CHECKPOINT, timeout=TIMEOUT_MS)
    panel = w.ui.checkpoint_panel
    title = panel.findChild(QLabel, "panelTitle").text()
    assert "missing" not in title and "could not be loaded" in title
    detail = panel.detail.text()
    assert str(truncated) in detail and "truncated or corrupt" in detail and "download-model" in detail
    assert "Pytorch" not in detail and "miniz" not in detail and "\n" not in detail
