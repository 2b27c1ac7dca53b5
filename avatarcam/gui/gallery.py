"""The avatar gallery: numbered thumbnails; drop image files on it to add avatars."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QImageReader, QPainter, QPixmap
from PyQt6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

from ..imaging import IMAGE_SUFFIXES
from ..pipeline.avatars import Avatar

THUMB = 72


def thumbnail(path: Path, size: int = THUMB) -> QPixmap:
    """A square thumbnail (centre crop), or a grey tile if the file is unreadable."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and full.width() > 0 and full.height() > 0:
        scale = size / min(full.width(), full.height())
        reader.setScaledSize(QSize(max(1, round(full.width() * scale)), max(1, round(full.height() * scale))))
    img = reader.read()
    pix = QPixmap(size, size)
    pix.fill(QColor(60, 62, 68))
    if not img.isNull():
        p = QPainter(pix)
        p.drawImage((size - img.width()) // 2, (size - img.height()) // 2, img)
        p.end()
    return pix


def dropped_images(mime) -> list[str]:
    if not mime.hasUrls():
        return []
    out = []
    for url in mime.urls():
        if url.isLocalFile():
            path = url.toLocalFile()
            if Path(path).suffix.lower() in IMAGE_SUFFIXES or Path(path).is_file():
                out.append(path)
    return out


class Gallery(QListWidget):
    avatarChosen = pyqtSignal(int)  # noqa: N815 - Qt naming
    filesDropped = pyqtSignal(list)  # noqa: N815

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.avatars: list[Avatar] = []
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSpacing(2)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the window's hotkeys
        self.setMinimumWidth(190)
        self.setMaximumWidth(240)
        self.setToolTip("Avatars: click or press 1-9 to pick, A/D for previous/next.\n"
                        "Drop image files here to add them.")
        self.itemClicked.connect(lambda item: self.avatarChosen.emit(self.row(item)))

    def set_avatars(self, avatars: list[Avatar], current: int = -1) -> None:
        self.blockSignals(True)
        self.clear()
        self.avatars = list(avatars)
        for i, av in enumerate(self.avatars):
            number = f"{i + 1}  " if i < 9 else "    "
            item = QListWidgetItem(QIcon(thumbnail(av.path)), f"{number}{av.name}")
            item.setToolTip(f"{av.path}\n{'bundled' if av.bundled else 'your avatar'}"
                            + (f"  (key {i + 1})" if i < 9 else ""))
            self.addItem(item)
        if 0 <= current < self.count():
            self.setCurrentRow(current)
        self.blockSignals(False)

    def set_current(self, index: int) -> None:
        self.blockSignals(True)
        self.setCurrentRow(index)
        self.blockSignals(False)

    # drag and drop ------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if dropped_images(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if dropped_images(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = dropped_images(event.mimeData())
        if files:
            event.acceptProposedAction()
            self.filesDropped.emit(files)
        else:
            event.ignore()
