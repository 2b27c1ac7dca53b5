"""The Record button writes what the virtual camera gets to an .mp4 in the recording folder."""

from __future__ import annotations

import cv2
from gui_support import TIMEOUT_MS, wait_frames

from avatarcam.settings import Settings

pytest_plugins = ("gui_fixtures",)


def test_record_button_saves_an_mp4_of_the_output(qtbot, make_window, tiny_checkpoint, clip, tmp_path):
    w = make_window(Settings(checkpoint=str(tiny_checkpoint), camera=clip, vcam=False, record_dir=str(tmp_path)))
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    w.ui.actions.record.setChecked(True)
    assert w.pipeline.recording
    w.update_stats()
    assert w.ui.output_view.badge == "REC"
    wait_frames(qtbot, w, 4)  # (the first may have left the pipeline before the recording started)
    w.ui.actions.record.setChecked(False)
    assert not w.pipeline.recording
    [video] = tmp_path.glob("avatarcam-*.mp4")
    assert w.ui.status_state.text() == f"Saved {video}"
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (720, 1280, 3) and frames >= 3


def test_record_without_a_running_pipeline_stays_off(qtbot, make_window, tmp_path):
    w = make_window(Settings(vcam=False, record_dir=str(tmp_path)), autostart=False)
    w.ui.actions.record.setChecked(True)
    assert not w.ui.actions.record.isChecked() and not list(tmp_path.iterdir())
