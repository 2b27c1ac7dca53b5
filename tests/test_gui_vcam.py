"""The virtual-camera button: frames reach a real pyvirtualcam backend; a missing driver shows the fix."""

from __future__ import annotations

import pytest
import pyvirtualcam
from gui_support import TIMEOUT_MS, wait_frames

from avatarcam.settings import Settings

pytest_plugins = ("gui_fixtures",)


def vcam_window(qtbot, make_window, checkpoint, clip, backend: str | None):
    w = make_window(Settings(checkpoint=str(checkpoint), camera=clip, vcam=True), autostart=False)
    w.controller.vcam_backend = backend
    w.start_pipeline()
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    return w


def test_virtual_camera_gets_the_output(qtbot, make_window, tiny_checkpoint, clip, fake_vcam):
    w = vcam_window(qtbot, make_window, tiny_checkpoint, clip, "avatarcam-test")
    qtbot.waitUntil(lambda: len(fake_vcam.frames) >= 2, timeout=TIMEOUT_MS)
    assert fake_vcam.frames[0].shape == (720, 1280, 3)
    w.update_stats()
    assert w.ui.status_labels["vcam"].text() == "virtual camera: on" and w.ui.actions.vcam.isChecked()


def test_virtual_camera_button_turns_it_off(qtbot, make_window, tiny_checkpoint, clip, fake_vcam):
    w = vcam_window(qtbot, make_window, tiny_checkpoint, clip, "avatarcam-test")
    qtbot.waitUntil(lambda: len(fake_vcam.frames) >= 1, timeout=TIMEOUT_MS)
    w.ui.actions.vcam.setChecked(False)
    assert w.pipeline.stats().vcam_state == "off" and not w.settings.vcam
    sent = len(fake_vcam.frames)
    wait_frames(qtbot, w, 3)  # the preview goes on...
    assert len(fake_vcam.frames) <= sent + 1  # ...and the virtual camera gets nothing more (one may be in flight)


def test_missing_virtual_camera_shows_the_fix(qtbot, make_window, tiny_checkpoint, clip):
    # no fake_vcam fixture: the OS default backends only, and none of them works here
    assert not [name for name in pyvirtualcam.camera.BACKENDS if name.startswith("avatarcam")]
    try:
        pyvirtualcam.Camera(64, 48, 30).close()
    except RuntimeError:
        pass
    else:
        pytest.skip("a working virtual camera is installed on this machine")
    w = vcam_window(qtbot, make_window, tiny_checkpoint, clip, None)
    qtbot.waitUntil(lambda: w.ui.notice_bar.isVisible(), timeout=TIMEOUT_MS)
    assert "fix:" in w.ui.notice_bar.label.text()
    wait_frames(qtbot, w, 2)  # the preview keeps running
    w.ui.notice_bar.hide()
    w.ui.actions.vcam.setChecked(False)
    w.ui.actions.vcam.setChecked(True)  # turning it on again says the same, and unticks the button
    assert "fix:" in w.ui.notice_bar.label.text() and w.ui.notice_bar.isVisible()
    assert not w.ui.actions.vcam.isChecked() and w.pipeline.stats().vcam_state == "unavailable"
