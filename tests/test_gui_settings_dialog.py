"""The settings dialog: its choices come from the single declarations; applying restarts or adjusts."""

from __future__ import annotations

from dataclasses import fields

import pytest
from gui_support import TIMEOUT_MS
from PyQt6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox

from avatarcam.engine.options import BACKENDS, DEVICES, PRECISIONS
from avatarcam.gui.settings_dialog import AI_LABEL_TEXT, SettingsDialog, dialog_groups
from avatarcam.pipeline.config import LIVE, changed_fields
from avatarcam.settings import Settings, load_settings

pytest_plugins = ("gui_fixtures",)


def items(combo) -> tuple:
    return tuple(combo.itemData(i) for i in range(combo.count()))


def test_the_dialog_offers_the_declared_choices(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    dlg = SettingsDialog(w.settings, w)
    assert items(dlg.device) == DEVICES and items(dlg.precision) == PRECISIONS
    dlg.reject()


def test_the_dialog_returns_the_edited_settings_and_keeps_the_original(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    dlg = SettingsDialog(w.settings, w)
    dlg.capture_size.setCurrentIndex(dlg.capture_size.findData("1280x720"))
    dlg.camera.setEditText("/videos/me.mp4")
    dlg.device.setCurrentIndex(dlg.device.findData("cpu"))
    dlg.zoom.setValue(1.5)
    dlg.relative.setChecked(False)
    new = dlg.result_settings()
    dlg.reject()
    assert new.capture_size == (1280, 720) and new.camera == "/videos/me.mp4" and new.device == "cpu"
    assert new.zoom == 1.5 and not new.relative and w.settings.relative


def test_applying_a_new_camera_restarts_and_saves(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    gen = w.controller.generation
    w.apply_settings(w.settings.copy(camera="/videos/me.mp4"))  # restart (off the GUI thread)
    assert w.controller.generation == gen + 1
    assert load_settings()[0].camera == "/videos/me.mp4"


def test_applying_a_new_zoom_adjusts_the_running_crop(qtbot, live_window):
    w = live_window
    gen, pipeline = w.controller.generation, w.pipeline
    w.apply_settings(w.settings.copy(zoom=1.5))
    assert w.controller.generation == gen and w.pipeline is pipeline  # no restart
    assert pipeline.crop_zoom == pytest.approx(1.5)


def test_a_startup_notice_is_shown(qtbot, make_window):
    w = make_window(Settings(vcam=False), notice="Settings file x could not be read, so defaults are used.",
                    autostart=False)
    qtbot.waitUntil(w.ui.notice_bar.isVisible, timeout=TIMEOUT_MS)
    assert "defaults" in w.ui.notice_bar.label.text()


def test_the_dialog_offers_the_declared_backends_and_returns_the_choice(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    dlg = SettingsDialog(w.settings, w)
    assert items(dlg.backend) == BACKENDS and dlg.backend.currentData() == w.settings.backend
    dlg.backend.setCurrentIndex(dlg.backend.findData("onnx"))
    new = dlg.result_settings()
    dlg.reject()
    assert new.backend == "onnx" and w.settings.backend == "auto"


def test_applying_a_new_backend_restarts(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    gen = w.controller.generation
    w.apply_settings(w.settings.copy(backend="torch"))
    assert w.controller.generation == gen + 1 and load_settings()[0].backend == "torch"


def test_the_ai_label_switch_explains_itself(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    dlg = SettingsDialog(w.settings, w)
    assert dlg.ai_label.isChecked() and "AI" in dlg.ai_label.toolTip() and "recordings" in AI_LABEL_TEXT
    dlg.ai_label.setChecked(False)
    new = dlg.result_settings()
    dlg.reject()
    assert new.ai_label is False and w.settings.ai_label is True


def test_turning_the_ai_label_off_applies_without_a_restart(qtbot, live_window):
    w = live_window
    gen, pipeline = w.controller.generation, w.pipeline
    w.apply_settings(w.settings.copy(ai_label=False))
    assert w.controller.generation == gen and w.pipeline is pipeline and not pipeline.config.ai_label
    assert load_settings()[0].ai_label is False


def test_changing_where_the_model_runs_restarts_the_pipeline_with_a_notice(qtbot, live_window):
    w = live_window
    gen = w.controller.generation
    dlg = SettingsDialog(w.settings, w)
    dlg.model_on.setCurrentIndex(dlg.model_on.findData("remote"))
    w.apply_settings(dlg.result_settings())
    dlg.reject()
    assert w.controller.generation == gen + 1  # a restart, not a setting saved for later
    assert w.ui.notice_bar.label.text() == "Restarting the pipeline to apply: Model runs on."
    assert load_settings()[0].model_on == "remote"


def test_live_fields_reach_the_running_pipeline_without_a_restart(qtbot, live_window):
    w = live_window
    gen, pipeline = w.controller.generation, w.pipeline
    w.apply_settings(w.settings.copy(relative=False, stabilize=0.2, framing="manual", mirror_output=True))
    assert w.controller.generation == gen and w.pipeline is pipeline
    cfg = pipeline.config
    assert (cfg.relative, cfg.stabilize, cfg.framing, cfg.mirror_output) == (False, 0.2, "manual", True)
    assert w.ui.actions.mirror.isChecked()
    assert set(w.live_setters()) == {spec.name for spec in fields(Settings) if spec.metadata["apply"] == LIVE}


def _edit(widget) -> None:
    """Change an editor of the dialog to another value than the one it shows."""
    if isinstance(widget, QCheckBox):
        widget.setChecked(not widget.isChecked())
    elif isinstance(widget, QComboBox) and widget.isEditable():
        widget.setEditText("/videos/other.mp4")
    elif isinstance(widget, QComboBox):
        widget.setCurrentIndex((widget.currentIndex() + 1) % widget.count())
    elif isinstance(widget, QDoubleSpinBox):
        widget.setValue(widget.minimum() if widget.value() != widget.minimum() else widget.maximum())
    else:
        widget.setText("edited")


def test_the_dialog_has_an_editor_for_every_declared_field(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False)
    declared = [spec.name for spec in fields(Settings) if spec.metadata.get("group")]
    assert sorted(spec.name for specs in dialog_groups().values() for spec in specs) == sorted(declared)
    for name in declared:
        dlg = SettingsDialog(w.settings, w)
        _edit(getattr(dlg, name))
        changed = [spec.name for spec in changed_fields(w.settings, dlg.result_settings())]
        dlg.reject()
        assert changed == [name]
