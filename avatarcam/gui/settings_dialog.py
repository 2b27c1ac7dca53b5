"""The Settings dialog: edits a copy of ``Settings``; the window applies and saves it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..paths import CHECKPOINT_NAME
from ..pipeline.config import label_of
from ..settings import Settings
from .panels import CHECKPOINT_FILTER, VIDEO_FILTER, CameraProber

# The fields, choices and ranges the dialog offers are declared once, outside the GUI (``declare`` in
# pipeline/config.py, settings.py); only their labels, placeholders and notes live here.
DEVICE_LABELS = {"auto": "auto (GPU if available)", "cuda": "cuda (NVIDIA GPU)", "mps": "mps (Apple GPU)"}
PRECISION_LABELS = {"auto": "auto (fp16 GPU, bf16/fp32 CPU)"}
BACKEND_LABELS = {"auto": "auto (the fastest that passes the accuracy check: PyTorch or OpenVINO)",
                  "torch": "torch (PyTorch)", "onnx": "onnx (ONNX Runtime; exported once, then cached)",
                  "openvino": "openvino (OpenVINO: Intel CPU, GPU, NPU; compiled once, then cached)"}
FRAMING_LABELS = {"auto": "auto (follow the face)", "manual": "manual (fixed crop; W/S/U/H/J/K)"}
CHOICE_LABELS = {"device": DEVICE_LABELS, "precision": PRECISION_LABELS, "backend": BACKEND_LABELS,
                 "framing": FRAMING_LABELS, "model_on": {"local": "this computer", "remote": "a remote worker"}}
PLACEHOLDERS = {"checkpoint": f"automatic ({CHECKPOINT_NAME} in the models folder)",
                "remote_url": "ws://gpu-host:8000 (avatarcam serve)",
                "remote_token": "the worker's token (default: $AVATARCAM_TOKEN)"}
TOOLTIPS = {"camera": "A camera index (0, 1, ...), a video file or a stream URL"}
AI_LABEL_TEXT = ("Draws a small \"AI\" label in a corner of every animated frame that leaves avatarcam (virtual "
                 "camera and recordings), so the people who see it know the video is generated.")
GROUP_NOTES = {"Responsible use": AI_LABEL_TEXT}


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


def dialog_groups(cls: type = Settings) -> dict[str, list]:
    """{tab title: [field specs]} of every field declared with a ``group``, in declaration order."""
    groups: dict[str, list] = {}
    for spec in fields(cls):
        if spec.metadata.get("group"):
            groups.setdefault(spec.metadata["group"], []).append(spec)
    return groups


def _editor(spec, value) -> tuple[QWidget, Callable[[], Any]]:
    """A widget for a declared field and the function that reads the value back."""
    meta, default = spec.metadata, spec.default
    if "sizes" in meta:
        combo = _sizes(meta["sizes"], value)
        return combo, lambda: size_of(combo)
    if "choices" in meta:
        combo = _choice(meta["choices"], value, CHOICE_LABELS.get(spec.name))
        return combo, combo.currentData
    if isinstance(default, bool):
        box = QCheckBox(label_of(spec))
        box.setChecked(value)
        return box, box.isChecked
    if isinstance(default, (int, float)):
        low, high = meta["range"]
        fine = high - low <= 10
        spin = _spin(meta["range"], value, decimals=2 if fine else 0, step=0.1 if fine else 1.0)
        return spin, lambda: type(default)(spin.value())
    edit = QLineEdit(value or "")
    edit.setPlaceholderText(PLACEHOLDERS.get(spec.name, ""))
    if meta.get("secret"):
        edit.setEchoMode(QLineEdit.EchoMode.Password)
    return edit, lambda: edit.text().strip() or None


class SettingsDialog(QDialog):
    """One tab per declared group, one row per declared field (``dialog_groups``); each editor is
    also an attribute named after its field (``dialog.device``)."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("avatarcam settings")
        self.setMinimumWidth(520)
        self._original = settings
        self._readers: dict[str, Callable[[], Any]] = {}
        self.tabs = QTabWidget()
        for group, specs in dialog_groups().items():
            self.tabs.addTab(self._page(group, specs, settings), group)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)
        self.prober = CameraProber(self)
        self.prober.done.connect(self._probed)
        self.prober.start()

    def _page(self, group: str, specs: list, settings: Settings) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        form = QFormLayout()
        column.addLayout(form)
        for spec in specs:
            value = getattr(settings, spec.name)
            if spec.name == "camera":
                widget, read = self._camera_editor(value), self.camera_value
            else:
                widget, read = _editor(spec, value)
            widget.setToolTip(TOOLTIPS.get(spec.name) or spec.metadata.get("help") or "")
            setattr(self, spec.name, widget)
            self._readers[spec.name] = read
            extra = {"camera": ("Video file...", self._pick_video),
                     "checkpoint": ("Browse...", self._pick_checkpoint)}.get(spec.name)
            row = _with_button(widget, *extra) if extra else widget
            form.addRow("" if isinstance(widget, QCheckBox) else label_of(spec), row)
        if group in GROUP_NOTES:
            note = QLabel(GROUP_NOTES[group])
            note.setWordWrap(True)
            note.setObjectName("hint")
            column.addWidget(note)
        column.addStretch(1)
        return page

    def _camera_editor(self, camera: str) -> QComboBox:
        self.camera = QComboBox()
        self.camera.setEditable(True)
        self.camera.addItem(f"Camera {camera}" if camera.isdigit() else camera, camera)
        return self.camera

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
        return self._original.copy(**{name: read() for name, read in self._readers.items()})

    def done(self, r: int) -> None:
        self.prober.join(0.0)
        super().done(r)
