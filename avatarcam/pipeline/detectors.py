"""Face detectors for framing: scikit-image's LBP cascade (no download) and face-alignment's
BlazeFace (faster, more robust; weights downloaded on first use). ``make_detector("auto")`` picks
BlazeFace only when its weights are cached, so nothing is ever downloaded behind your back."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..errors import AvatarcamError
from ..imaging import to_uint8
from .config import DETECTORS, check_choice

Box = tuple[float, float, float, float]  # x, y, w, h in image pixels


class FaceDetector(Protocol):
    name: str
    # crop side = side_scale * box width; crop centre = box centre + (0, shift_y * box width)
    side_scale: float
    shift_y: float

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _work_image(image: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    s = min(1.0, work_size / max(h, w))
    if s < 1.0:
        image = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return image, s


class LBPDetector:
    """scikit-image's LBP frontal-face cascade. Its box covers the inner face (brows to mouth),
    so the crop is ~2.8x the box and centred a little below it."""

    name = "lbp"
    side_scale = 2.8
    shift_y = 0.3

    def __init__(self, work_size: int = 320) -> None:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade

        self.work_size = work_size
        self._cascade = Cascade(lbp_frontal_face_cascade_filename())
        self._lock = threading.Lock()  # the cascade object is not re-entrant

    def detect(self, image: np.ndarray) -> list[Box]:
        img = to_uint8(image)
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        small, s = _work_image(grey, self.work_size)
        side = min(small.shape[:2])
        if side < 24:
            return []
        with self._lock:
            found = self._cascade.detect_multi_scale(img=small, scale_factor=1.15, step_ratio=1, min_size=(24, 24),
                                                     max_size=(side, side), min_neighbor_number=2)
        return [(d["c"] / s, d["r"] / s, d["width"] / s, d["height"] / s) for d in found]


BLAZEFACE_FILES = ("blazeface.pth", "anchors.npy")


def face_alignment_weights_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def face_alignment_weights_cached() -> bool:
    """Whether face-alignment's BlazeFace weights are already in the torch hub cache."""
    folder = face_alignment_weights_dir()
    return all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in BLAZEFACE_FILES)


class FaceAlignmentDetector:
    """face-alignment's BlazeFace (front model). Its box spans brows-to-chin."""

    name = "face-alignment"
    side_scale = 1.75
    shift_y = 0.0

    def __init__(self, device: str = "cpu", allow_download: bool = True,
                 notice: Callable[[str], None] | None = None) -> None:
        folder = face_alignment_weights_dir()
        weights, anchors = (folder / name for name in BLAZEFACE_FILES)
        try:
            from face_alignment.detection.blazeface.blazeface_detector import BlazeFaceDetector
        except ImportError as err:
            raise AvatarcamError(f"face-alignment is not installed ({err}); `pip install face-alignment` "
                                 f"or use --detector lbp.") from None
        try:
            if face_alignment_weights_cached():
                self._det = BlazeFaceDetector(device, path_to_detector=os.fspath(weights),
                                              path_to_anchor=os.fspath(anchors))
            elif not allow_download:
                raise AvatarcamError(f"face-alignment's detector weights are not in {folder}; run once online "
                                     f"with --detector face-alignment, or use --detector lbp.")
            else:
                if notice:
                    notice(f"downloading face-alignment's face detector weights (first use) into {folder}")
                self._det = BlazeFaceDetector(device)
        except AvatarcamError:
            raise
        except Exception as err:  # noqa: BLE001 - offline: URLError; corrupt file: RuntimeError
            raise AvatarcamError(f"face-alignment's detector could not be loaded ({type(err).__name__}: {err}); "
                                 f"connect once to download it into {folder}, or use --detector lbp.") from None

    def detect(self, image: np.ndarray) -> list[Box]:
        img = to_uint8(image)
        h, w = img.shape[:2]
        side = max(h, w)  # BlazeFace crops to a centred square: pad instead so edge faces are kept
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top:top + h, left:left + w] = img
        boxes = self._det.detect_from_image(square[:, :, ::-1].copy())  # it expects BGR like cv2
        out = []
        for b in boxes if boxes is not None else []:
            if len(b) < 4:
                continue
            x1, y1, x2, y2 = (float(v) for v in b[:4])
            out.append((x1 - left, y1 - top, x2 - x1, y2 - y1))
        return out


def make_detector(name: str = "auto", *, allow_download: bool = True,
                  notice: Callable[[str], None] | None = None) -> FaceDetector:
    """"auto": BlazeFace if its weights are cached (never downloads), else LBP."""
    check_choice("face detector", name, DETECTORS)
    if name == "lbp":
        return LBPDetector()
    if name == "face-alignment":
        return FaceAlignmentDetector(allow_download=allow_download, notice=notice)
    if face_alignment_weights_cached():
        try:
            return FaceAlignmentDetector(allow_download=False)
        except AvatarcamError as err:
            if notice:
                notice(f"{err} Using the LBP face detector instead.")
    return LBPDetector()
