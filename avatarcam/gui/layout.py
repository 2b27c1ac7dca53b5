"""The main window's widgets: built here, referenced through one ``WindowWidgets`` dataclass.

Only construction and placement live here; the window connects the signals and owns behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from PyQt6.QtCore import QSize, Qt
from PyQt6.QtGui import QAction, QPainter
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ..settings import Settings
from . import keymap
from .consent import ConsentBar
from .gallery import Gallery
from .match_meter import MatchMeter
from .panels import CameraPanel, MissingCheckpointPanel, NoticeStack
from .previews import CameraView, OutputView

PAGE_LIVE, PAGE_CHECKPOINT, PAGE_CAMERA = 0, 1, 2  # the pages of WindowWidgets.stack, in this order
FACE_BOX_LEGEND = ("\nGreen rectangle: face found, the avatar follows it.\n"
                   "Orange rectangle: no face found in this frame; the output holds its last picture.")
STATUS_FIELDS = (("fps", "Animated frames per second (frames without a face are held, not counted)"),
                 ("model", "Model time per frame, or \"no face\" when the last frame had none"),
                 ("latency", "Camera-to-output latency"), ("device", "Inference device and precision"),
                 ("vcam", "Virtual camera state"))
# (attribute, text, tooltip, hotkey action, checkable); None = a separator
TOOLBAR = (
    ("calibrate", "Calibrate", "Take your current face as the neutral pose: look straight, match the avatar's "
     "pose, then calibrate", "calibrate", False),
    None,
    ("vcam", "Virtual camera", "Send the output to the virtual camera 'avatarcam'", None, True),
    ("passthrough", "Passthrough", "Send your real camera picture instead of the avatar", "passthrough", True),
    ("mirror", "Mirror", "Mirror the output (what the virtual camera sends)", "mirror_output", True),
    ("record", "Record", "Record the output to an .mp4 file", None, True),
    None,
    ("add", "Add avatar...", "Add a portrait picture (or drop one on the gallery)", None, False),
    ("settings", "Settings...", "Camera, model, framing and virtual-camera settings", None, False),
    ("help", "Keys", "Show the key map", "help", False),
)


@dataclass
class ToolbarActions:
    calibrate: QAction
    vcam: QAction
    passthrough: QAction
    mirror: QAction
    record: QAction
    add: QAction
    settings: QAction
    help: QAction


@dataclass
class WindowWidgets:
    actions: ToolbarActions
    gallery: Gallery
    output_view: OutputView
    camera_view: CameraView
    hint: QLabel
    stack: QStackedWidget  # PAGE_LIVE, PAGE_CHECKPOINT, PAGE_CAMERA
    checkpoint_panel: MissingCheckpointPanel
    camera_panel: CameraPanel
    notice_bar: NoticeStack  # the banners, stacked: a new one never hides an older one
    consent_bar: ConsentBar  # the first-run notice about consent
    status_state: QLabel
    status_labels: dict[str, QLabel]  # STATUS_FIELDS keys
    match_meter: MatchMeter | None = None  # the pose match, under the camera preview


def _toolbar(window: QMainWindow) -> ToolbarActions:
    bar = QToolBar("Controls")
    bar.setMovable(False)
    bar.setFloatable(False)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(bar)
    actions: dict[str, QAction] = {}
    for entry in TOOLBAR:
        if entry is None:
            bar.addSeparator()
            continue
        name, text, tip, key_action, checkable = entry
        keys = keymap.keys_of(key_action) if key_action else ""
        action = QAction(text, window)
        action.setToolTip(f"{tip} ({keys})" if keys else tip)
        action.setCheckable(checkable)
        bar.addAction(action)
        actions[name] = action
    actions["calibrate"].setObjectName("calibrate")
    button = bar.widgetForAction(actions["calibrate"])
    if button is not None:
        button.setObjectName("primaryTool")  # styled as the main action (app.STYLE)
    return ToolbarActions(**actions)


def _previews(settings: Settings) -> tuple[OutputView, CameraView, QLabel]:
    output_view = OutputView()
    output_view.show_stats = settings.show_stats
    output_view.setToolTip("Exactly what the virtual camera sends")
    camera_view = CameraView()
    camera_view.mirrored = settings.mirror_preview
    camera_view.show_overlay = settings.overlay
    camera_view.overlay_opacity = settings.overlay_opacity
    camera_view.setToolTip("Your camera. The rectangle is the face crop the model sees "
                           "(W/S zoom, U/H/J/K move, Shift+Z reset). O shows the avatar over it.")
    hint = QLabel("Match the avatar's pose with a relaxed face (<b>O</b> shows it over yours; the meter says how "
                  "well). Until you press <b>X</b>, your best match of the first seconds is the neutral pose; "
                  "<b>F</b> keeps searching for a better one.")
    hint.setWordWrap(True)
    hint.setObjectName("hint")
    return output_view, camera_view, hint


def _live_page(output_view: OutputView, camera_view: CameraView, hint: QLabel, meter: MatchMeter) -> QWidget:
    right = QWidget()
    column = QVBoxLayout(right)
    column.setContentsMargins(0, 0, 0, 0)
    column.addWidget(camera_view, 1)
    column.addWidget(meter)
    column.addWidget(hint)
    split = QSplitter(Qt.Orientation.Horizontal)
    split.addWidget(output_view)
    split.addWidget(right)
    split.setStretchFactor(0, 3)
    split.setStretchFactor(1, 2)
    split.setChildrenCollapsible(False)
    live = QWidget()
    page = QVBoxLayout(live)
    page.setContentsMargins(0, 0, 0, 0)
    page.addWidget(split, 1)
    return live


class ElidedLabel(QLabel):
    """A one-line label that never widens its window: a text too long for it is shown cut with "..."
    and whole in its tooltip."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(0, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.minimumSizeHint()

    def fits(self) -> bool:
        return self.fontMetrics().horizontalAdvance(self.text()) <= self.contentsRect().width()

    def setText(self, text: str) -> None:  # noqa: N802
        super().setText(text)
        self._update_tip()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._update_tip()

    def _update_tip(self) -> None:
        self.setToolTip("" if self.fits() else self.text())

    def shown_text(self) -> str:
        """The text as drawn: elided to the label's width."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width())

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        self.style().drawItemText(painter, self.contentsRect(), int(self.alignment()), self.palette(), self.isEnabled(),
                                  self.shown_text(), self.foregroundRole())


def _status_bar(window: QMainWindow) -> tuple[QLabel, dict[str, QLabel]]:
    bar = window.statusBar()
    state = ElidedLabel("Starting...")
    bar.addWidget(state, 1)
    labels: dict[str, QLabel] = {}
    for key, tip in STATUS_FIELDS:
        label = QLabel("")
        label.setObjectName("statusField")
        label.setToolTip(tip)
        bar.addPermanentWidget(label)
        labels[key] = label
    return state, labels


def build_window(window: QMainWindow, settings: Settings) -> WindowWidgets:
    """Create the toolbar, the gallery, the page stack and the status bar inside ``window``."""
    actions = _toolbar(window)
    # the Virtual camera button is checked by the window once the pipeline says it is on, never before
    actions.mirror.setChecked(settings.mirror_output)
    output_view, camera_view, hint = _previews(settings)
    camera_view.setToolTip(camera_view.toolTip() + FACE_BOX_LEGEND)
    checkpoint_panel, camera_panel = MissingCheckpointPanel(), CameraPanel()
    meter = MatchMeter()
    stack = QStackedWidget()
    for page in (_live_page(output_view, camera_view, hint, meter), checkpoint_panel, camera_panel):
        stack.addWidget(page)
    gallery, notice_bar, consent_bar = Gallery(), NoticeStack(), ConsentBar()
    center = QWidget()
    column = QVBoxLayout(center)
    column.setContentsMargins(8, 6, 8, 4)
    column.addWidget(consent_bar)
    column.addWidget(notice_bar)
    row = QHBoxLayout()
    row.addWidget(gallery)
    row.addWidget(stack, 1)
    column.addLayout(row, 1)
    window.setCentralWidget(center)
    status_state, status_labels = _status_bar(window)
    return WindowWidgets(actions, gallery, output_view, camera_view, hint, stack, checkpoint_panel, camera_panel,
                         notice_bar, consent_bar, status_state, status_labels, match_meter=meter)
