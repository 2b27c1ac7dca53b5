"""The Settings dialog: edits a copy of ``Settings``; the window applies and saves it."""

from __future__ import annotations

from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engine.options import BACKENDS, DEVICES, PRECISIONS
from ..paths import CHECKPOINT_NAME
from ..pipeline.config import CAPTURE_SIZES, FPS_RANGE, FRAMINGS, VCAM_SIZES, ZOOM_RANGE
from ..settings import MODEL_PLACES, Settings
from .panels import CHECKPOINT_FILTER, VIDEO_FILTER, CameraProber

# The choices and ranges the dialog offers are declared once, outside the GUI (engine/options.py,
# pipeline/config.py, settings.py); only their labels live here.
DEVICE_LABELS = {"auto": "auto (GPU if available)", "cuda": "cuda (NVIDIA GPU)", "mps": "mps (Apple GPU)"}
PRECISION_LABELS = {"auto": "auto (fp16 GPU, bf16/fp32 CPU)"}
BACKEND_LABELS = {"auto": "auto (PyTorch)", "torch": "torch (PyTorch)",
                  "onnx": "onnx (ONNX Runtime; exported once, then cached)"}
AI_LABEL_TEXT = ("Draws a small \"AI\" label in a corner of every animated frame that leaves avatarcam (virtual "
                 "camera and recordings), so the people who see it know the video is generated.")
FRAMING_LABELS = {"auto": "auto (follow the face)", "manual": "manual (fixed crop; W/S/U/H/J/K)"}


def _sizes(sizes, current: tuple[int, int]) -> QComboBox:
    """The declared sizes, plus the current one when it is not among them."""
    combo = QComboBox()
    sizes = list(dict.fromkeys([*sizes, tuple(current)]))
    for w, h in sizes:
        combo.addItem(f"{w} x {h}", f"{w}x{h}")
    combo.setCurrentIndex(sizes.index(tuple(current)))
    return combo


def size_of(combo: QComboBox) -> tuple[int, int]:
    w, h = str(combo.currentData()).split("x")
    return int(w), int(h)


def _choice(values, current: str, labels: dict[str, str] | None = None) -> QComboBox:
    combo = QComboBox()
    for v in values:
        combo.addItem((labels or {}).get(v, v), v)
    combo.setCurrentIndex(max(0, list(values).index(current) if current in values else 0))
    return combo


def _spin(limits: tuple[float, float], value: float, *, decimals: int, step: float = 1.0) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(*limits)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    spin.setValue(value)
    return spin


def _with_button(field: QWidget, text: str, slot) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(field, 1)
    button = QPushButton(text)
    button.clicked.connect(slot)
    row.addWidget(button)
    return row


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("avatarcam settings")
        self.setMinimumWidth(520)
        self._original = settings
        layout = QVBoxLayout(self)
        for box in (self._camera_box(settings), self._model_box(settings), self._framing_box(settings),
                    self._vcam_box(settings), self._responsible_box(settings)):
            layout.addWidget(box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.prober = CameraProber(self)
        self.prober.done.connect(self._probed)
        self.prober.start()

    def _camera_box(self, s: Settings) -> QGroupBox:
        box = QGroupBox("Camera")
        form = QFormLayout(box)
        self.camera = QComboBox()
        self.camera.setEditable(True)
        self.camera.setToolTip("A camera index (0, 1, ...), a video file or a stream URL")
        self.camera.addItem(f"Camera {s.camera}" if s.camera.isdigit() else s.camera, s.camera)
        form.addRow("Source", _with_button(self.camera, "Video file...", self._pick_video))
        self.capture_size = _sizes(CAPTURE_SIZES, s.capture_size)
        form.addRow("Capture size", self.capture_size)
        return box

    def _model_box(self, s: Settings) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.checkpoint = QLineEdit(s.checkpoint or "")
        self.checkpoint.setPlaceholderText(f"automatic ({CHECKPOINT_NAME} in the models folder)")
        form.addRow("Checkpoint", _with_button(self.checkpoint, "Browse...", self._pick_checkpoint))
        self.device = _choice(DEVICES, s.device, DEVICE_LABELS)
        form.addRow("Device", self.device)
        self.precision = _choice(PRECISIONS, s.precision, PRECISION_LABELS)
        form.addRow("Precision", self.precision)
        self.backend = _choice(BACKENDS, s.backend, BACKEND_LABELS)
        self.backend.setToolTip("The runtime that runs the model; onnx needs onnxruntime (pip install onnxruntime)")
        form.addRow("Runtime", self.backend)
        self.relative = QCheckBox("Relative motion (recommended)")
        self.relative.setChecked(s.relative)
        self.relative.setToolTip("Move the avatar by how your face moves from the calibrated pose")
        form.addRow("", self.relative)
        self.adapt_scale = QCheckBox("Adapt movement scale to the avatar")
        self.adapt_scale.setChecked(s.adapt_scale)
        form.addRow("", self.adapt_scale)
        self.model_on = _choice(MODEL_PLACES, s.model_on, {"local": "this computer", "remote": "a remote worker"})
        form.addRow("Model runs on", self.model_on)
        self.remote_url = QLineEdit(s.remote_url or "")
        self.remote_url.setPlaceholderText("ws://gpu-host:8000 (avatarcam serve)")
        form.addRow("Worker address", self.remote_url)
        self.remote_token = QLineEdit(s.remote_token or "")
        self.remote_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.remote_token.setPlaceholderText("the worker's token (default: $AVATARCAM_TOKEN)")
        form.addRow("Worker token", self.remote_token)
        return box

    def _framing_box(self, s: Settings) -> QGroupBox:
        box = QGroupBox("Face framing")
        form = QFormLayout(box)
        self.framing = _choice(FRAMINGS, s.framing, FRAMING_LABELS)
        form.addRow("Mode", self.framing)
        self.zoom = _spin(ZOOM_RANGE, s.zoom, decimals=2, step=0.1)
        form.addRow("Zoom", self.zoom)
        return box

    def _vcam_box(self, s: Settings) -> QGroupBox:
        box = QGroupBox("Virtual camera")
        form = QFormLayout(box)
        self.vcam = QCheckBox("Send the output to the virtual camera")
        self.vcam.setChecked(s.vcam)
        form.addRow("", self.vcam)
        self.vcam_size = _sizes(VCAM_SIZES, s.vcam_size)
        form.addRow("Size", self.vcam_size)
        self.vcam_fps = _spin(FPS_RANGE, s.vcam_fps, decimals=0)
        form.addRow("Frame rate", self.vcam_fps)
        return box

    def _responsible_box(self, s: Settings) -> QGroupBox:
        """The AI-label switch, with a sentence on what it does (the field lives in pipeline/config.py)."""
        explanation = QLabel(AI_LABEL_TEXT)
        explanation.setWordWrap(True)
        explanation.setObjectName("hint")
        self.ai_label = QCheckBox("Label the output as AI-generated (recommended)")
        self.ai_label.setToolTip(AI_LABEL_TEXT)
        self.ai_label.setChecked(s.ai_label)
        box = QGroupBox("Responsible use")
        column = QVBoxLayout(box)
        for widget in (self.ai_label, explanation):
            column.addWidget(widget)
        return box

    def _probed(self, cams: list) -> None:
        current = self.camera_value()
        values = {self.camera.itemData(i) for i in range(self.camera.count())}
        for value, label in cams:
            if value not in values:
                self.camera.addItem(label, value)
        idx = self.camera.findData(current)
        if idx >= 0:
            self.camera.setCurrentIndex(idx)

    def _pick_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use a video file as the camera", "", VIDEO_FILTER)
        if path:
            self.camera.addItem(path, path)
            self.camera.setCurrentIndex(self.camera.count() - 1)

    def _pick_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Locate {CHECKPOINT_NAME}", "", CHECKPOINT_FILTER)
        if path:
            self.checkpoint.setText(path)

    def camera_value(self) -> str:
        idx = self.camera.currentIndex()
        text = self.camera.currentText().strip()
        if idx >= 0 and self.camera.itemText(idx) == text and self.camera.itemData(idx) is not None:
            return str(self.camera.itemData(idx))
        if text.lower().startswith("camera ") and text[7:].strip().split(" ")[0].isdigit():
            return text[7:].strip().split(" ")[0]
        return text or self._original.camera

    def result_settings(self) -> Settings:
        """The settings as edited (the original object is not changed)."""
        return self._original.copy(
            ai_label=self.ai_label.isChecked(),
            camera=self.camera_value(),
            capture_size=size_of(self.capture_size),
            checkpoint=self.checkpoint.text().strip() or None,
            device=self.device.currentData(),
            precision=self.precision.currentData(),
            backend=self.backend.currentData(),
            relative=self.relative.isChecked(),
            adapt_scale=self.adapt_scale.isChecked(),
            model_on=self.model_on.currentData(),
            remote_url=self.remote_url.text().strip() or None,
            remote_token=self.remote_token.text().strip() or None,
            framing=self.framing.currentData(),
            zoom=float(self.zoom.value()),
            vcam=self.vcam.isChecked(),
            vcam_size=size_of(self.vcam_size),
            vcam_fps=float(self.vcam_fps.value()),
        )

    def done(self, r: int) -> None:
        self.prober.join(0.0)
        super().done(r)
