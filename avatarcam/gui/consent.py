"""The first-run notice about consent (shown until read once; remembered in the settings)."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QPushButton, QWidget

from .panels import NoticeBar

CONSENT_TEXT = ("<b>Animate only faces you have the right to use</b>: your own portrait, or one whose owner "
                "agreed. Tell the people you call that they see a generated video; by default a small "
                "\"AI\" label marks the outgoing picture (Settings).")


class ConsentBar(NoticeBar):
    """The first-run notice about consent; "I understand" (or closing it) means it was read."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.understood = QPushButton("I understand")
        self.understood.clicked.connect(self.dismiss)
        self.row.insertWidget(1, self.understood, 0, Qt.AlignmentFlag.AlignVCenter)
