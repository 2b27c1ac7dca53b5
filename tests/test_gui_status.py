"""What the window says: the status never contradicts the virtual camera, messages that matter stay
readable against the stats timer, stats say "no face" and count only animated frames, crop keys
answer and are saved, the consent notice is shown once."""

from __future__ import annotations

import pytest
from gui_support import TIMEOUT_MS, press, wait_frames
from PyQt6.QtCore import Qt

from avatarcam.gui.controller import RateMeter
from avatarcam.gui.main_window import VCAM_STATUS, status_line
from avatarcam.pipeline import PipelineStats
from avatarcam.settings import Settings, load_settings

pytest_plugins = ("gui_fixtures",)


@pytest.fixture(scope="module")
def faceless_clip(tmp_path_factory) -> str:
    """A 640x480 mp4 of an empty room: no frame has a face."""
    from synthetic import face_on_background, write_clip

    return write_clip(tmp_path_factory.mktemp("empty") / "empty.mp4", face_on_background([(-900, -900)] * 30, 200))


@pytest.mark.parametrize("state", ["off", "unavailable", "error"])
def test_status_line_never_sends_the_user_to_a_missing_virtual_camera(state):
    line = status_line(PipelineStats(camera_state="running", calibrated=True, vcam_state=state, calibration="manual"))
    assert "Choose 'avatarcam'" not in line and line == "Calibrated. " + VCAM_STATUS[state]
    on = status_line(PipelineStats(camera_state="running", calibrated=True, vcam_state="on", calibration="manual"))
    assert "Choose 'avatarcam' as the camera" in on


def test_vcam_button_is_off_while_the_virtual_camera_is_unavailable(qtbot, make_window, tiny_checkpoint, clip,
                                                                      fake_vcam):
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=clip, vcam=True), autostart=False)
    assert not w.ui.actions.vcam.isChecked()  # not drawn "on" before anything is known
    w.controller.vcam_backend = "avatarcam-missing"
    w.start_pipeline()
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    press(qtbot, w, Qt.Key.Key_X)
    qtbot.waitUntil(lambda: w.pipeline.stats().calibrated, timeout=TIMEOUT_MS)
    w.message_timer.stop()
    w.update_stats()
    assert w.pipeline.stats().vcam_state == "unavailable" and not w.ui.actions.vcam.isChecked()
    assert w.ui.status_state.text() == "Calibrated. " + VCAM_STATUS["unavailable"]
    assert w.settings.vcam  # the preference is kept for the next start


def test_calibrated_message_survives_the_stats_timer(qtbot, live_window):
    w = live_window
    press(qtbot, w, Qt.Key.Key_X)
    for _ in range(3):
        w.update_stats()  # what the 0.5 s timer does
    assert w.ui.status_state.text() == "Calibrated: this is your neutral pose" and w.message_timer.isActive()


def test_a_message_gives_the_status_line_back_when_its_time_is_up(qtbot, live_window):
    w = live_window
    w.tell("short message", seconds=0.05)
    qtbot.waitUntil(lambda: w.ui.status_state.text() != "short message", timeout=TIMEOUT_MS)
    assert not w.message_timer.isActive()


def test_saved_recording_path_stays_readable(qtbot, make_window, tiny_checkpoint, clip, tmp_path):
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=clip, vcam=False, record_dir=str(tmp_path)))
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    w.ui.actions.record.setChecked(True)
    w.update_stats()
    assert w.ui.status_state.text().startswith(f"Recording to {tmp_path}")
    wait_frames(qtbot, w, 2)
    w.ui.actions.record.setChecked(False)
    [video] = tmp_path.glob("avatarcam-*.mp4")
    for _ in range(3):
        w.update_stats()
    assert w.ui.status_state.text() == f"Saved {video}"
    assert str(video) in w.ui.notice_bar.label.text() and w.ui.notice_bar.isVisible()


def test_frames_without_a_face_say_no_face_and_count_no_fps(qtbot, make_window, tiny_checkpoint, faceless_clip):
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=faceless_clip, vcam=False))
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    wait_frames(qtbot, w, 3)
    assert w.pipeline.stats().fps > 0  # frames go out (the held picture)...
    w.update_stats()
    labels = w.ui.status_labels
    assert labels["model"].text() == "no face" and labels["fps"].text().strip() == "0.0 fps"  # ...none animated
    assert "no face" in w.ui.output_view.stats_text
    assert w.ui.camera_view.box_legend().startswith("no face")


def test_frames_with_a_face_show_model_time_and_animated_fps(qtbot, live_window):
    w = live_window
    qtbot.waitUntil(lambda: w.controller.animated_fps() > 0, timeout=TIMEOUT_MS)
    w.update_stats()
    assert w.ui.status_labels["model"].text().startswith("model ") and w.ui.status_labels["model"].text().endswith("ms")
    assert w.ui.camera_view.box_legend() == ""


def test_the_orange_face_box_is_explained(qtbot, make_window):
    tip = make_window(Settings(vcam=False), autostart=False).ui.camera_view.toolTip()
    assert "Orange rectangle: no face found" in tip and "Green rectangle" in tip


def test_rate_meter_counts_events_in_its_window():
    meter = RateMeter(span_s=2.0)
    for i in range(11):
        meter.tick(100.0 + i * 0.1)  # 10 intervals in 1 s
    assert meter.rate(now=101.0) == pytest.approx(10.0)
    assert meter.rate(now=104.0) == 0.0  # nothing in the last 2 s


def test_crop_keys_answer_and_the_zoom_is_saved(qtbot, live_window):
    w, p = live_window, live_window.pipeline
    press(qtbot, w, Qt.Key.Key_W)
    assert w.ui.status_state.text().startswith(f"Face crop: zoom {p.crop_zoom * 100:.0f} %")
    w.update_stats()
    assert w.ui.status_state.text().startswith("Face crop: zoom 110 %")
    press(qtbot, w, Qt.Key.Key_K)
    assert "offset +0.05 x +0.00" in w.ui.status_state.text()
    assert w.settings.zoom == pytest.approx(p.crop_zoom) and w.settings.offset == pytest.approx(p.crop_offset)
    qtbot.waitUntil(lambda: load_settings()[0].zoom == pytest.approx(p.crop_zoom), timeout=TIMEOUT_MS)
    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ShiftModifier)
    assert w.ui.status_state.text().startswith("Face crop: zoom 100 %, offset +0.00 x +0.00")
    w.close()
    assert load_settings()[0].zoom == 1.0 and load_settings()[0].offset == (0.0, 0.0)


def test_consent_notice_is_shown_once(qtbot, make_window):
    first = make_window(Settings(vcam=False), autostart=False)
    assert first.ui.consent_bar.isVisible() and "right to use" in first.ui.consent_bar.label.text()
    qtbot.mouseClick(first.ui.consent_bar.understood, Qt.MouseButton.LeftButton)
    assert not first.ui.consent_bar.isVisible() and load_settings()[0].consent_seen
    second = make_window(load_settings()[0], autostart=False)
    assert not second.ui.consent_bar.isVisible()


def test_the_saved_zoom_is_used_at_the_next_start(qtbot, live_window, make_window):
    w = live_window
    press(qtbot, w, Qt.Key.Key_W)
    press(qtbot, w, Qt.Key.Key_W)
    zoom = w.pipeline.crop_zoom
    w.close()  # closing writes what the save timer has not written yet
    again = make_window(load_settings()[0])
    qtbot.waitUntil(lambda: again.pipeline is not None, timeout=TIMEOUT_MS)
    assert zoom == pytest.approx(1.21) and again.pipeline.crop_zoom == pytest.approx(zoom, abs=1e-3)


def test_status_line_says_how_the_neutral_pose_was_chosen():
    """Auto-calibration must not be reported as the user's own calibration (X)."""
    auto = status_line(PipelineStats(camera_state="running", calibrated=True, vcam_state="on", calibration="auto"))
    manual = status_line(PipelineStats(camera_state="running", calibrated=True, vcam_state="on", calibration="manual"))
    assert auto.startswith("Auto-calibrated") and "press X" in auto
    assert manual.startswith("Calibrated.")
