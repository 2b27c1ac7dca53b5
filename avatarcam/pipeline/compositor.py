"""The compositor: each animated crop pasted back into the avatar's whole picture, at the output size.

Per avatar and layout (once, cached): the output-size background (the picture placed by the layout),
the crop's bounding box in the output (the ROI, clipped to the picture) and the feathered mask there,
and the model -> output transform (crop transform composed with the layout's scaling). Per frame:
one ``cv2.warpAffine`` of the model's picture into the ROI and one blend through the mask, on a copy
of the background; every pixel outside the mask is the background's, exactly.

Layouts (``OUTPUT_LAYOUTS``, the ``output_layout`` setting): ``picture`` scales the picture to cover
the output (cut only where the aspects differ, the face kept in view; never bars), ``fit`` shows the
whole picture padded, ``face`` is the model's square alone, letterboxed (the old output).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from ..engine.dense_motion import MotionField
from ..engine.detail import DetailTransfer
from ..imaging import to_uint8
from .avatar_picture import AvatarPicture
from .config import OUTPUT_LAYOUTS
from .crop import crop_transform
from .pictures import Box, covering_box, draw_ai_label, fitted_box, place, resize_affine

FEATHER = 0.12  # the mask's soft ramp, as a fraction of the crop's side
MAX_DETAIL_SIDE = 1024  # detail transfer works on the crop at its output resolution, at most this


def feather_mask(size: int, feather: float = FEATHER) -> np.ndarray:
    """size x size float32: 1 in the middle, a smooth ramp to 0 over ``feather * size`` pixels at
    the border (the seam between the animated crop and the still picture)."""
    ramp = max(1.0, feather * size)
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32) + 0.5
    t = np.clip(d / ramp, 0.0, 1.0)
    edge = t * t * (3 - 2 * t)  # smoothstep: no kink where the ramp meets the flat middle
    return np.minimum(edge[:, None], edge[None, :])


def _affine3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


@dataclass(frozen=True, eq=False)
class Placement:
    """What one avatar looks like in one layout and output size; computed once."""

    background: np.ndarray  # HxWx3 uint8: the output when nothing is animated
    picture_box: Box  # where the picture lies in the output (the AI label goes in its corner)
    to_output: np.ndarray  # 2x3: model pixels -> output pixels
    roi: tuple[int, int, int, int] | None  # (x0, y0, x1, y1): the output pixels the mask touches; None: none
    mask: np.ndarray  # ROI-size float32 weight of the animated picture (0 outside the crop)
    rest: np.ndarray  # 1 - mask
    opaque: bool = False  # the ROI is the animated picture alone (the face layout): no blend

    @property
    def nbytes(self) -> int:
        return self.background.nbytes + self.mask.nbytes + self.rest.nbytes


def _roi(to_output: np.ndarray, size: int, bounds: Box) -> tuple[int, int, int, int] | None:
    corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1], [size - 0.5, size - 0.5, 1]])
    pts = corners @ to_output.T
    left, top, w, h = bounds
    x0, y0 = max(left, int(np.floor(pts[:, 0].min()))), max(top, int(np.floor(pts[:, 1].min())))
    x1, y1 = min(left + w, int(np.ceil(pts[:, 0].max())) + 1), min(top + h, int(np.ceil(pts[:, 1].max())) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def make_placement(avatar: AvatarPicture, layout: str, size: tuple[int, int]) -> Placement:
    """The background, the ROI and the feathered mask of ``avatar`` in ``layout`` at ``size`` = (w, h)."""
    w, h = size
    if layout == "face":
        shown, to_shown = avatar.model_input, np.array([[1.0, 0, 0], [0, 1.0, 0]])
        box = fitted_box(shown.shape, size)
    else:
        shown, to_shown = avatar.picture, avatar.to_picture
        box = covering_box(shown.shape, size, avatar.centre) if layout == "picture" else fitted_box(shown.shape, size)
    to_output = (_affine3(resize_affine(shown.shape, box)) @ _affine3(to_shown))[:2]
    visible = (max(0, box[0]), max(0, box[1]), min(w, box[0] + box[2]) - max(0, box[0]),
               min(h, box[1] + box[3]) - max(0, box[1]))
    roi = _roi(to_output, avatar.size, visible)
    mask = np.zeros((0, 0), np.float32)
    if roi is not None:
        x0, y0, x1, y1 = roi
        to_roi = to_output - np.array([[0, 0, x0], [0, 0, y0]])
        mask = cv2.warpAffine(feather_mask(avatar.size), to_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    background = place(shown, box, size)
    background.flags.writeable = False
    return Placement(background, visible, to_output, roi, mask, 1.0 - mask, opaque=layout == "face")


class Compositor:
    """Turns the model's picture into the output frame for one layout and output size.

    ``compose(avatar, animated)`` is the per-frame call (``animated``: an n x n uint8 picture of the
    model's crop square, any n: the model's output or the detail-transfer crop; None: the still
    avatar). Placements are cached for the last few avatars, so switching back costs nothing.
    """

    CACHE = 4

    def __init__(self, layout: str = "picture", size: tuple[int, int] = (1280, 720)) -> None:
        if layout not in OUTPUT_LAYOUTS:
            raise ValueError(f"unknown output layout {layout!r}; use one of {', '.join(OUTPUT_LAYOUTS)}")
        self.layout, self.size = layout, (int(size[0]), int(size[1]))
        self._placements: OrderedDict[int, tuple[AvatarPicture, Placement]] = OrderedDict()
        self._detail_crops: dict[int, tuple[AvatarPicture, np.ndarray]] = {}
        self._lock = threading.Lock()  # the avatar thread prepares placements while the stream composes

    def placement(self, avatar: AvatarPicture) -> Placement:
        """The avatar's placement in this layout and size (made once, then cached); thread-safe."""
        key = id(avatar)
        with self._lock:
            hit = self._placements.get(key)
            if hit is not None and hit[0] is avatar:
                self._placements.move_to_end(key)
                return hit[1]
        placement = make_placement(avatar, self.layout, self.size)
        with self._lock:
            self._placements[key] = (avatar, placement)
            while len(self._placements) > self.CACHE:
                self._placements.popitem(last=False)
        return placement

    def detail_crop(self, avatar: AvatarPicture) -> np.ndarray:
        """The avatar's crop square from its full picture at the resolution it has in the output
        (between the model's size and MAX_DETAIL_SIDE): what detail transfer warps. Cached."""
        hit = self._detail_crops.get(id(avatar))
        if hit is not None and hit[0] is avatar:
            return hit[1]
        scale = float(np.hypot(*self.placement(avatar).to_output[:, 0]))
        side = int(np.clip(round(avatar.size * scale), avatar.size, MAX_DETAIL_SIDE))
        crop = cv2.warpAffine(avatar.picture, crop_transform(*avatar.crop_square, side), (side, side),
                              flags=cv2.INTER_AREA if side < avatar.crop_square[2] else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        self._detail_crops = {id(avatar): (avatar, crop)}
        return crop

    def compose(self, avatar: AvatarPicture, animated: np.ndarray | None, *, mirror: bool = False,
                ai_label: bool = True) -> np.ndarray:
        """The output frame (HxWx3 uint8, a new array): the background with ``animated`` warped into
        the crop's place and blended through the mask; mirrored and labelled if asked."""
        pl = self.placement(avatar)
        out = pl.background.copy()
        if animated is not None and pl.roi is not None:
            x0, y0, x1, y1 = pl.roi
            n = animated.shape[0]
            to_roi = (_affine3(pl.to_output) @ _affine3(resize_affine((n, n), (0, 0, avatar.size, avatar.size))))[:2]
            to_roi[:, 2] -= (x0, y0)
            warped = cv2.warpAffine(animated, to_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            region = out[y0:y1, x0:x1]
            region[:] = warped if pl.opaque else cv2.blendLinear(warped, region, pl.mask, pl.rest)
        box = pl.picture_box
        if mirror:
            out = cv2.flip(out, 1)
            box = (self.size[0] - box[0] - box[2], box[1], box[2], box[3])
        return draw_ai_label(out, box, copy=False) if ai_label else out


class OutputStage:
    """The worker's output step for the live settings it is given each frame: the compositor for
    the current layout and size (rebuilt when either changes) and, when asked, detail transfer
    (``engine/detail.py``) on the model's device, prepared once per avatar and layout."""

    def __init__(self) -> None:
        self.compositor: Compositor | None = None
        self._detail: tuple[AvatarPicture, Compositor, DetailTransfer] | None = None

    def _compositor(self, layout: str, size: tuple[int, int]) -> Compositor:
        comp = self.compositor
        if comp is None or comp.layout != layout or comp.size != (int(size[0]), int(size[1])):
            comp = self.compositor = Compositor(layout, size)
            self._detail = None
        return comp

    def picture(self, avatar: AvatarPicture, animated: np.ndarray, motion: MotionField | None, *,
                layout: str, size: tuple[int, int]) -> np.ndarray:
        """What to paste for this frame: the model's picture (uint8), or with a motion field given, the
        crop at its output resolution with the avatar's own detail added (uint8)."""
        if motion is None or layout == "face":
            return animated
        comp = self._compositor(layout, size)
        hit = self._detail
        if hit is None or hit[0] is not avatar or hit[1] is not comp:
            device = motion.deformation.device
            hit = self._detail = (avatar, comp, DetailTransfer(comp.detail_crop(avatar), avatar.size, device))
        return to_uint8(hit[2].apply(animated, motion))

    def prepare(self, avatar: AvatarPicture, *, layout: str, size: tuple[int, int]) -> None:
        """Make the avatar's placement now (on the avatar thread), not at its first frame."""
        self._compositor(layout, size).placement(avatar)

    def compose(self, avatar: AvatarPicture, picture: np.ndarray | None, *, layout: str, size: tuple[int, int],
                mirror: bool = False, ai_label: bool = True) -> np.ndarray:
        return self._compositor(layout, size).compose(avatar, picture, mirror=mirror, ai_label=ai_label)

    @staticmethod
    def passthrough(image: np.ndarray, *, layout: str, size: tuple[int, int], mirror: bool = False) -> np.ndarray:
        """The camera picture itself at the output size: covering it in the ``picture`` layout (no
        bars, like a webcam), letterboxed otherwise."""
        img = image[:, ::-1] if mirror else image
        box = covering_box(img.shape, size) if layout == "picture" else fitted_box(img.shape, size)
        return place(img, box, size)
