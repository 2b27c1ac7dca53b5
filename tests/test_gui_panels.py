"""The first-run panels: a missing checkpoint and a camera that does not open."""

from __future__ import annotations

from gui_support import TIMEOUT_MS, pixels, wait_frames

from avatarcam.gui.layout import PAGE_CAMERA, PAGE_CHECKPOINT, PAGE_LIVE
from avatarcam.paths import CHECKPOINT_NAME
from avatarcam.settings import Settings, load_settings

pytest_plugins = ("gui_fixtures",)


def test_missing_checkpoint_shows_the_panel_with_a_download(qtbot, make_window, clip):
    w = make_window(Settings(camera=clip, vcam=False))  # no checkpoint anywhere (isolated user dirs)
    qtbot.waitUntil(lambda: w.ui.stack.currentIndex() == PAGE_CHECKPOINT, timeout=TIMEOUT_MS)
    panel = w.ui.checkpoint_panel
    assert CHECKPOINT_NAME in panel.detail.text()
    assert panel.isVisible() and pixels(w).std() > 5
    assert panel.download_widget is not None
    assert w.pipeline is None


def test_a_bad_checkpoint_file_is_refused_on_the_panel(qtbot, make_window, clip, tmp_path):
    w = make_window(Settings(camera=clip, vcam=False))
    qtbot.waitUntil(lambda: w.ui.stack.currentIndex() == PAGE_CHECKPOINT, timeout=TIMEOUT_MS)
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint at all")
    w.use_checkpoint(str(bad))
    qtbot.waitUntil(lambda: "bad.pth.tar" in w.ui.checkpoint_panel.detail.text(), timeout=TIMEOUT_MS)
    assert w.ui.stack.currentIndex() == PAGE_CHECKPOINT and w.pipeline is None
    assert load_settings()[0].checkpoint is None  # the refused file was not saved


def test_a_located_checkpoint_is_saved_and_started(qtbot, make_window, clip, tiny_checkpoint):
    w = make_window(Settings(camera=clip, vcam=False))
    qtbot.waitUntil(lambda: w.ui.stack.currentIndex() == PAGE_CHECKPOINT, timeout=TIMEOUT_MS)
    w.use_checkpoint(str(tiny_checkpoint))  # validated by loading, saved, started
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    assert w.ui.stack.currentIndex() == PAGE_LIVE
    wait_frames(qtbot, w, 2)
    assert load_settings()[0].checkpoint == str(tiny_checkpoint.resolve())


def test_no_camera_shows_the_picker_and_a_chosen_source_starts(qtbot, make_window, tiny_checkpoint, tmp_path, clip):
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=str(tmp_path / "gone.mp4"), vcam=False))
    qtbot.waitUntil(lambda: w.ui.stack.currentIndex() == PAGE_CAMERA, timeout=TIMEOUT_MS)
    panel = w.ui.camera_panel
    assert "gone.mp4" in panel.detail.text()
    qtbot.waitUntil(lambda: panel.probe_button.isEnabled(), timeout=TIMEOUT_MS)  # the camera search ended
    assert panel.combo.currentData() is None and not panel.use_button.isEnabled()  # no camera on this machine
    w.use_camera(clip)
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    assert w.ui.stack.currentIndex() == PAGE_LIVE and w.settings.camera == clip
