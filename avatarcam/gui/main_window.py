"""The control window: avatar gallery, output and camera previews, toolbar, status bar, hotkeys.

Nothing slow runs on the GUI thread: the pipeline (capture, inference, virtual camera) runs on
its own threads, and loading or restarting it happens on the controller's worker thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import QEvent, QObject, QStandardPaths, Qt, QTimer
from PyQt6.QtGui import QAction, QKeyEvent
from PyQt6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from .. import avatars as avatar_store
from ..errors import AvatarcamError
from ..imaging import IMAGE_SUFFIXES
from ..paths import CHECKPOINT_NAME
from ..settings import Settings, save_settings
from . import keymap
from .controller import PipelineController
from .gallery import Gallery
from .panels import CHECKPOINT_FILTER, VIDEO_FILTER, CameraPanel, MissingCheckpointPanel, NoticeBar
from .previews import CameraView, OutputView
from .settings_dialog import SettingsDialog

PAGE_LIVE, PAGE_CHECKPOINT, PAGE_CAMERA = 0, 1, 2
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ");;All files (*)"
TOGGLE_ACTIONS = {"calibrate", "pick_avatar", "overlay", "mirror_preview", "mirror_output", "passthrough", "stats",
                  "reload_avatars", "help", "quit", "reset_crop"}  # no key auto-repeat for these
RESTART_FIELDS = ("camera", "capture_size", "checkpoint", "device", "precision", "framing", "detector", "relative",
                  "adapt_scale", "stabilize", "vcam_size", "vcam_fps")


class _HotkeyFilter(QObject):
    """Sends key presses anywhere inside the window to the key map (text fields excepted)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if event.type() != QEvent.Type.KeyPress or not isinstance(obj, QWidget):
            return False
        if obj.window() is not self.window or QApplication.activeModalWidget() is not None:
            return False
        if isinstance(obj, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)) or \
                (isinstance(obj, QComboBox) and obj.isEditable()):
            return False
        return self.window.handle_key(event)


class KeyMapDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("avatarcam keys")
        rows = keymap.help_rows()
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Key", "Action"])
        table.verticalHeader().hide()
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        for i, (keys, text) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(keys))
            table.setItem(i, 1, QTableWidgetItem(text))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        self.resize(720, 640)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, *, notice: str | None = None, persist: bool = True,
                 autostart: bool = True) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.persist = persist
        self.pipeline = None
        self.avatars: list[avatar_store.Avatar] = []
        self.current_avatar = -1
        self.last_bundle = None
        self.last_error = ""
        self._closed = False
        self._overlay_source = None
        self.setWindowTitle("avatarcam")
        self.setAcceptDrops(False)
        self.controller = PipelineController(self)
        self._build()
        self._connect()
        self.reload_avatars(keep=self.settings.avatar)
        self._filter = _HotkeyFilter(self)
        QApplication.instance().installEventFilter(self._filter)
        self.stats_timer = QTimer(self)
        self.stats_timer.setInterval(500)
        self.stats_timer.timeout.connect(self.update_stats)
        self.stats_timer.start()
        self.resize(1280, 760)
        if notice:
            self.notice_bar.show_message(notice)
        if autostart:
            self.start_pipeline()

    # construction -------------------------------------------------------------------------
    def _action(self, text: str, tip: str, slot, *, key_action: str | None = None, checkable: bool = False,
                checked: bool = False) -> QAction:
        keys = keymap.keys_of(key_action) if key_action else ""
        action = QAction(text, self)
        action.setToolTip(f"{tip} ({keys})" if keys else tip)
        action.setCheckable(checkable)
        if checkable:
            action.setChecked(checked)
            action.toggled.connect(slot)
        else:
            action.triggered.connect(slot)
        return action

    def _build(self) -> None:
        s = self.settings
        tb = QToolBar("Controls")
        tb.setMovable(False)
        tb.setFloatable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(tb)
        self.act_calibrate = self._action("Calibrate", "Take your current face as the neutral pose: look straight, "
                                          "match the avatar's pose, then calibrate", self.calibrate,
                                          key_action="calibrate")
        self.act_vcam = self._action("Virtual camera", "Send the output to the virtual camera 'avatarcam'",
                                     self.set_vcam, checkable=True, checked=s.vcam)
        self.act_passthrough = self._action("Passthrough", "Send your real camera picture instead of the avatar",
                                            self.set_passthrough, key_action="passthrough", checkable=True)
        self.act_mirror = self._action("Mirror", "Mirror the output (what the virtual camera sends)",
                                       self.set_mirror_output, key_action="mirror_output", checkable=True,
                                       checked=s.mirror_output)
        self.act_record = self._action("Record", "Record the output to an .mp4 file", self.set_recording,
                                       checkable=True)
        self.act_add = self._action("Add avatar...", "Add a portrait picture (or drop one on the gallery)",
                                    self.add_avatar_dialog)
        self.act_settings = self._action("Settings...", "Camera, model, framing and virtual-camera settings",
                                         self.open_settings)
        self.act_help = self._action("Keys", "Show the key map", self.show_help, key_action="help")
        for a in (self.act_calibrate, None, self.act_vcam, self.act_passthrough, self.act_mirror, self.act_record,
                  None, self.act_add, self.act_settings, self.act_help):
            if a is None:
                tb.addSeparator()
            else:
                tb.addAction(a)
        self.act_calibrate.setObjectName("calibrate")
        btn = tb.widgetForAction(self.act_calibrate)
        if btn is not None:
            btn.setObjectName("primaryTool")

        self.gallery = Gallery()
        self.output_view = OutputView()
        self.output_view.show_stats = s.show_stats
        self.camera_view = CameraView()
        self.camera_view.mirrored = s.mirror_preview
        self.camera_view.show_overlay = s.overlay
        self.camera_view.overlay_opacity = s.overlay_opacity
        self.camera_view.setToolTip("Your camera. The rectangle is the face crop the model sees "
                                    "(W/S zoom, U/H/J/K move, Shift+Z reset). O shows the avatar over it.")
        self.output_view.setToolTip("Exactly what the virtual camera sends")
        hint = QLabel("Look straight into the camera with a relaxed face, match the avatar's pose "
                      "(O shows it over your face), then press <b>X</b> to calibrate.")
        hint.setWordWrap(True)
        hint.setObjectName("hint")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.camera_view, 1)
        rl.addWidget(hint)
        self.hint = hint
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.output_view)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        live = QWidget()
        ll = QVBoxLayout(live)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(split, 1)

        self.checkpoint_panel = MissingCheckpointPanel()
        self.camera_panel = CameraPanel()
        self.stack = QStackedWidget()
        self.stack.addWidget(live)
        self.stack.addWidget(self.checkpoint_panel)
        self.stack.addWidget(self.camera_panel)
        self.notice_bar = NoticeBar()

        center = QWidget()
        cl = QVBoxLayout(center)
        cl.setContentsMargins(8, 6, 8, 4)
        cl.addWidget(self.notice_bar)
        row = QHBoxLayout()
        row.addWidget(self.gallery)
        row.addWidget(self.stack, 1)
        cl.addLayout(row, 1)
        self.setCentralWidget(center)

        sb = self.statusBar()
        self.status_state = QLabel("Starting...")
        sb.addWidget(self.status_state, 1)
        self.status_labels: dict[str, QLabel] = {}
        for key, tip in (("fps", "Frames per second sent to the virtual camera"),
                         ("model", "Model time per frame"), ("latency", "Camera-to-output latency"),
                         ("device", "Inference device and precision"), ("vcam", "Virtual camera state")):
            label = QLabel("")
            label.setObjectName("statusField")
            label.setToolTip(tip)
            sb.addPermanentWidget(label)
            self.status_labels[key] = label

    def _connect(self) -> None:
        c = self.controller
        c.frameReady.connect(self._on_frame, Qt.ConnectionType.QueuedConnection)
        c.notice.connect(self._on_notice)
        c.busy.connect(self._on_busy)
        c.started.connect(self._on_started)
        c.failed.connect(self._on_failed)
        c.checkpointChecked.connect(self._on_checkpoint_checked)
        self.gallery.avatarChosen.connect(self.pick_avatar)
        self.gallery.filesDropped.connect(self.add_avatar_files)
        self.checkpoint_panel.locateRequested.connect(self.locate_checkpoint)
        self.checkpoint_panel.downloaded.connect(self.use_checkpoint)
        self.camera_panel.cameraChosen.connect(self.use_camera)
        self.camera_panel.videoRequested.connect(self.choose_video)

    # pipeline lifecycle -------------------------------------------------------------------
    def current_avatar_path(self) -> str | None:
        if 0 <= self.current_avatar < len(self.avatars):
            return str(self.avatars[self.current_avatar].path)
        return None

    def start_pipeline(self) -> None:
        self.pipeline = None
        self.last_bundle = None
        self.act_passthrough.blockSignals(True)
        self.act_passthrough.setChecked(False)
        self.act_passthrough.blockSignals(False)
        self._stop_record_ui()
        self.output_view.set_placeholder("Starting...")
        self.controller.start(self.settings, self.current_avatar_path())

    def _on_busy(self, text: str) -> None:
        self.status_state.setText(text)
        if self.stack.currentIndex() == PAGE_CHECKPOINT:
            self.checkpoint_panel.set_busy(True, text)
        self.output_view.set_placeholder(text)

    def _on_started(self, pipeline, generation: int) -> None:
        if generation != self.controller.generation or self._closed:
            return
        self.pipeline = pipeline
        self.last_error = ""
        self.stack.setCurrentIndex(PAGE_LIVE)
        self.checkpoint_panel.set_busy(False)
        self.status_state.setText("Running: look into the camera and press X to calibrate")
        if self.settings.mirror_output:
            pipeline.set_mirror_output(True)
        self.update_stats()

    def _on_failed(self, kind: str, message: str, generation: int) -> None:
        if generation != self.controller.generation or self._closed:
            return
        self.pipeline = None
        self.last_error = message
        self.status_state.setText(message)
        if kind == "checkpoint":
            self.status_state.setText("The model checkpoint is missing or unusable: see the panel")
            self.checkpoint_panel.set_detail(message)
            self.checkpoint_panel.set_busy(False)
            self.stack.setCurrentIndex(PAGE_CHECKPOINT)
        elif kind == "camera":
            self.status_state.setText("No camera picture: choose a camera")
            self.camera_panel.set_detail(message)
            self.stack.setCurrentIndex(PAGE_CAMERA)
            self.camera_panel.probe()
        else:
            self.output_view.set_placeholder(message)
            self.notice_bar.show_message(message, "error")

    def _on_notice(self, text: str) -> None:
        self.notice_bar.show_message(text)

    def _on_frame(self) -> None:
        bundle = self.controller.take_frame()
        if bundle is None or self._closed:
            return
        self.last_bundle = bundle
        self.output_view.set_frame(bundle.output)
        self.camera_view.set_camera(bundle.camera, bundle.crop_box, bundle.face_found)
        avatar = getattr(bundle, "avatar", None)
        if avatar is not None and avatar is not self._overlay_source:
            self._overlay_source = avatar
            self.camera_view.set_overlay(avatar)

    def update_stats(self) -> None:
        p = self.pipeline
        L = self.status_labels
        if p is None:
            for label in L.values():
                label.setText("")
            self.output_view.stats_text = ""
            return
        try:
            st = p.stats()
        except Exception:  # noqa: BLE001 - the status bar must never break the window
            return
        L["fps"].setText(f"{st.fps:5.1f} fps")
        L["model"].setText(f"model {st.model_ms:4.0f} ms")
        L["latency"].setText(f"latency {st.latency_ms:4.0f} ms")
        L["device"].setText(f"{st.device} {st.precision}")
        L["vcam"].setText(f"virtual camera: {st.vcam_state}")
        self.output_view.badge = " ".join(b for b in ("PASSTHROUGH" if st.passthrough else "",
                                                      "REC" if self.act_record.isChecked() else "") if b)
        if st.camera_state not in ("running",) and self.stack.currentIndex() == PAGE_LIVE:
            self.status_state.setText(f"Camera: {st.camera_state}")
        elif not st.calibrated:
            self.status_state.setText("Look into the camera, match the avatar's pose and press X to calibrate")
        else:
            self.status_state.setText("Calibrated. Choose 'avatarcam' as the camera in your video-call app")
        self.output_view.stats_text = "\n".join([
            f"fps       {st.fps:6.1f}", f"model     {st.model_ms:6.1f} ms", f"latency   {st.latency_ms:6.1f} ms",
            f"dropped   {st.dropped:6d}", f"frames    {st.frames_out:6d}", f"camera    {st.camera_state}",
            f"vcam      {st.vcam_state}", f"device    {st.device} {st.precision}",
            f"calibrated {'yes' if st.calibrated else 'no'}"])
        self.output_view.update()

    # settings -------------------------------------------------------------------------------
    def save(self) -> None:
        if not self.persist:
            return
        problem = save_settings(self.settings)
        if problem:
            self.notice_bar.show_message(problem)

    def open_settings(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dlg.result_settings())

    def apply_settings(self, new: Settings) -> None:
        old, self.settings = self.settings, new
        self.save()
        if any(getattr(old, f) != getattr(new, f) for f in RESTART_FIELDS) or self.pipeline is None:
            self.start_pipeline()
            return
        p = self.pipeline
        if old.zoom != new.zoom:
            p.framing.zoom = new.zoom
        if old.vcam != new.vcam:
            self.act_vcam.setChecked(new.vcam)

    # checkpoint / camera panels -------------------------------------------------------------
    def locate_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Locate {CHECKPOINT_NAME}", "", CHECKPOINT_FILTER)
        if path:
            self.use_checkpoint(path)

    def use_checkpoint(self, path: str) -> None:
        """Validate a checkpoint by loading it (worker thread); on success save it and start."""
        self.checkpoint_panel.set_busy(True, f"Checking {Path(path).name}...")
        self.controller.check_checkpoint(path, self.settings)

    def _on_checkpoint_checked(self, path: str, error: str) -> None:
        if self._closed:
            return
        if error:
            self.checkpoint_panel.set_busy(False, error)
            self.checkpoint_panel.set_detail(error)
            return
        self.checkpoint_panel.set_busy(False, "Loaded. Starting...")
        self.settings = self.settings.copy(checkpoint=str(Path(path).expanduser().resolve()))
        self.save()
        self.start_pipeline()

    def use_camera(self, value: str) -> None:
        self.settings = self.settings.copy(camera=value)
        self.save()
        self.stack.setCurrentIndex(PAGE_LIVE)
        self.start_pipeline()

    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use a video file as the camera", "", VIDEO_FILTER)
        if path:
            self.use_camera(path)

    # avatars ------------------------------------------------------------------------------
    def reload_avatars(self, keep: str | None = None) -> None:
        keep = keep if keep is not None else (self.current_avatar_path() or "")
        self.avatars = avatar_store.list_avatars()
        paths = [str(a.path) for a in self.avatars]
        self.current_avatar = paths.index(keep) if keep in paths else (0 if paths else -1)
        self.gallery.set_avatars(self.avatars, self.current_avatar)

    def pick_avatar(self, index: int) -> None:
        if not 0 <= index < len(self.avatars):
            return
        self.current_avatar = index
        self.gallery.set_current(index)
        path = str(self.avatars[index].path)
        self.settings = self.settings.copy(avatar=path)
        self.save()
        if self.pipeline is not None:
            try:
                self.pipeline.set_avatar(path)
            except AvatarcamError as err:
                self.notice_bar.show_message(str(err), "error")
        self.status_state.setText(f"Avatar {index + 1}: {self.avatars[index].name}")

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
            self.notice_bar.show_message("Not added: " + " ".join(problems), "error")
        elif added:
            self.notice_bar.show_message(f"Added {', '.join(p.name for p in added)} to {added[0].parent}", "info")
        return added

    # hotkeys ------------------------------------------------------------------------------
    def handle_key(self, event: QKeyEvent) -> bool:
        hk = keymap.lookup(event.key(), event.modifiers())
        if hk is None:
            return False
        if event.isAutoRepeat() and hk.action in TOGGLE_ACTIONS:
            return True
        getattr(self, f"hk_{hk.action}")(hk.arg)
        return True

    def hk_calibrate(self, _=None) -> None:
        self.calibrate()

    def hk_pick_avatar(self, n: int) -> None:
        self.pick_avatar(n - 1)

    def hk_prev_avatar(self, _=None) -> None:
        if self.avatars:
            self.pick_avatar((self.current_avatar - 1) % len(self.avatars))

    def hk_next_avatar(self, _=None) -> None:
        if self.avatars:
            self.pick_avatar((self.current_avatar + 1) % len(self.avatars))

    def hk_zoom(self, factor: float) -> None:
        if self.pipeline is not None:
            self.pipeline.framing.zoom_by(factor)

    def hk_move(self, direction, step: float = keymap.MOVE_STEP) -> None:
        if self.pipeline is not None:
            self.pipeline.framing.move(direction[0] * step, direction[1] * step)

    def hk_move_fine(self, direction) -> None:
        self.hk_move(direction, keymap.FINE_MOVE_STEP)

    def hk_reset_crop(self, _=None) -> None:
        if self.pipeline is not None:
            self.pipeline.framing.reset()

    def hk_overlay(self, _=None) -> None:
        self.camera_view.show_overlay = not self.camera_view.show_overlay
        self.settings = self.settings.copy(overlay=self.camera_view.show_overlay)
        self.camera_view.update()

    def hk_overlay_opacity(self, delta: float) -> None:
        value = min(0.95, max(0.05, round(self.camera_view.overlay_opacity + delta, 2)))
        self.camera_view.overlay_opacity = value
        self.camera_view.show_overlay = True
        self.settings = self.settings.copy(overlay_opacity=value, overlay=True)
        self.camera_view.update()

    def hk_mirror_preview(self, _=None) -> None:
        self.camera_view.mirrored = not self.camera_view.mirrored
        self.settings = self.settings.copy(mirror_preview=self.camera_view.mirrored)
        self.camera_view.update()

    def hk_mirror_output(self, _=None) -> None:
        self.act_mirror.toggle()

    def hk_passthrough(self, _=None) -> None:
        self.act_passthrough.toggle()

    def hk_stats(self, _=None) -> None:
        self.output_view.show_stats = not self.output_view.show_stats
        self.settings = self.settings.copy(show_stats=self.output_view.show_stats)
        self.output_view.update()

    def hk_reload_avatars(self, _=None) -> None:
        before = self.current_avatar_path()
        self.reload_avatars()
        if self.current_avatar_path() != before:
            self.pick_avatar(self.current_avatar)
        self.status_state.setText(f"{len(self.avatars)} avatars")

    def hk_help(self, _=None) -> None:
        self.show_help()

    def hk_quit(self, _=None) -> None:
        self.close()

    # toolbar actions --------------------------------------------------------------------------
    def calibrate(self) -> None:
        if self.pipeline is not None:
            self.pipeline.calibrate()
            self.status_state.setText("Calibrated: this is your neutral pose")

    def set_vcam(self, on: bool) -> None:
        self.settings = self.settings.copy(vcam=bool(on))
        self.save()
        if self.pipeline is None:
            return
        problem = self.pipeline.set_vcam_enabled(bool(on))
        if problem:
            self.notice_bar.show_message(problem)
            self.act_vcam.blockSignals(True)
            self.act_vcam.setChecked(False)
            self.act_vcam.blockSignals(False)
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

    def _stop_record_ui(self) -> None:
        self.act_record.blockSignals(True)
        self.act_record.setChecked(False)
        self.act_record.blockSignals(False)

    def set_recording(self, on: bool) -> None:
        if self.pipeline is None:
            self._stop_record_ui()
            return
        try:
            if on:
                path = self.record_path()
                path.parent.mkdir(parents=True, exist_ok=True)
                self.pipeline.start_recording(str(path))
                self.status_state.setText(f"Recording to {path}")
            else:
                saved = self.pipeline.stop_recording()
                if saved:
                    self.status_state.setText(f"Saved {saved}")
        except (AvatarcamError, OSError) as err:
            self._stop_record_ui()
            self.notice_bar.show_message(str(err), "error")

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
        QApplication.instance().removeEventFilter(self._filter)
        self.pipeline = None
        self.controller.shutdown()
        self.camera_panel.prober.join(2.0)
        download = self.checkpoint_panel.download_widget
        if download is not None and hasattr(download, "shutdown"):
            download.shutdown()
        self.save()
