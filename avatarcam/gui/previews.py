"""Preview widgets: the output (what the virtual camera gets) and the camera picture."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from ..imaging import to_uint8


def to_qimage(rgb: np.ndarray) -> QImage:
    """HxWx3 uint8 RGB (or HxW grey) -> a QImage that owns its pixels."""
    arr = np.ascontiguousarray(to_uint8(rgb))
    if arr.ndim == 2:
        h, w = arr.shape
        return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    h, w = arr.shape[:2]
    if arr.shape[2] == 4:
        return QImage(arr.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ImageView(QWidget):
    """Shows one image, scaled to fit with its aspect ratio, on a dark background."""

    def __init__(self, title: str, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.placeholder = placeholder
        self.image: QImage | None = None
        self.mirrored = False
        self.frames_shown = 0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(480, 480)

    def set_frame(self, rgb: np.ndarray | None) -> None:
        self.image = None if rgb is None else to_qimage(rgb)
        self.frames_shown += rgb is not None
        self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def image_rect(self) -> QRectF:
        """Where the image is drawn, in widget coordinates."""
        if self.image is None or self.image.isNull():
            return QRectF()
        w, h = self.image.width(), self.image.height()
        area = QRectF(self.rect()).adjusted(6, 28, -6, -6)
        s = min(area.width() / w, area.height() / h)
        dw, dh = w * s, h * s
        return QRectF(area.x() + (area.width() - dw) / 2, area.y() + (area.height() - dh) / 2, dw, dh)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(24, 25, 28))
        title_font = QFont(self.font())
        title_font.setPointSizeF(self.font().pointSizeF() * 0.95)
        title_font.setBold(True)
        p.setFont(title_font)
        p.setPen(QColor(150, 156, 166))
        p.drawText(QRectF(10, 4, self.width() - 20, 22), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   self.title)
        target = self.image_rect()
        if target.isNull():
            p.setFont(self.font())
            p.setPen(QColor(120, 126, 136))
            p.drawText(QRectF(self.rect()).adjusted(20, 30, -20, -20),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
        else:
            img = self.image.mirrored(True, False) if self.mirrored else self.image
            p.drawImage(target, img)
            self.paint_over(p, target)
        p.end()

    def paint_over(self, p: QPainter, target: QRectF) -> None:
        """Subclasses draw on top of the image here."""


class OutputView(ImageView):
    """The animated output, with an optional statistics overlay."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Output: what the virtual camera sends", "Starting...", parent)
        self.stats_text = ""
        self.show_stats = False
        self.badge = ""  # e.g. "PASSTHROUGH" or "REC"

    def paint_over(self, p: QPainter, target: QRectF) -> None:
        if self.badge:
            f = QFont(self.font())
            f.setBold(True)
            p.setFont(f)
            r = QRectF(target.right() - 150, target.top() + 8, 142, 24)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(200, 60, 60, 200) if "REC" in self.badge else QColor(40, 110, 200, 200))
            p.drawRoundedRect(r, 6, 6)
            p.setPen(QColor(255, 255, 255))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, self.badge)
        if self.show_stats and self.stats_text:
            f = QFont("monospace")
            f.setStyleHint(QFont.StyleHint.Monospace)
            f.setPointSizeF(max(7.0, self.font().pointSizeF() * 0.9))
            p.setFont(f)
            lines = self.stats_text.splitlines()
            h = 18 * len(lines) + 10
            r = QRectF(target.left() + 8, target.top() + 8, min(260, target.width() - 16), h)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 160))
            p.drawRoundedRect(r, 6, 6)
            p.setPen(QColor(230, 235, 240))
            for i, line in enumerate(lines):
                p.drawText(QPointF(r.left() + 8, r.top() + 18 + 18 * i), line)


class CameraView(ImageView):
    """The camera picture with the face-crop rectangle and an optional avatar overlay."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Camera", "Waiting for the camera...", parent)
        self.crop_box: tuple[float, float, float] | None = None
        self.face_found = False
        self.frame_size: tuple[int, int] = (0, 0)
        self.overlay: QImage | None = None
        self.show_overlay = False
        self.overlay_opacity = 0.4
        self.mirrored = True

    def set_camera(self, rgb: np.ndarray, crop_box, face_found: bool) -> None:
        self.frame_size = (rgb.shape[1], rgb.shape[0])
        self.crop_box = tuple(crop_box) if crop_box is not None else None
        self.face_found = bool(face_found)
        self.set_frame(rgb)

    def set_overlay(self, rgb: np.ndarray | None) -> None:
        self.overlay = None if rgb is None else to_qimage(rgb)
        self.update()

    def crop_rect(self, target: QRectF) -> QRectF | None:
        if self.crop_box is None or not self.frame_size[0]:
            return None
        x, y, side = self.crop_box
        s = target.width() / self.frame_size[0]
        if self.mirrored:
            x = self.frame_size[0] - x - side
        return QRectF(target.left() + x * s, target.top() + y * s, side * s, side * s)

    def paint_over(self, p: QPainter, target: QRectF) -> None:
        box = self.crop_rect(target)
        if box is None:
            return
        p.save()
        p.setClipRect(target)
        if self.show_overlay and self.overlay is not None:
            p.setOpacity(self.overlay_opacity)
            p.drawImage(box, self.overlay)
            p.setOpacity(1.0)
        color = QColor(90, 200, 120) if self.face_found else QColor(230, 170, 60)
        pen = QPen(color, 2)
        pen.setCosmetic(True)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(box)
        if self.box_legend():
            p.drawText(QRectF(box.left() + 6, box.top() + 4, max(box.width() - 12, 0.0), 20),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, self.box_legend())
        p.restore()

    def box_legend(self) -> str:
        """What the orange rectangle means, written on it (the green one needs no words)."""
        return "" if self.face_found else "no face: holding the last picture"
