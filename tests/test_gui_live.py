"""The running window: it shows frames, and each hotkey does its one thing to the live pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from gui_support import TIMEOUT_MS, avatarcam_threads, pixels, press, wait_frames
from helpers import wait_until
from PyQt6.QtCore import QEvent, Qt
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtWidgets import QApplication

from avatarcam.gui import keymap
from avatarcam.gui.layout import PAGE_LIVE
from avatarcam.settings import load_settings

pytest_plugins = ("gui_fixtures",)
SHIFT = Qt.KeyboardModifier.ShiftModifier


def test_window_starts_and_shows_frames(qtbot, live_window):
    w = live_window
    assert w.ui.stack.currentIndex() == PAGE_LIVE
    assert pixels(w.ui.output_view).std() > 10 and pixels(w.ui.camera_view).std() > 10
    first = w.last_bundle
    wait_frames(qtbot, w, 3)
    assert w.last_bundle.index > first.index  # new camera frames keep arriving
    assert w.last_bundle.output.shape == (720, 1280, 3)  # what the virtual camera gets (the default size)


def test_calibrate_key_calibrates_the_pipeline(qtbot, live_window):
    assert not live_window.pipeline.stats().calibrated
    press(qtbot, live_window, Qt.Key.Key_X)
    qtbot.waitUntil(lambda: live_window.pipeline.stats().calibrated, timeout=TIMEOUT_MS)


def test_number_keys_switch_the_avatar(qtbot, live_window):
    w, p = live_window, live_window.pipeline
    assert len(w.avatars) >= 2
    first = p.avatar_image.copy()
    press(qtbot, w, Qt.Key.Key_2)
    assert w.current_avatar == 1 and w.ui.gallery.currentRow() == 1
    qtbot.waitUntil(lambda: not np.array_equal(p.avatar_image, first), timeout=TIMEOUT_MS)
    press(qtbot, w, Qt.Key.Key_1)
    assert w.current_avatar == 0
    qtbot.waitUntil(lambda: np.array_equal(p.avatar_image, first), timeout=TIMEOUT_MS)


def test_a_and_d_step_through_the_avatars(qtbot, live_window):
    w = live_window
    press(qtbot, w, Qt.Key.Key_D)
    assert w.current_avatar == 1
    press(qtbot, w, Qt.Key.Key_A)
    press(qtbot, w, Qt.Key.Key_A)  # wraps around to the last one
    assert w.current_avatar == len(w.avatars) - 1 and w.ui.gallery.currentRow() == w.current_avatar


def test_w_and_s_zoom_the_crop(qtbot, live_window):
    p = live_window.pipeline
    zoom = p.crop_zoom
    press(qtbot, live_window, Qt.Key.Key_W)
    assert p.crop_zoom == pytest.approx(zoom * keymap.ZOOM_STEP)
    press(qtbot, live_window, Qt.Key.Key_S)
    press(qtbot, live_window, Qt.Key.Key_S)
    assert p.crop_zoom == pytest.approx(zoom / keymap.ZOOM_STEP)


@pytest.mark.parametrize(("key", "direction"), [(Qt.Key.Key_U, (0, -1)), (Qt.Key.Key_J, (0, 1)),
                                                (Qt.Key.Key_H, (-1, 0)), (Qt.Key.Key_K, (1, 0))])
def test_uhjk_move_the_crop_and_shift_moves_finer(qtbot, live_window, key, direction):
    p = live_window.pipeline
    press(qtbot, live_window, key)
    assert p.crop_offset == pytest.approx(tuple(d * keymap.MOVE_STEP for d in direction))
    press(qtbot, live_window, key, SHIFT)
    assert p.crop_offset == pytest.approx(tuple(d * (keymap.MOVE_STEP + keymap.FINE_MOVE_STEP) for d in direction))


def test_shift_z_resets_the_crop(qtbot, live_window):
    p = live_window.pipeline
    press(qtbot, live_window, Qt.Key.Key_W)
    press(qtbot, live_window, Qt.Key.Key_K)
    press(qtbot, live_window, Qt.Key.Key_Z, SHIFT)
    assert p.crop_zoom == 1.0 and p.crop_offset == (0.0, 0.0)


def sent(camera: np.ndarray, mirror: bool = False) -> np.ndarray:
    """What passthrough sends: the camera picture covering the default 1280x720 output."""
    from avatarcam.pipeline.compositor import OutputStage

    return OutputStage.passthrough(camera, layout="picture", size=(1280, 720), mirror=mirror)


def test_passthrough_key_sends_the_camera_picture(qtbot, live_window):
    w = live_window
    press(qtbot, w, Qt.Key.Key_0)
    assert w.pipeline.stats().passthrough and w.ui.actions.passthrough.isChecked()
    qtbot.waitUntil(lambda: np.array_equal(w.last_bundle.output, sent(w.last_bundle.camera)), timeout=TIMEOUT_MS)
    press(qtbot, w, Qt.Key.Key_0)
    assert not w.pipeline.stats().passthrough and not w.ui.actions.passthrough.isChecked()


def test_mirror_output_key_mirrors_what_is_sent(qtbot, live_window):
    w = live_window
    press(qtbot, w, Qt.Key.Key_0)  # passthrough: the output is the camera picture, so mirroring is visible
    press(qtbot, w, Qt.Key.Key_T)
    assert w.ui.actions.mirror.isChecked() and w.settings.mirror_output
    qtbot.waitUntil(lambda: np.array_equal(w.last_bundle.output, sent(w.last_bundle.camera, mirror=True)),
                    timeout=TIMEOUT_MS)


def test_r_mirrors_the_camera_preview(qtbot, live_window):
    view = live_window.ui.camera_view
    mirrored = view.mirrored
    press(qtbot, live_window, Qt.Key.Key_R)
    assert view.mirrored != mirrored and live_window.settings.mirror_preview == view.mirrored


def test_overlay_keys_show_the_avatar_and_change_its_opacity(qtbot, live_window):
    view = live_window.ui.camera_view
    press(qtbot, live_window, Qt.Key.Key_O)
    assert view.show_overlay
    opacity = view.overlay_opacity
    press(qtbot, live_window, Qt.Key.Key_C)
    assert view.overlay_opacity == pytest.approx(opacity + keymap.OPACITY_STEP)
    press(qtbot, live_window, Qt.Key.Key_Z)
    press(qtbot, live_window, Qt.Key.Key_Z)
    assert view.overlay_opacity == pytest.approx(opacity - keymap.OPACITY_STEP)
    assert live_window.settings.overlay_opacity == view.overlay_opacity
    wait_frames(qtbot, live_window, 2)  # drawn with the overlay without errors


def test_i_shows_the_statistics(qtbot, live_window):
    w = live_window
    press(qtbot, w, Qt.Key.Key_I)
    assert w.ui.output_view.show_stats
    w.update_stats()
    assert "fps" in w.ui.output_view.stats_text and w.ui.status_labels["device"].text().startswith("cpu")


def test_help_keys_open_the_key_map(qtbot, live_window, monkeypatch):
    shown = []
    monkeypatch.setattr("avatarcam.gui.main_window.KeyMapDialog.exec", lambda self: shown.append(1))
    press(qtbot, live_window, Qt.Key.Key_F1)
    press(qtbot, live_window, Qt.Key.Key_Question, SHIFT)
    assert shown == [1, 1]


def held(key: Qt.Key, text: str) -> QKeyEvent:
    """A key press repeated by the keyboard because the key is held down."""
    return QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text, True)


def test_held_keys_repeat_crop_moves_but_not_toggles(qtbot, live_window):
    zoom = live_window.pipeline.crop_zoom
    QApplication.sendEvent(live_window, held(Qt.Key.Key_W, "w"))
    assert live_window.pipeline.crop_zoom > zoom
    QApplication.sendEvent(live_window, held(Qt.Key.Key_0, "0"))
    assert not live_window.ui.actions.passthrough.isChecked()


def test_escape_closes_the_window_stops_every_thread_and_saves(qtbot, live_window):
    w = live_window
    press(qtbot, w, Qt.Key.Key_2)
    press(qtbot, w, Qt.Key.Key_T)
    press(qtbot, w, Qt.Key.Key_I)
    threads = w.pipeline.threads()
    press(qtbot, w, Qt.Key.Key_Escape)
    assert not w.isVisible()
    # (the face-detect thread may finish its current detection just after stop() returns)
    wait_until(lambda: not avatarcam_threads() and not any(t.is_alive() for t in threads), timeout=5)
    saved, _ = load_settings()
    assert saved.mirror_output and saved.show_stats and saved.avatar == str(w.avatars[1].path)
