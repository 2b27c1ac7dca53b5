"""User settings: round trip, corrupt files, bad values, unwritable folders."""

from __future__ import annotations

import json
import os

from avatarcam import paths
from avatarcam.pipeline.config import FPS_RANGE, PipelineConfig
from avatarcam.settings import Settings, load_settings, save_settings, settings_path


def test_defaults_when_missing():
    settings, notice = load_settings()
    assert settings == Settings() and notice is None


def test_round_trip_is_atomic():
    s = Settings(camera="clip.mp4", capture_size=(1280, 720), zoom=1.5, vcam=False, avatar="/x/me.png")
    assert save_settings(s) is None
    path = settings_path()
    assert path.parent == paths.user_config_dir()
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp file left behind
    loaded, notice = load_settings()
    assert loaded == s and notice is None


def test_corrupt_file_is_moved_aside():
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    settings, notice = load_settings()
    assert settings == Settings()
    assert notice and "defaults" in notice
    aside = [p for p in path.parent.iterdir() if p.name.startswith("settings.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_text(encoding="utf-8") == "{not json"
    assert not path.exists()
    assert save_settings(settings) is None  # and the next save works


def test_bad_values_replaced_unknown_keys_ignored():
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"zoom": "big", "device": "tpu", "capture_size": [1280, 720], "relative": 1,
                                "vcam_fps": -3, "future_option": 1, "camera": "2"}))
    settings, notice = load_settings()
    assert settings.capture_size == (1280, 720) and settings.camera == "2"
    assert settings.zoom == 1.0 and settings.device == "auto" and settings.relative is True
    assert settings.vcam_fps == 30.0
    assert notice and "zoom" in notice and "device" in notice and "future_option" not in notice


def test_not_an_object_is_corrupt():
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2]")
    settings, notice = load_settings()
    assert settings == Settings() and notice


def test_permission_denied_keeps_previous_file(tmp_path, monkeypatch):
    """Tests run as root (chmod cannot deny root), so the OS refusal is injected at the rename."""
    path = tmp_path / "settings.json"
    assert save_settings(Settings(), path) is None
    before = path.read_bytes()

    def denied(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    changed = Settings()
    changed.camera = "clip.mp4"
    notice = save_settings(changed, path)
    assert notice and "could not be saved" in notice
    assert path.read_bytes() == before  # the user's previous settings are intact
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temp file left


def test_unwritable_path_gives_notice(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    notice = save_settings(Settings(), blocker / "sub" / "settings.json")  # parent is a file
    assert notice and "could not be saved" in notice


def test_settings_are_the_pipeline_config_plus_ui_preferences():
    s = Settings(zoom=2.0, backend="onnx", show_stats=True)
    cfg = s.pipeline_config()
    assert type(cfg) is PipelineConfig and cfg.zoom == 2.0 and cfg.backend == "onnx"
    assert not hasattr(cfg, "show_stats")
    assert cfg.engine_options().backend == "onnx"
    assert s.copy(zoom=3.0).zoom == 3.0 and s.zoom == 2.0


def test_loaded_values_use_the_declared_ranges():
    path = settings_path()
    path.parent.mkdir(parents=True)
    high = FPS_RANGE[1]
    path.write_text(json.dumps({"vcam_fps": high, "capture_fps": high + 1, "checkpoint": "", "precision": "fp8",
                                "offset": [0.5, -2.0], "overlay_opacity": 0.5}))
    settings, notice = load_settings()
    assert settings.vcam_fps == high and settings.capture_fps == 30.0
    assert settings.checkpoint is None  # "" in older files means "not set"
    assert settings.offset == (0.0, 0.0) and settings.overlay_opacity == 0.5
    assert "capture_fps" in notice and "precision" in notice and "offset" in notice


def test_session_only_fields_are_never_saved(tmp_path):
    """A recording path or passthrough of one run must not come back at the next start."""
    path = tmp_path / "settings.json"
    save_settings(Settings(record=str(tmp_path / "x.mp4"), passthrough=True, vcam_backend="test", zoom=1.5,
                           max_frames=10), path)
    stored = json.loads(path.read_text())
    assert "record" not in stored and "passthrough" not in stored and "vcam_backend" not in stored
    assert "max_frames" not in stored and stored["zoom"] == 1.5
    loaded, notice = load_settings(path)
    assert loaded.record is None and loaded.passthrough is False and loaded.max_frames == 0 and notice is None


def test_ai_label_and_backend_are_saved_and_checked(tmp_path):
    path = tmp_path / "settings.json"
    assert Settings().ai_label is True and Settings().backend == "auto"  # honest by default
    save_settings(Settings(ai_label=False, backend="onnx"), path)
    loaded, notice = load_settings(path)
    assert loaded.ai_label is False and loaded.backend == "onnx" and notice is None
    path.write_text(json.dumps({"ai_label": "no", "backend": "tensorflow"}))
    loaded, notice = load_settings(path)
    assert loaded.ai_label is True and loaded.backend == "auto" and "ai_label" in notice and "backend" in notice


def test_settings_file_is_private_0600_whatever_the_umask(tmp_path):
    """It may hold the remote worker's token (issue 21)."""
    path = tmp_path / "settings.json"
    old = os.umask(0o022)
    try:
        assert save_settings(Settings(remote_token="secret"), path) is None
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o600
