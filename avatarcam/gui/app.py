"""``avatarcam`` with no command: the control window."""

from __future__ import annotations

import signal
import socket
import sys

from PyQt6.QtCore import QSocketNotifier
from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication, QWidget

from ..errors import AvatarcamError
from ..interrupts import STOP_SIGNALS, exit_code
from ..qtcheck import qt_platform_problem
from ..settings import Settings, load_settings
from .options import overrides

STYLE = """
QMainWindow, QDialog { background: #1f2125; }
QWidget { color: #e3e5e8; font-size: 10pt; }
QToolBar { background: #26282d; border: none; border-bottom: 1px solid #33363c; padding: 4px 6px; spacing: 4px; }
QToolBar QToolButton { background: #2f3238; border: 1px solid #3a3e45; border-radius: 6px; padding: 5px 12px; }
QToolBar QToolButton:hover { background: #383c43; }
QToolBar QToolButton:checked { background: #2d5d8f; border-color: #3d78b5; }
QToolBar QToolButton#primaryTool { background: #3d78b5; border-color: #4a8bd0; font-weight: bold; }
QToolBar QToolButton#primaryTool:hover { background: #4a8bd0; }
QToolBar::separator { background: #3a3e45; width: 1px; margin: 4px 6px; }
QStatusBar { background: #26282d; border-top: 1px solid #33363c; }
QStatusBar QLabel { padding: 0 6px; color: #b6bac1; }
QStatusBar QLabel#statusField { font-family: monospace; }
QListWidget { background: #18191c; border: 1px solid #33363c; border-radius: 6px; padding: 4px; outline: none; }
QListWidget::item { padding: 4px; border-radius: 6px; }
QListWidget::item:selected { background: #2d5d8f; color: white; }
QListWidget::item:hover:!selected { background: #2a2d33; }
QSplitter::handle { background: #1f2125; width: 6px; }
QLabel#hint { color: #9aa0a8; padding: 4px 4px 0 4px; }
QFrame#panelCard { background: #272a2f; border: 1px solid #3a3e45; border-radius: 10px; }
QLabel#panelTitle { font-size: 15pt; font-weight: bold; color: #ffffff; }
QLabel#panelDetail { color: #f0b060; }
QLabel#panelStatus { color: #9aa0a8; }
QFrame#noticeBar { background: #4a3b1c; border: 1px solid #7a6128; border-radius: 6px; }
QFrame#noticeBar[level="error"] { background: #4d2326; border-color: #8a3a40; }
QFrame#noticeBar[level="info"] { background: #1e3a55; border-color: #2f5d88; }
QPushButton { background: #2f3238; border: 1px solid #454a52; border-radius: 6px; padding: 6px 14px; }
QPushButton:hover { background: #383c43; }
QPushButton:disabled { color: #70757d; }
QPushButton#primary { background: #3d78b5; border-color: #4a8bd0; font-weight: bold; }
QPushButton#primary:hover { background: #4a8bd0; }
QGroupBox { border: 1px solid #3a3e45; border-radius: 8px; margin-top: 14px; padding-top: 8px; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #b6bac1; }
QLineEdit, QComboBox, QDoubleSpinBox { background: #18191c; border: 1px solid #454a52; border-radius: 5px;
    padding: 4px 6px; }
QToolTip { background: #2f3238; color: #e3e5e8; border: 1px solid #454a52; }
QTableWidget { background: #18191c; gridline-color: #33363c; }
QHeaderView::section { background: #26282d; border: none; padding: 4px; }
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1f2125", QPalette.ColorRole.WindowText: "#e3e5e8",
        QPalette.ColorRole.Base: "#18191c", QPalette.ColorRole.AlternateBase: "#24262a",
        QPalette.ColorRole.Text: "#e3e5e8", QPalette.ColorRole.Button: "#2f3238",
        QPalette.ColorRole.ButtonText: "#e3e5e8", QPalette.ColorRole.Highlight: "#3d78b5",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2f3238",
        QPalette.ColorRole.ToolTipText: "#e3e5e8", QPalette.ColorRole.Link: "#6aa7e8",
        QPalette.ColorRole.PlaceholderText: "#80858d",
    }
    for role, color in roles.items():
        pal.setColor(role, QColor(color))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)


def ensure_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("avatarcam")
    app.setOrganizationName("avatarcam")
    apply_theme(app)
    return app


def create_window(settings: Settings | None = None, *, notice: str | None = None, persist: bool = True,
                  autostart: bool = True, overrides: dict | None = None):
    from .main_window import MainWindow

    return MainWindow(settings, notice=notice, persist=persist, autostart=autostart, overrides=overrides)


def main(args=None) -> int:
    """Open the window. Options given on the command line (``gui/options.py``) override the saved
    settings for this session. Where Qt cannot start, one line says why (Qt would abort the process)."""
    problem = qt_platform_problem()
    if problem:
        raise AvatarcamError(problem)
    app = ensure_app()
    settings, notice = load_settings()
    window = create_window(settings, notice=notice, overrides=overrides(args))
    window.show()
    return run_window(app, window)


def run_window(app: QApplication, window: QWidget) -> int:
    """Qt's event loop until the window closes. Ctrl-C, SIGTERM and SIGHUP close the window as
    its close button does (the recording is finished and saved); the exit code is then the
    signal's (128+n).

    Python runs a signal handler only between bytecodes, never while Qt's loop waits in C++, so
    the signal wakes the loop through a socket (``signal.set_wakeup_fd``) and a QSocketNotifier."""
    wake, watch = socket.socketpair()
    for end in (wake, watch):
        end.setblocking(False)
    received: list[int] = []
    stop_signals = (signal.SIGINT, *STOP_SIGNALS)
    # a Python handler must be set for the wakeup byte to be written (and to not be killed at once)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in stop_signals}
    previous_fd = signal.set_wakeup_fd(wake.fileno())
    notifier = QSocketNotifier(watch.fileno(), QSocketNotifier.Type.Read)

    def close_window() -> None:
        try:
            received.extend(watch.recv(64))  # the wakeup fd writes each signal's number as a byte
        except BlockingIOError:
            pass
        if received:
            window.close()  # closeEvent: the pipeline stops and the recording is saved
            app.quit()  # also ends a dialog's nested loop

    notifier.activated.connect(close_window)
    try:
        code = int(app.exec())
    finally:
        notifier.setEnabled(False)
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        wake.close()
        watch.close()
    return exit_code(received[0]) if received else code
