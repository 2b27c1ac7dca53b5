"""The window with "Model runs on: a remote worker": real Qt (offscreen), real pipeline on a clip,
the model step on the session's Ray Serve worker (tests/remote_fixtures.py)."""

from __future__ import annotations

import pytest
from gui_support import TIMEOUT_MS

from avatarcam.gui.settings_dialog import SettingsDialog
from avatarcam.remote.client import RemoteAnimator
from avatarcam.remote.ray_setup import prepare_environment
from avatarcam.settings import MODEL_PLACES, Settings, from_dict, to_dict

pytest_plugins = ("gui_fixtures", "remote_fixtures")
prepare_environment()  # before Ray is imported: the Ray `avatarcam serve` starts (loopback, no metrics)
pytest.importorskip("ray.serve")


def _remote_settings(worker, clip, token: str) -> Settings:
    return Settings(checkpoint=str(worker.checkpoint), camera=clip, vcam=False, model_on="remote",
                    remote_url=worker.url, remote_token=token, show_stats=True)


def test_the_dialog_edits_where_the_model_runs(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    dlg = SettingsDialog(w.settings, w)
    assert tuple(dlg.model_on.itemData(i) for i in range(dlg.model_on.count())) == MODEL_PLACES
    dlg.model_on.setCurrentIndex(dlg.model_on.findData("remote"))
    dlg.remote_url.setText(" ws://gpu:8000 ")
    dlg.remote_token.setText("secret")
    new = dlg.result_settings()
    dlg.reject()
    assert (new.model_on, new.remote_url, new.remote_token) == ("remote", "ws://gpu:8000", "secret")
    assert from_dict(to_dict(new)) == (new, [])  # saved and loaded like every other setting
    assert from_dict({"model_on": "cloud"})[1] == ["model_on"]  # a bad value is reset, with a notice


def test_window_runs_the_model_on_the_remote_worker(qtbot, make_window, remote_worker, clip):
    window = make_window(_remote_settings(remote_worker, clip, remote_worker.token))
    qtbot.waitUntil(lambda: window.pipeline is not None, timeout=TIMEOUT_MS)
    remote = window.pipeline.animator
    assert isinstance(remote, RemoteAnimator)
    qtbot.waitUntil(lambda: remote.stats().received >= 3, timeout=TIMEOUT_MS)
    window.update_stats()
    text = window.ui.output_view.stats_text
    assert "remote    connected (direct)" in text and "rtt" in text and "in flight" in text
    assert "device    remote fp32" in text
    window.close()
    assert remote.stats().state == "closed"  # the link ends with the window


def test_a_wrong_token_is_a_notice_and_the_window_keeps_running(qtbot, make_window, remote_worker, clip):
    window = make_window(_remote_settings(remote_worker, clip, "wrong"))
    qtbot.waitUntil(lambda: "wrong or missing token" in window.ui.notice_bar.label.text(), timeout=TIMEOUT_MS)
    assert window.pipeline is not None and window.pipeline.animator.stats().state == "refused"
