"""The control window, offscreen, driven by a video clip and a tiny synthetic checkpoint."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtCore import (  # noqa: E402
    QMimeData,  # noqa: E402
    QPointF,
    Qt,
    QUrl,
)
from PyQt6.QtGui import QDropEvent  # noqa: E402

from avatarcam.gui.app import create_window, ensure_app  # noqa: E402
from avatarcam.gui.main_window import PAGE_CAMERA, PAGE_CHECKPOINT, PAGE_LIVE  # noqa: E402
from avatarcam.settings import Settings, load_settings  # noqa: E402

TIMEOUT = 20_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from avatarcam.demo import face_on_background, write_clip

    pos = [(200 + int(60 * math.sin(i / 5)), 100 + int(30 * math.sin(i / 7))) for i in range(45)]
    return write_clip(tmp_path_factory.mktemp("clip") / "face.mp4", face_on_background(pos, 200))


@pytest.fixture
def make_window(qtbot):
    ensure_app()
    windows = []

    def make(settings: Settings, **kw):
        w = create_window(settings, **kw)
        windows.append(w)
        w.show()
        return w

    yield make
    for w in windows:
        w.close()


def pixels(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def avatarcam_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("avatarcam") and t.is_alive()]


def wait_frames(qtbot, w, n: int) -> None:
    start = w.output_view.frames_shown
    qtbot.waitUntil(lambda: w.output_view.frames_shown >= start + n, timeout=TIMEOUT)


def key(qtbot, w, k, mods=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(w, k, mods)


def test_window_streams_and_hotkeys(qtbot, make_window, tiny_checkpoint, clip, monkeypatch):
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=clip, vcam=False))
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT)
    assert w.stack.currentIndex() == PAGE_LIVE
    wait_frames(qtbot, w, 3)

    # the previews show pictures, and they change as the clip plays
    out1, cam1 = pixels(w.output_view), pixels(w.camera_view)
    assert out1.std() > 10 and cam1.std() > 10
    wait_frames(qtbot, w, 4)
    assert np.abs(pixels(w.camera_view).astype(int) - cam1).mean() > 0.5
    assert np.abs(pixels(w.output_view).astype(int) - out1).mean() > 0.1
    assert w.last_bundle.output.shape == (480, 640, 3)  # what the virtual camera gets
    p = w.pipeline

    calls = []
    original = p.calibrate
    monkeypatch.setattr(p, "calibrate", lambda: (calls.append(1), original()))
    key(qtbot, w, Qt.Key.Key_X)
    assert calls == [1]
    qtbot.waitUntil(lambda: p.stats().calibrated, timeout=TIMEOUT)

    # avatars: 2, 1, D, A
    assert len(w.avatars) >= 2
    first = p.avatar_image.copy()
    key(qtbot, w, Qt.Key.Key_2)
    assert w.current_avatar == 1
    qtbot.waitUntil(lambda: not np.array_equal(p.avatar_image, first), timeout=TIMEOUT)
    key(qtbot, w, Qt.Key.Key_1)
    assert w.current_avatar == 0
    qtbot.waitUntil(lambda: np.array_equal(p.avatar_image, first), timeout=TIMEOUT)
    key(qtbot, w, Qt.Key.Key_D)
    assert w.current_avatar == 1
    key(qtbot, w, Qt.Key.Key_A)
    assert w.current_avatar == 0
    assert w.gallery.currentRow() == 0

    # crop: W/S zoom, U/H/J/K move (Shift = fine), Shift+Z reset
    z0 = p.framing.zoom
    key(qtbot, w, Qt.Key.Key_W)
    assert p.framing.zoom > z0
    key(qtbot, w, Qt.Key.Key_S)
    key(qtbot, w, Qt.Key.Key_S)
    assert p.framing.zoom < z0
    key(qtbot, w, Qt.Key.Key_U)
    assert p.framing.offset[1] < 0
    key(qtbot, w, Qt.Key.Key_H)
    assert p.framing.offset[0] < 0
    key(qtbot, w, Qt.Key.Key_K)
    key(qtbot, w, Qt.Key.Key_K)
    assert p.framing.offset[0] > 0
    key(qtbot, w, Qt.Key.Key_J)
    key(qtbot, w, Qt.Key.Key_J)
    assert p.framing.offset[1] > 0
    before = p.framing.offset[0]
    key(qtbot, w, Qt.Key.Key_K, Qt.KeyboardModifier.ShiftModifier)
    assert 0 < p.framing.offset[0] - before < 0.05
    key(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ShiftModifier)
    assert p.framing.zoom == 1.0 and p.framing.offset == (0.0, 0.0)

    # 0 passthrough, T mirror output, R mirror preview, O/Z/C overlay, I stats
    key(qtbot, w, Qt.Key.Key_0)
    assert p.stats().passthrough and w.act_passthrough.isChecked()
    key(qtbot, w, Qt.Key.Key_0)
    assert not p.stats().passthrough and not w.act_passthrough.isChecked()
    key(qtbot, w, Qt.Key.Key_T)
    assert p._mirror and w.act_mirror.isChecked()
    mirrored = w.camera_view.mirrored
    key(qtbot, w, Qt.Key.Key_R)
    assert w.camera_view.mirrored != mirrored
    key(qtbot, w, Qt.Key.Key_O)
    assert w.camera_view.show_overlay
    opacity = w.camera_view.overlay_opacity
    key(qtbot, w, Qt.Key.Key_C)
    assert w.camera_view.overlay_opacity > opacity
    key(qtbot, w, Qt.Key.Key_Z)
    key(qtbot, w, Qt.Key.Key_Z)
    assert w.camera_view.overlay_opacity < opacity
    key(qtbot, w, Qt.Key.Key_I)
    assert w.output_view.show_stats
    w.update_stats()
    assert "fps" in w.output_view.stats_text and w.status_labels["device"].text().startswith("cpu")
    wait_frames(qtbot, w, 2)  # overlay and stats drawn without errors

    shown = []
    monkeypatch.setattr("avatarcam.gui.main_window.KeyMapDialog.exec", lambda self: shown.append(1))
    key(qtbot, w, Qt.Key.Key_F1)
    key(qtbot, w, Qt.Key.Key_Question, Qt.KeyboardModifier.ShiftModifier)
    assert shown == [1, 1]

    # Esc closes the window and stops every thread the window and its pipeline started
    threads = p.threads()
    key(qtbot, w, Qt.Key.Key_Escape)
    assert not w.isVisible()
    # (the face-detect thread may finish its current detection just after stop() returns)
    deadline = time.monotonic() + 3
    while (avatarcam_threads() or any(t.is_alive() for t in threads)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [t.name for t in threads if t.is_alive()] == []
    assert avatarcam_threads() == []
    saved, _ = load_settings()
    assert saved.mirror_output and saved.show_stats and saved.avatar.endswith(w.avatars[0].path.name)


def test_missing_checkpoint_panel_then_locate(qtbot, make_window, tiny_checkpoint, clip, tmp_path):
    w = make_window(Settings(camera=clip, vcam=False))  # no checkpoint anywhere (isolated user dirs)
    qtbot.waitUntil(lambda: w.stack.currentIndex() == PAGE_CHECKPOINT, timeout=TIMEOUT)
    assert "vox-adv-cpk.pth.tar" in w.checkpoint_panel.detail.text()
    assert w.checkpoint_panel.isVisible() and pixels(w).std() > 5
    try:
        import avatarcam.gui.model_download  # noqa: F401 - optional: the in-window download
    except ImportError:
        pass
    else:
        assert w.checkpoint_panel.download_widget is not None

    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint at all")
    w.use_checkpoint(str(bad))
    qtbot.waitUntil(lambda: "bad.pth.tar" in w.checkpoint_panel.status.text(), timeout=TIMEOUT)
    assert w.stack.currentIndex() == PAGE_CHECKPOINT and w.pipeline is None

    w.use_checkpoint(str(tiny_checkpoint))  # validated by loading, saved, started
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT)
    assert w.stack.currentIndex() == PAGE_LIVE
    wait_frames(qtbot, w, 2)
    saved, _ = load_settings()
    assert saved.checkpoint == str(tiny_checkpoint.resolve())


def test_no_camera_shows_picker(qtbot, make_window, tiny_checkpoint, tmp_path, clip):
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=str(tmp_path / "gone.mp4"), vcam=False))
    qtbot.waitUntil(lambda: w.stack.currentIndex() == PAGE_CAMERA, timeout=TIMEOUT)
    assert "gone.mp4" in w.camera_panel.detail.text()
    qtbot.waitUntil(lambda: w.camera_panel.probe_button.isEnabled(), timeout=TIMEOUT)
    w.use_camera(clip)
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT)
    assert w.stack.currentIndex() == PAGE_LIVE and w.settings.camera == clip


class RecordingVcam:
    frames: list[np.ndarray] = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self._fourcc = fourcc

    def send(self, frame):
        RecordingVcam.frames.append(np.array(frame))

    def close(self):
        pass

    def device(self):
        return "avatarcam-test"

    def native_fourcc(self):
        return self._fourcc


class MissingVcam:
    def __init__(self, **kw):
        raise RuntimeError("virtual camera device not found")


def test_virtual_camera_on_off_and_missing(qtbot, make_window, tiny_checkpoint, clip):
    import pyvirtualcam

    pyvirtualcam.register_backend("avatarcam-gui-test", RecordingVcam)
    pyvirtualcam.register_backend("avatarcam-gui-missing", MissingVcam)
    RecordingVcam.frames = []
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=clip, vcam=True), autostart=False)
    w.controller.vcam_backend = "avatarcam-gui-test"
    w.start_pipeline()
    qtbot.waitUntil(lambda: len(RecordingVcam.frames) >= 2, timeout=TIMEOUT)
    assert RecordingVcam.frames[0].size == 480 * 640 * 3
    w.update_stats()
    assert "on" in w.status_labels["vcam"].text()
    w.act_vcam.setChecked(False)
    assert w.pipeline.stats().vcam_state == "off"

    # no virtual camera driver: the fix is shown, the preview keeps running
    w.controller.vcam_backend = "avatarcam-gui-missing"
    w.act_vcam.blockSignals(True)
    w.act_vcam.setChecked(True)
    w.act_vcam.blockSignals(False)
    w.settings = w.settings.copy(vcam=True)
    w.start_pipeline()
    qtbot.waitUntil(lambda: w.notice_bar.isVisible(), timeout=TIMEOUT)
    assert w.notice_bar.label.text()
    wait_frames(qtbot, w, 2)
    w.set_vcam(True)  # turning it on again says the same, and unticks the button
    assert not w.act_vcam.isChecked()


def test_add_avatar_good_and_corrupt(qtbot, make_window, tmp_path, astronaut):
    import cv2

    w = make_window(Settings(vcam=False), autostart=False)
    n = len(w.avatars)
    good = tmp_path / "friend.jpg"
    cv2.imwrite(str(good), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\ngarbage")

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(good))])
    ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    w.gallery.dropEvent(ev)
    assert len(w.avatars) == n + 1 and w.gallery.count() == n + 1
    assert w.avatars[w.current_avatar].path.name == "friend.png"

    added = w.add_avatar_files([str(bad)])
    assert added == [] and len(w.avatars) == n + 1
    assert "corrupt.png" in w.notice_bar.label.text() and w.notice_bar.isVisible()
    user = w.avatars[-1].path.parent
    assert sorted(p.name for p in user.iterdir()) == ["friend.png"]


def test_settings_dialog_and_notice(qtbot, make_window):
    from avatarcam.gui.settings_dialog import SettingsDialog

    w = make_window(Settings(vcam=False), notice="Settings file x could not be read, so defaults are used.",
                    autostart=False)
    assert w.notice_bar.isVisible() and "defaults" in w.notice_bar.label.text()
    dlg = SettingsDialog(w.settings, w)
    dlg.capture_size.setCurrentIndex(dlg.capture_size.findData("1280x720"))
    dlg.camera.setEditText("/videos/me.mp4")
    dlg.device.setCurrentIndex(dlg.device.findData("cpu"))
    dlg.zoom.setValue(1.5)
    dlg.relative.setChecked(False)
    new = dlg.result_settings()
    assert new.capture_size == (1280, 720) and new.camera == "/videos/me.mp4" and new.device == "cpu"
    assert new.zoom == 1.5 and not new.relative and w.settings.relative
    dlg.reject()
    gen = w.controller.generation
    w.apply_settings(new)  # camera changed: restart (off the GUI thread)
    assert w.controller.generation == gen + 1
    saved, _ = load_settings()
    assert saved.camera == "/videos/me.mp4"
