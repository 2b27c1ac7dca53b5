"""The Qt side of the key map: the window-wide key filter and the key-map dialog."""

from __future__ import annotations

from PyQt6.QtCore import QEvent, QObject, QSize, Qt
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from . import keymap

KEYMAP_SIZE = QSize(720, 600)  # fits a 1366x768 laptop screen with its panel and title bar
TEXT_INPUTS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)  # keys go to these, not to the key map


def run_hotkey(target: QWidget, event: QKeyEvent) -> bool:
    """Run the key map's action for this key press on ``target``; False when no key is bound."""
    hotkey = keymap.lookup(event.key(), event.modifiers())
    if hotkey is None:
        return False
    if not (event.isAutoRepeat() and not hotkey.repeat):
        hotkey.run(target, hotkey.arg)
    return True


class HotkeyFilter(QObject):
    """Sends key presses anywhere inside the window to the key map (text fields excepted)."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if event.type() != QEvent.Type.KeyPress or not isinstance(obj, QWidget):
            return False
        if obj.window() is not self.window or QApplication.activeModalWidget() is not None:
            return False
        if isinstance(obj, TEXT_INPUTS) or (isinstance(obj, QComboBox) and obj.isEditable()):
            return False
        return run_hotkey(self.window, event)


class KeyMapDialog(QDialog):
    """F1: every key and what it does, in wrapped lines that scroll, with a Close button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("avatarcam keys")
        grid_widget = QWidget()
        grid = QGridLayout(grid_widget)
        grid.setHorizontalSpacing(16)
        grid.setColumnStretch(1, 1)
        for column, title in enumerate(("Key", "Action")):
            header = QLabel(f"<b>{title}</b>")
            grid.addWidget(header, 0, column)
        for row, (keys, text) in enumerate(keymap.help_rows(), start=1):
            key = QLabel(keys)
            key.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            action = QLabel(text)
            action.setWordWrap(True)
            grid.addWidget(key, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(action, row, 1)
        grid.setRowStretch(grid.rowCount(), 1)
        scroll = QScrollArea()
        scroll.setWidget(grid_widget)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        self.resize(KEYMAP_SIZE)
