"""The pose-match meter next to the camera preview: how well your pose matches the avatar's.

Relative motion looks right only when the neutral pose matches the avatar's, so the meter shows the
live match (0-100 %, red / orange / green), how the neutral pose is chosen now (auto-calibration,
F = find best frame, X), with F on "current : best", and confirms each better frame for a few
seconds (a timed message: the stats timer never overwrites it).
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from ..engine.neutral import AUTO, FIND_BEST, MatchReading

LEVELS = ((70.0, "good", "#3aa55d"), (40.0, "fair", "#e0a030"), (0.0, "poor", "#d9534f"))  # (from %, name, colour)
CONFIRM_MS = 3000  # how long "better frame" stays readable
WIDEST_READING = "100 : 100 %"  # the percentage label is this wide, so the bar does not jump


def match_level(match: float) -> tuple[str, str]:
    """(name, colour) of a match percentage."""
    return next((name, colour) for low, name, colour in LEVELS if match >= low)


def mode_text(reading: MatchReading, window_s: float) -> str:
    if reading.mode == FIND_BEST:
        return "F: finding your best frame (current : best). Press F again to keep it."
    if reading.mode == AUTO:
        return (f"Neutral pose: your best match in the first {window_s:g} s. Press X to set it yourself, "
                f"F to search again.")
    return "Neutral pose set. F finds a better one."


class MatchMeter(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("matchMeter")
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setTextVisible(False)  # the number is a label beside the bar, never drawn over it
        self.bar.setToolTip("How well your pose matches the avatar's (the model's own keypoints). "
                            "The neutral pose should match it well.")
        self.percent = QLabel("")
        self.percent.setObjectName("matchPercent")
        self.percent.setMinimumWidth(self.percent.fontMetrics().horizontalAdvance(WIDEST_READING) + 4)
        self.percent.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.mode = QLabel("")
        self.mode.setWordWrap(True)
        self.confirm = QLabel("")
        self.confirm.setObjectName("matchConfirm")
        self._confirm_timer = QTimer(self)
        self._confirm_timer.setSingleShot(True)
        self._confirm_timer.timeout.connect(lambda: self.confirm.setText(""))
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Pose match"))
        row.addWidget(self.bar, 1)
        row.addWidget(self.percent)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.mode)
        column.addWidget(self.confirm)
        self.level = ""
        self._improvements = 0
        self.show_reading(None)

    def show_reading(self, reading: MatchReading | None, window_s: float = 0.0) -> None:
        """Update from ``Pipeline.match_reading()`` (None: not running)."""
        if reading is None or reading.match is None:
            self.bar.setValue(0)
            self.percent.setText("no face" if reading is not None else "-")
            self._set_level("")
        else:
            self.bar.setValue(round(reading.match))
            best = reading.best
            show_best = reading.mode == FIND_BEST and best is not None
            self.percent.setText(f"{reading.match:.0f} : {best:.0f} %" if show_best else f"{reading.match:.0f} %")
            self._set_level(*match_level(reading.match))
        self.mode.setText(mode_text(reading, window_s) if reading is not None else "")
        self._confirm(reading)

    def _set_level(self, name: str, colour: str = "#888888") -> None:
        if name != self.level:
            self.level = name
            self.bar.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")

    def _confirm(self, reading: MatchReading | None) -> None:
        count = reading.improvements if reading is not None and reading.mode == FIND_BEST else 0
        if count > self._improvements and reading.best is not None:
            self.confirm.setText(f"Better frame: {reading.best:.0f} % is your neutral pose now")
            self._confirm_timer.start(CONFIRM_MS)
        self._improvements = count
