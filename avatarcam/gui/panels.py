"""First-run panels (missing checkpoint, no camera), the notice banner and camera probing."""

from __future__ import annotations

import threading

from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..paths import CHECKPOINT_NAME, CHECKPOINT_URL, user_models_dir
from .model_download import ModelDownloadWidget

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)"
CHECKPOINT_FILTER = f"FOMM checkpoint ({CHECKPOINT_NAME} *.pth.tar *.pth *.tar);;All files (*)"
PROBE_COUNT = 5
MISSING_TITLE = "The face-animation model is missing"
UNUSABLE_TITLE = "The face-animation model could not be loaded"


def camera_choices() -> list[tuple[str, str]]:
    """(value, label) for each camera that gives a frame. Slow: call it off the GUI thread."""
    from ..pipeline import list_cameras

    return [(str(index), f"Camera {index}") for index in list_cameras(PROBE_COUNT)]


class CameraProber(QObject):
    """Runs ``camera_choices`` on a worker thread; ``done`` arrives on the GUI thread."""

    done = pyqtSignal(list)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.busy:
            return

        def run() -> None:
            try:
                cams = camera_choices()
            except Exception:  # noqa: BLE001 - a probe problem is "no cameras", never a crash
                cams = []
            try:
                self.done.emit(cams)
            except RuntimeError:  # the receiver was deleted while probing
                pass

        self._thread = threading.Thread(target=run, name="avatarcam-gui-probe", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 3.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


def _title(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("panelTitle")
    label.setWordWrap(True)
    return label


def _text(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setOpenExternalLinks(True)
    return label


class _Card(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panelCard")
        self.setMaximumWidth(720)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(28, 24, 28, 24)
        self.body.setSpacing(12)


def _centered(card: QWidget) -> QWidget:
    page = QWidget()
    outer = QVBoxLayout(page)
    outer.addStretch(1)
    row = QHBoxLayout()
    row.addStretch(1)
    row.addWidget(card, 4)
    row.addStretch(1)
    outer.addLayout(row)
    outer.addStretch(2)
    return page


class MissingCheckpointPanel(QWidget):
    """Shown while no usable model checkpoint is found: where to get it, and "Locate file..."."""

    locateRequested = pyqtSignal()  # noqa: N815
    downloaded = pyqtSignal(str)  # path of a downloaded checkpoint (from the download widget)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        card = _Card()
        b = card.body
        self.title = _title(MISSING_TITLE)
        b.addWidget(self.title)
        b.addWidget(_text(
            f"avatarcam needs the First Order Motion Model weights <b>{CHECKPOINT_NAME}</b> (228 MB, "
            f"trained on VoxCeleb by Siarohin et al.). Download it once; it stays on this computer."))
        b.addWidget(_text(
            f"Get it from <a href=\"{CHECKPOINT_URL}\">{CHECKPOINT_URL}</a> and save it in "
            f"<code>{user_models_dir()}</code>, or run <code>avatarcam download-model</code> in a terminal, "
            f"or locate a copy you already have."))
        self.detail = _text()
        self.detail.setObjectName("panelDetail")
        self.detail.hide()
        b.addWidget(self.detail)

        self.download_widget = ModelDownloadWidget(self)  # the in-window download
        self.download_widget.finished.connect(self.downloaded)
        b.addWidget(self.download_widget)
        row = QHBoxLayout()
        self.locate_button = QPushButton("Locate file...")
        self.locate_button.setObjectName("primary")
        self.locate_button.setToolTip(f"Choose {CHECKPOINT_NAME} on this computer; it is checked by loading it")
        self.locate_button.clicked.connect(self.locateRequested)
        row.addWidget(self.locate_button)
        row.addStretch(1)
        b.addLayout(row)
        self.status = _text()
        self.status.setObjectName("panelStatus")
        b.addWidget(self.status)
        QVBoxLayout(self).addWidget(_centered(card))

    def set_detail(self, text: str, *, unusable: bool = False) -> None:
        """Why no model runs; ``unusable``: a file is there but does not load (truncated, corrupt, wrong
        kind), so the title says so rather than "missing". The line is the engine's CheckpointError,
        which names the file and the fix and leaves library internals out (engine/checkpoint.py)."""
        self.title.setText(UNUSABLE_TITLE if unusable else MISSING_TITLE)
        self.detail.setText(text)
        self.detail.setVisible(bool(text))

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.locate_button.setEnabled(not busy)
        self.status.setText(text)


class CameraPanel(QWidget):
    """Shown when the camera cannot be opened: pick another camera or a video file."""

    cameraChosen = pyqtSignal(str)  # noqa: N815
    videoRequested = pyqtSignal()  # noqa: N815

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        card = _Card()
        b = card.body
        b.addWidget(_title("No camera picture"))
        self.detail = _text("The camera could not be opened.")
        self.detail.setObjectName("panelDetail")
        b.addWidget(self.detail)
        b.addWidget(_text("Close other apps that use the camera (Zoom, Meet, a browser tab), plug it in, "
                          "or choose another camera or a video file:"))
        row = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.setMinimumWidth(260)
        row.addWidget(self.combo, 1)
        self.probe_button = QPushButton("Search again")
        row.addWidget(self.probe_button)
        b.addLayout(row)
        row2 = QHBoxLayout()
        self.use_button = QPushButton("Use this camera")
        self.use_button.setObjectName("primary")
        self.use_button.clicked.connect(self._use)
        self.video_button = QPushButton("Video file...")
        self.video_button.clicked.connect(self.videoRequested)
        row2.addWidget(self.use_button)
        row2.addWidget(self.video_button)
        row2.addStretch(1)
        b.addLayout(row2)
        self.prober = CameraProber(self)
        self.prober.done.connect(self._probed)
        self.probe_button.clicked.connect(self.probe)
        QVBoxLayout(self).addWidget(_centered(card))
        self._probed([])

    def set_detail(self, text: str) -> None:
        self.detail.setText(text)

    def probe(self) -> None:
        self.combo.clear()
        self.combo.addItem("Searching for cameras...", None)
        self.use_button.setEnabled(False)
        self.probe_button.setEnabled(False)
        self.prober.start()

    def _probed(self, cams: list) -> None:
        self.combo.clear()
        for value, label in cams:
            self.combo.addItem(label, value)
        if not cams:
            self.combo.addItem("No camera found", None)
        self.use_button.setEnabled(bool(cams))
        self.probe_button.setEnabled(True)

    def _use(self) -> None:
        value = self.combo.currentData()
        if value is not None:
            self.cameraChosen.emit(str(value))


class NoticeBar(QFrame):
    """A dismissable message above the previews (e.g. the virtual-camera fix); the text wraps."""

    dismissed = pyqtSignal()  # the user closed it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noticeBar")
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(12, 6, 6, 6)
        self.label = _text()
        self.row.addWidget(self.label, 1)
        close = QToolButton()
        close.setText("\u00d7")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        self.row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()

    def show_message(self, text: str, level: str = "warning") -> None:
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        self.show()



class NoticeStack(QWidget):
    """The banners above the previews, newest on top: a new message never hides one the user has not
    dismissed (the virtual-camera fix stays while a later notice comes and goes). A repeated text is
    shown once; past ``MAX_NOTICES`` the oldest info banner goes first, then the oldest."""

    MAX_NOTICES = 3

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.column.setSpacing(4)
        self.bars: list[NoticeBar] = []  # newest first
        self._empty = QLabel("")
        self.hide()

    @property
    def label(self) -> QLabel:
        """The newest banner's text label."""
        return self.bars[0].label if self.bars else self._empty

    def texts(self) -> list[str]:
        return [bar.label.text() for bar in self.bars]

    def show_message(self, text: str, level: str = "warning") -> None:
        for bar in [bar for bar in self.bars if bar.label.text() == text]:
            self._remove(bar)
        bar = NoticeBar(self)
        bar.show_message(text, level)
        bar.dismissed.connect(lambda bar=bar: self._remove(bar))
        self.bars.insert(0, bar)
        self.column.insertWidget(0, bar)
        while len(self.bars) > self.MAX_NOTICES:
            infos = [b for b in self.bars if b.property("level") == "info"]
            self._remove((infos or self.bars)[-1])
        self.show()

    def _remove(self, bar: NoticeBar) -> None:
        if bar in self.bars:
            self.bars.remove(bar)
            self.column.removeWidget(bar)
            bar.hide()
            bar.deleteLater()
        self.setVisible(bool(self.bars))
