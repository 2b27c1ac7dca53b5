"""The control window: avatar gallery, output and camera previews, toolbar, status bar, hotkeys.

Nothing slow runs on the GUI thread: the pipeline (capture, inference, virtual camera) runs on
its own threads, and loading or restarting it happens on the controller's worker thread. The
widgets are built by ``layout.build_window``; the keys are bound by the table in ``keymap``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QStandardPaths, Qt, QTimer
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QApplication, QDialog, QFileDialog, QMainWindow

from ..engine.neutral import AUTO, FIND_BEST, MANUAL
from ..errors import AvatarcamError
from ..imaging import IMAGE_SUFFIXES
from ..paths import CHECKPOINT_NAME
from ..pipeline import avatars as avatar_store
from ..pipeline.config import RESTART, changed_fields, label_of
from ..settings import OVERLAY_OPACITY_RANGE, Settings, checkpoint_path, save_settings
from .consent import CONSENT_TEXT
from .controller import PipelineController
from .gc_guard import GuiThreadCollector
from .hotkeys import HotkeyFilter, KeyMapDialog
from .layout import PAGE_CAMERA, PAGE_CHECKPOINT, PAGE_LIVE, build_window
from .panels import CHECKPOINT_FILTER, VIDEO_FILTER
from .settings_dialog import SettingsDialog

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ");;All files (*)"
MESSAGE_S = 6.0  # how long a message that matters holds the status line against the stats timer
SAVED_MESSAGE_S = 20.0  # "Saved <path>": long enough to read and copy the path
SAVE_DELAY_MS = 1000  # crop keys repeat: the settings file is written once they stop
VCAM_STATUS = {
    "on": "Choose 'avatarcam' as the camera in your video-call app",
    "off": "Virtual camera off: turn it on in the toolbar to use the avatar in a call",
    "unavailable": "Virtual camera unavailable: `avatarcam doctor` shows the fix",
    "error": "Virtual camera stopped after an error: turn it off and on again",
}


def _set_quietly(action: QAction, checked: bool) -> None:
    """Check or uncheck a toolbar button without running its slot."""
    action.blockSignals(True)
    action.setChecked(checked)
    action.blockSignals(False)


def model_text(st) -> str:
    """The model's time on the last frame, or why the model did not run on it."""
    if st.passthrough:
        return "passthrough"
    return f"{st.model_ms:.0f} ms" if st.face_found else "no face"


# How the neutral pose was chosen (PipelineStats.calibration), so "Calibrated" is never claimed
# before the user pressed X.
CALIBRATION_STATUS = {
    AUTO: "Auto-calibrated on your best pose match (press X to set it yourself).",
    FIND_BEST: "Finding your best pose (F to stop).",
    MANUAL: "Calibrated.",
}


def status_line(st, live_page: bool = True) -> str:
    """What the user should do now, never contradicting the virtual camera's state."""
    if st.camera_state != "running" and live_page:
        return f"Camera: {st.camera_state}"
    if not st.calibrated:
        return "Look into the camera, match the avatar's pose and press X to calibrate"
    how = CALIBRATION_STATUS.get(st.calibration, "Calibrated.")
    return f"{how} " + VCAM_STATUS.get(st.vcam_state, f"Virtual camera: {st.vcam_state}")


def stats_text(st, fps: float, remote=None) -> str:
    """The statistics overlay of the output preview (I key); ``fps`` counts animated frames;
    ``remote``: the animator's link figures (``link_stats()``) when the model runs on a worker."""
    link = []
    if remote is not None:
        state = f"{remote.state} ({remote.path})" if remote.state == "connected" and remote.path else remote.state
        link = [f"remote    {state}", f"rtt       {remote.rtt_ms:6.1f} ms", f"in flight {remote.in_flight:6d}"]
    return "\n".join([
        f"fps       {fps:6.1f}", f"model     {model_text(st):>9}", f"latency   {st.latency_ms:6.1f} ms",
        f"dropped   {st.dropped:6d}", f"frames    {st.frames_out:6d}", f"camera    {st.camera_state}",
        f"vcam      {st.vcam_state}", f"device    {st.device} {st.precision}",
        f"calibrated {'yes' if st.calibrated else 'no'}", *link])


def restart_notice(changed: list) -> str:
    """The one line shown when a settings change restarts the pipeline."""
    return f"Restarting the pipeline to apply: {', '.join(label_of(spec) for spec in changed)}."


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, *, notice: str | None = None, persist: bool = True,
                 autostart: bool = True, overrides: dict | None = None) -> None:
        super().__init__()
        saved = settings or Settings()
        self.session_overrides = dict(overrides or {})  # command-line options: this session only, never saved
        self._saved_values = {name: getattr(saved, name) for name in self.session_overrides}
        self.settings = saved.copy(**self.session_overrides)
        self.persist = persist
        self.pipeline = None
        self.avatars: list[avatar_store.Avatar] = []
        self.current_avatar = -1
        self.last_bundle = None
        self.last_error = ""
        self._closed = False
        self._overlay_source = None
        self.setWindowTitle("avatarcam")
        self.collector = GuiThreadCollector(self)
        self.collector.acquire()
        self.controller = PipelineController(self)
        self.ui = build_window(self, self.settings)
        self._connect()
        self.reload_avatars(keep=self.settings.avatar)
        if self.session_overrides.get("avatar") not in (None, self.current_avatar_path()):
            self.ui.notice_bar.show_message(f"--avatar {self.session_overrides['avatar']}: no such picture; using "
                                            f"{self.current_avatar_path() or 'the first bundled avatar'}", "error")
        self._filter = HotkeyFilter(self)
        QApplication.instance().installEventFilter(self._filter)
        self._timers()
        self.resize(1280, 760)
        if notice:
            self.ui.notice_bar.show_message(notice)
        if not self.settings.consent_seen:
            self.ui.consent_bar.show_message(CONSENT_TEXT, "info")
        if autostart:
            self.start_pipeline()

    def _timers(self) -> None:
        self.stats_timer = QTimer(self)
        self.stats_timer.setInterval(500)
        self.stats_timer.timeout.connect(self.update_stats)
        self.stats_timer.start()
        self.message_timer = QTimer(self)  # running: a message holds the status line
        self.message_timer.setSingleShot(True)
        self.message_timer.timeout.connect(self.update_stats)
        self.save_timer = QTimer(self)
        self.save_timer.setSingleShot(True)
        self.save_timer.setInterval(SAVE_DELAY_MS)
        self.save_timer.timeout.connect(self.save)

    def tell(self, text: str, seconds: float = MESSAGE_S) -> None:
        """A message that matters ("Calibrated", "Saved <path>"): it stays in the status line for
        ``seconds``; the stats timer does not overwrite it."""
        self.ui.status_state.setText(text)
        self.message_timer.start(int(seconds * 1000))

    def _connect(self) -> None:
        c, ui, act = self.controller, self.ui, self.ui.actions
        c.frameReady.connect(self._on_frame, Qt.ConnectionType.QueuedConnection)
        c.notice.connect(ui.notice_bar.show_message)
        c.busy.connect(self._on_busy)
        c.started.connect(self._on_started)
        c.failed.connect(self._on_failed)
        c.checkpointChecked.connect(self._on_checkpoint_checked)
        for action, slot in ((act.calibrate, self.calibrate), (act.add, self.add_avatar_dialog),
                             (act.settings, self.open_settings), (act.help, self.show_help)):
            action.triggered.connect(slot)
        for action, slot in ((act.vcam, self.set_vcam), (act.passthrough, self.set_passthrough),
                             (act.mirror, self.set_mirror_output), (act.record, self.set_recording)):
            action.toggled.connect(slot)
        ui.gallery.avatarChosen.connect(self.pick_avatar)
        ui.gallery.filesDropped.connect(self.add_avatar_files)
        ui.checkpoint_panel.locateRequested.connect(self.locate_checkpoint)
        ui.checkpoint_panel.downloaded.connect(self.use_checkpoint)
        ui.camera_panel.cameraChosen.connect(self.use_camera)
        ui.camera_panel.videoRequested.connect(self.choose_video)
        ui.consent_bar.dismissed.connect(self.consent_given)

    # pipeline lifecycle -------------------------------------------------------------------
    def current_avatar_path(self) -> str | None:
        if 0 <= self.current_avatar < len(self.avatars):
            return str(self.avatars[self.current_avatar].path)
        return None

    def start_pipeline(self) -> None:
        self.pipeline = None
        self.last_bundle = None
        _set_quietly(self.ui.actions.passthrough, False)
        _set_quietly(self.ui.actions.record, False)
        self.ui.output_view.set_placeholder("Starting...")
        self.controller.start(self.settings, self.current_avatar_path())

    def _on_busy(self, text: str) -> None:
        self.ui.status_state.setText(text)
        if self.ui.stack.currentIndex() == PAGE_CHECKPOINT:
            self.ui.checkpoint_panel.set_busy(True, text)
        self.ui.output_view.set_placeholder(text)

    def _on_started(self, pipeline, generation: int) -> None:
        if generation != self.controller.generation or self._closed:
            return
        self.pipeline = pipeline
        self.last_error = ""
        self.ui.stack.setCurrentIndex(PAGE_LIVE)
        self.ui.checkpoint_panel.set_busy(False)
        self.ui.status_state.setText("Running: look into the camera and press X to calibrate")
        if self.settings.mirror_output:
            pipeline.set_mirror_output(True)
        self.update_stats()

    def _on_failed(self, kind: str, message: str, generation: int) -> None:
        if generation != self.controller.generation or self._closed:
            return
        ui = self.ui
        self.pipeline = None
        self.last_error = message
        ui.status_state.setText(message)
        if kind == "checkpoint":
            ui.status_state.setText("The model checkpoint is missing or unusable: see the panel")
            ui.checkpoint_panel.set_detail(message, unusable=checkpoint_path(self.settings).is_file())
            ui.checkpoint_panel.set_busy(False)
            ui.stack.setCurrentIndex(PAGE_CHECKPOINT)
        elif kind == "camera":
            ui.status_state.setText("No camera picture: choose a camera")
            ui.camera_panel.set_detail(message)
            ui.stack.setCurrentIndex(PAGE_CAMERA)
            ui.camera_panel.probe()
        else:
            ui.output_view.set_placeholder(message)
            ui.notice_bar.show_message(message, "error")

    def _on_frame(self) -> None:
        bundle = self.controller.take_frame()
        if bundle is None or self._closed:
            return
        self.last_bundle = bundle
        self.ui.output_view.set_frame(bundle.output)
        self.ui.camera_view.set_camera(bundle.camera, bundle.crop_box, bundle.face_found)
        if bundle.avatar is not None and bundle.avatar is not self._overlay_source:
            self._overlay_source = bundle.avatar
            self.ui.camera_view.set_overlay(bundle.avatar)
        self.update_match()

    def update_match(self) -> None:
        """The pose-match meter (its colour, "current : best" with F, and F's confirmations)."""
        reading = self.pipeline.match_reading() if self.pipeline is not None else None
        self.ui.match_meter.show_reading(reading, self.settings.auto_calibrate_seconds)

    def toggle_find_best(self) -> None:
        """F: find the best neutral frame while on; off keeps the best one found."""
        if self.pipeline is not None:
            self.pipeline.set_find_best(not self.pipeline.find_best)
            self.update_match()

    def update_stats(self) -> None:
        labels, view = self.ui.status_labels, self.ui.output_view
        if self.pipeline is None:
            for label in labels.values():
                label.setText("")
            view.stats_text = ""
            return
        try:
            st = self.pipeline.stats()
        except Exception:  # noqa: BLE001 - the status bar must never break the window
            return
        fps = st.fps if st.passthrough else self.controller.animated_fps()
        labels["fps"].setText(f"{fps:5.1f} fps")
        model = model_text(st)
        labels["model"].setText(f"model {model}" if model.endswith(" ms") else model)
        labels["latency"].setText(f"latency {st.latency_ms:4.0f} ms")
        labels["device"].setText(f"{st.device} {st.precision}")
        labels["vcam"].setText(f"virtual camera: {st.vcam_state}")
        _set_quietly(self.ui.actions.vcam, st.vcam_state == "on")  # the button shows what is, not what was asked
        view.badge = " ".join(b for b in ("PASSTHROUGH" if st.passthrough else "",
                                          "REC" if self.ui.actions.record.isChecked() else "") if b)
        if not self.message_timer.isActive():
            self.ui.status_state.setText(status_line(st, self.ui.stack.currentIndex() == PAGE_LIVE))
        anim = self.pipeline.animator
        view.stats_text = stats_text(st, fps, anim.link_stats() if anim is not None else None)
        view.update()

    # settings -------------------------------------------------------------------------------
    def saved_settings(self) -> Settings:
        """What the settings file gets: the command-line overrides still in force are left out."""
        kept = {name: value for name, value in self._saved_values.items()
                if getattr(self.settings, name) == self.session_overrides[name]}
        return self.settings.copy(**kept)

    def save(self) -> None:
        self.save_timer.stop()
        if not self.persist:
            return
        problem = save_settings(self.saved_settings())
        if problem:
            self.ui.notice_bar.show_message(problem)

    def consent_given(self) -> None:
        """The first-run notice about consent was read: it is not shown again."""
        self.settings = self.settings.copy(consent_seen=True)
        self.save()

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dlg.result_settings())

    def apply_settings(self, new: Settings) -> None:
        """Save ``new``; hand each changed live field (``declare`` in pipeline/config.py) to the
        running pipeline or preview, and restart the pipeline, saying why, for the others."""
        old, self.settings = self.settings, new
        self.save()
        changed = changed_fields(old, new)
        setters = self.live_setters()
        restart = [spec for spec in changed if spec.metadata["apply"] == RESTART or spec.name not in setters]
        if restart and self.pipeline is not None:
            self.ui.notice_bar.show_message(restart_notice(restart), "info")
        if restart or self.pipeline is None:
            self.start_pipeline()  # the new settings carry the live fields too
            return
        for spec in changed:
            setters[spec.name](getattr(new, spec.name))

    def live_setters(self) -> dict[str, Callable[[Any], object]]:
        """How each live field reaches what runs: the pipeline's public setters (a running one
        only), the toolbar buttons (they show the state), the previews; read-when-used fields need none."""
        ui, act = self.ui, self.ui.actions
        views = {"mirror_preview": (ui.camera_view, "mirrored"), "overlay": (ui.camera_view, "show_overlay"),
                 "overlay_opacity": (ui.camera_view, "overlay_opacity"), "show_stats": (ui.output_view, "show_stats")}
        setters: dict[str, Callable[[Any], object]] = {
            name: (lambda value, view=view, attr=attr: (setattr(view, attr, value), view.update()))
            for name, (view, attr) in views.items()}
        setters.update(record_dir=lambda _: None, consent_seen=lambda _: None, vcam=act.vcam.setChecked,
                       mirror_output=act.mirror.setChecked, passthrough=act.passthrough.setChecked,
                       avatar=self._show_avatar)
        p = self.pipeline
        if p is not None:
            setters.update(framing=p.set_framing_mode, relative=p.set_relative, adapt_scale=p.set_adapt_scale,
                           stabilize=p.set_stabilize, ai_label=p.set_ai_label,
                           output_layout=p.set_output_layout, avatar_detail=p.set_avatar_detail,
                           auto_calibrate_seconds=p.set_auto_calibrate_seconds,
                           zoom=lambda zoom: p.zoom_crop(zoom / p.crop_zoom),
                           offset=lambda to: p.move_crop(to[0] - p.crop_offset[0], to[1] - p.crop_offset[1]))
        return setters

    def _show_avatar(self, path: str | None) -> None:
        self.reload_avatars(keep=path)
        self.pick_avatar(self.current_avatar)

    # checkpoint / camera panels -------------------------------------------------------------
    def locate_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Locate {CHECKPOINT_NAME}", "", CHECKPOINT_FILTER)
        if path:
            self.use_checkpoint(path)

    def use_checkpoint(self, path: str) -> None:
        """Validate a checkpoint by loading it (worker thread); on success save it and start."""
        self.ui.checkpoint_panel.set_busy(True, f"Checking {Path(path).name}...")
        self.controller.check_checkpoint(path, self.settings)

    def _on_checkpoint_checked(self, path: str, error: str) -> None:
        if self._closed:
            return
        panel = self.ui.checkpoint_panel
        if error:
            panel.set_busy(False)
            panel.set_detail(error, unusable=True)
            return
        panel.set_busy(False, "Loaded. Starting...")
        self.settings = self.settings.copy(checkpoint=str(Path(path).expanduser().resolve()))
        self.save()
        self.start_pipeline()

    def use_camera(self, value: str) -> None:
        self.settings = self.settings.copy(camera=value)
        self.save()
        self.ui.stack.setCurrentIndex(PAGE_LIVE)
        self.start_pipeline()

    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use a video file as the camera", "", VIDEO_FILTER)
        if path:
            self.use_camera(path)

    # avatars ------------------------------------------------------------------------------
    def reload_avatars(self, keep: str | None = None) -> None:
        keep = keep if keep is not None else (self.current_avatar_path() or "")
        self.avatars = avatar_store.list_avatars()
        extra = self.session_overrides.get("avatar")  # --avatar: any picture, in the gallery for this session
        if extra and Path(extra).is_file() and all(a.path != Path(extra) for a in self.avatars):
            self.avatars.append(avatar_store.Avatar(Path(extra), False))
        paths = [str(a.path) for a in self.avatars]
        self.current_avatar = paths.index(keep) if keep in paths else (0 if paths else -1)
        self.ui.gallery.set_avatars(self.avatars, self.current_avatar)

    def pick_avatar(self, index: int) -> None:
        if not 0 <= index < len(self.avatars):
            return
        self.current_avatar = index
        self.ui.gallery.set_current(index)
        path = str(self.avatars[index].path)
        self.settings = self.settings.copy(avatar=path)
        self.save()
        if self.pipeline is not None:
            try:
                self.pipeline.set_avatar(path)
            except AvatarcamError as err:
                self.ui.notice_bar.show_message(str(err), "error")
        self.tell(f"Avatar {index + 1}: {self.avatars[index].name}")

    def step_avatar(self, step: int) -> None:
        """The previous (-1) or next (+1) avatar of the gallery, wrapping around."""
        if self.avatars:
            self.pick_avatar((self.current_avatar + step) % len(self.avatars))

    def reload_avatar_folders(self) -> None:
        before = self.current_avatar_path()
        self.reload_avatars()
        if self.current_avatar_path() != before:
            self.pick_avatar(self.current_avatar)
        self.tell(f"{len(self.avatars)} avatars")

    def add_avatar_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add avatar pictures", "", IMAGE_FILTER)
        if files:
            self.add_avatar_files(files)

    def add_avatar_files(self, files: list[str]) -> list[Path]:
        """Copy pictures into the user's avatar folder; shows one message for the bad ones."""
        added, problems = [], []
        for f in files:
            try:
                added.append(avatar_store.add_avatar(f))
            except AvatarcamError as err:
                problems.append(str(err))
        if added:
            self.reload_avatars(keep=str(added[-1]))
            self.pick_avatar(self.current_avatar)
        if problems:
            self.ui.notice_bar.show_message("Not added: " + " ".join(problems), "error")
        elif added:
            self.ui.notice_bar.show_message(f"Added {', '.join(p.name for p in added)} to {added[0].parent}", "info")
        return added

    # face crop (W/S/U/H/J/K/Shift+Z) ----------------------------------------------------------
    def zoom_crop(self, factor: float) -> None:
        if self.pipeline is not None:
            self.pipeline.zoom_crop(factor)
            self._crop_changed()

    def move_crop(self, dx: float, dy: float) -> None:
        if self.pipeline is not None:
            self.pipeline.move_crop(dx, dy)
            self._crop_changed()

    def reset_crop(self) -> None:
        if self.pipeline is not None:
            self.pipeline.reset_crop()
            self._crop_changed()

    def _crop_changed(self) -> None:
        """Say where the crop is now, and keep it for the next start (saved once the keys stop)."""
        zoom, (dx, dy) = self.pipeline.crop_zoom, self.pipeline.crop_offset
        self.settings = self.settings.copy(zoom=round(zoom, 4), offset=(round(dx, 4), round(dy, 4)))
        self.save_timer.start()
        self.tell(f"Face crop: zoom {zoom * 100:.0f} %, offset {dx:+.2f} x {dy:+.2f} (Shift+Z resets)")

    # preview toggles (O/Z/C/R/I) ------------------------------------------------------------
    def toggle_overlay(self) -> None:
        view = self.ui.camera_view
        view.show_overlay = not view.show_overlay
        self.settings = self.settings.copy(overlay=view.show_overlay)
        view.update()

    def change_overlay_opacity(self, delta: float) -> None:
        view = self.ui.camera_view
        low, high = OVERLAY_OPACITY_RANGE
        view.overlay_opacity = min(high, max(low, round(view.overlay_opacity + delta, 2)))
        view.show_overlay = True
        self.settings = self.settings.copy(overlay_opacity=view.overlay_opacity, overlay=True)
        view.update()

    def toggle_mirror_preview(self) -> None:
        view = self.ui.camera_view
        view.mirrored = not view.mirrored
        self.settings = self.settings.copy(mirror_preview=view.mirrored)
        view.update()

    def toggle_stats(self) -> None:
        view = self.ui.output_view
        view.show_stats = not view.show_stats
        self.settings = self.settings.copy(show_stats=view.show_stats)
        view.update()

    def toggle_mirror_output(self) -> None:
        self.ui.actions.mirror.toggle()

    def toggle_passthrough(self) -> None:
        self.ui.actions.passthrough.toggle()

    # toolbar actions --------------------------------------------------------------------------
    def calibrate(self) -> None:
        if self.pipeline is not None:
            self.pipeline.calibrate()
            self.tell("Calibrated: this is your neutral pose")

    def set_vcam(self, on: bool) -> None:
        self.settings = self.settings.copy(vcam=bool(on))
        self.save()
        if self.pipeline is None:
            return
        problem = self.pipeline.set_vcam_enabled(bool(on))
        if problem:
            self.ui.notice_bar.show_message(problem)
            _set_quietly(self.ui.actions.vcam, False)
        self.update_stats()

    def set_passthrough(self, on: bool) -> None:
        if self.pipeline is not None:
            self.pipeline.set_passthrough(bool(on))
        self.update_stats()

    def set_mirror_output(self, on: bool) -> None:
        self.settings = self.settings.copy(mirror_output=bool(on))
        if self.pipeline is not None:
            self.pipeline.set_mirror_output(bool(on))

    def record_path(self) -> Path:
        folder = self.settings.record_dir or QStandardPaths.writableLocation(
            QStandardPaths.StandardLocation.MoviesLocation) or str(Path.home())
        return Path(folder) / time.strftime("avatarcam-%Y%m%d-%H%M%S.mp4")

    def set_recording(self, on: bool) -> None:
        if self.pipeline is None:
            _set_quietly(self.ui.actions.record, False)
            return
        try:
            if on:
                path = self.record_path()
                path.parent.mkdir(parents=True, exist_ok=True)
                self.pipeline.start_recording(str(path))
                self.tell(f"Recording to {path}", SAVED_MESSAGE_S)
            else:
                saved = self.pipeline.stop_recording()
                if saved:
                    self.tell(f"Saved {saved}", SAVED_MESSAGE_S)
                    self.ui.notice_bar.show_message(f"The recording was saved to {saved}", "info")
        except (AvatarcamError, OSError) as err:
            _set_quietly(self.ui.actions.record, False)
            self.ui.notice_bar.show_message(str(err), "error")

    def show_help(self) -> None:
        KeyMapDialog(self).exec()

    # closing ----------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the pipeline and every worker thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.stats_timer.stop()
        self.message_timer.stop()
        QApplication.instance().removeEventFilter(self._filter)
        self.pipeline = None
        self.controller.shutdown()
        self.ui.camera_panel.prober.join(2.0)
        self.ui.checkpoint_panel.download_widget.shutdown()
        self.save()
        self.collector.release()
