"""The Qt side of the key map: the window-wide key filter and the key-map dialog."""

from __future__ import annotations

from PyQt6.QtCore import QEvent, QObject
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QLineEdit,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from . import keymap

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
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("avatarcam keys")
        rows = keymap.help_rows()
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Key", "Action"])
        table.verticalHeader().hide()
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        for i, (keys, text) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(keys))
            table.setItem(i, 1, QTableWidgetItem(text))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        self.resize(720, 640)
