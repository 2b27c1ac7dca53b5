"""The pose-match meter next to the camera preview, F (find best frame) and the calibration hint."""

from __future__ import annotations

from gui_support import TIMEOUT_MS, press
from PyQt6.QtCore import Qt

from avatarcam.engine.neutral import AUTO, FIND_BEST, MANUAL, MatchReading
from avatarcam.gui import match_meter
from avatarcam.gui.match_meter import MatchMeter, match_level

pytest_plugins = ("gui_fixtures",)


def test_meter_shows_the_live_match_in_its_colour(qtbot, live_window):
    w = live_window
    meter = w.ui.match_meter
    assert meter.isVisible() and w.ui.camera_view.parentWidget() is meter.parentWidget()  # next to the preview
    qtbot.waitUntil(lambda: w.pipeline.match_reading().match is not None and meter.percent.text().endswith("%"),
                    timeout=TIMEOUT_MS)
    match = w.pipeline.match_reading().match
    assert 0.0 <= match <= 100.0
    assert meter.level in ("good", "fair", "poor") and meter.level == match_level(meter.bar.value())[0]
    assert "first 3 s" in meter.mode.text()  # auto-calibration: the window length from the config


def test_f_toggles_find_best_and_confirms_improvements(qtbot, live_window):
    w, p = live_window, live_window.pipeline
    press(qtbot, w, Qt.Key.Key_F)
    assert p.find_best and p.match_reading().mode == FIND_BEST
    meter = w.ui.match_meter
    qtbot.waitUntil(lambda: " : " in meter.percent.text(), timeout=TIMEOUT_MS)  # "current : best"
    qtbot.waitUntil(lambda: meter.confirm.text().startswith("Better frame"), timeout=TIMEOUT_MS)
    press(qtbot, w, Qt.Key.Key_F)
    assert not p.find_best and p.match_reading().mode == MANUAL


def test_meter_levels_and_timed_confirmation(qtbot, monkeypatch):
    monkeypatch.setattr(match_meter, "CONFIRM_MS", 50)
    meter = MatchMeter()
    qtbot.addWidget(meter)
    meter.show_reading(MatchReading(85.0, 60.0, AUTO, True), 3.0)
    assert meter.level == "good" and meter.percent.text() == "85 %"
    meter.show_reading(MatchReading(50.0, 60.0, FIND_BEST, True, 0), 3.0)
    assert meter.level == "fair" and meter.percent.text() == "50 : 60 %" and meter.confirm.text() == ""
    meter.show_reading(MatchReading(20.0, 62.0, FIND_BEST, True, 1), 3.0)
    assert meter.level == "poor" and meter.confirm.text() == "Better frame: 62 % is your neutral pose now"
    qtbot.waitUntil(lambda: meter.confirm.text() == "", timeout=TIMEOUT_MS)  # the message times out
    meter.show_reading(MatchReading(None, 62.0, FIND_BEST, True, 1), 3.0)
    assert meter.percent.text() == "no face" and meter.level == ""


def test_hint_says_auto_calibration_until_x(live_window):
    text = live_window.ui.hint.text()
    assert "Until you press <b>X</b>" in text and "best match of the first seconds" in text and "<b>F</b>" in text
