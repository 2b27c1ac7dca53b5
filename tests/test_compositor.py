"""The compositor (pipeline/compositor.py): the animated crop pasted back into the avatar's picture."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic import landscape_portrait

from avatarcam.pipeline.avatar_picture import MAX_PICTURE_SIDE, AvatarPicture, avatar_at, frame_avatar
from avatarcam.pipeline.compositor import OUTPUT_LAYOUTS, Compositor, feather_mask
from avatarcam.pipeline.pictures import letterbox

SIZE = 64  # a small model size keeps these fast; the geometry does not depend on it
OUT = (1280, 720)


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return landscape_portrait()


def _blocks(w: int, h: int, cell: int = 24) -> np.ndarray:
    """Sharp-edged coloured blocks: any misalignment of a paste-back shows as large differences."""
    yy, xx = np.mgrid[0:h, 0:w]
    pattern = ((xx // cell) * 37 + (yy // cell) * 91) % 256
    return np.dstack([pattern, (pattern * 3) % 256, 255 - pattern]).astype(np.uint8)


def _identity_error(avatar: AvatarPicture, layout: str = "picture", size=OUT) -> tuple[np.ndarray, np.ndarray]:
    """|output - background| per pixel when the model returns its input unchanged, and the mask in output space."""
    comp = Compositor(layout, size)
    out = comp.compose(avatar, avatar.model_input, ai_label=False)
    pl = comp.placement(avatar)
    weight = np.zeros(out.shape[:2], np.float32)
    if pl.roi is not None:
        x0, y0, x1, y1 = pl.roi
        weight[y0:y1, x0:x1] = pl.mask
    return np.abs(out.astype(np.int16) - pl.background).max(axis=2), weight


def test_outside_the_mask_the_output_is_the_avatar_picture_pixel_for_pixel(picture):
    avatar = avatar_at(picture, (1050.0, 310.0, 600.0), SIZE)
    comp = Compositor("picture", OUT)
    noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)  # nothing like the crop
    out = comp.compose(avatar, noise, ai_label=False)
    error, weight = _identity_error(avatar)
    still = cv2.resize(picture, OUT, interpolation=cv2.INTER_AREA)  # 16:9 into 16:9: cover = plain scaling
    assert np.array_equal(out[weight == 0], still[weight == 0])
    assert (weight == 0).mean() > 0.7  # only a compact region around the face is animated
    assert np.abs(out[weight > 0.99].astype(int) - still[weight > 0.99]).mean() > 40  # the noise is pasted


def test_identity_leaves_no_visible_seam(picture):
    """The model returning its input: the output matches the still picture, softly at the mask's edge."""
    avatar = frame_avatar(picture, 256)
    error, weight = _identity_error(avatar)
    ring = (weight > 0) & (weight < 0.5)
    assert ring.sum() > 1000
    assert error[ring].mean() < 2.0 and np.percentile(error[ring], 99) < 12
    assert error[weight > 0].mean() < 4.0  # inside: only the 256-px round trip's softness


def test_feather_mask_is_one_inside_and_ramps_to_zero_at_the_border():
    m = feather_mask(100)
    assert m[50, 50] == 1.0 and m[0, 50] < 0.01 and m[50, 99] < 0.01
    assert np.all(np.diff(m[50, :50]) >= 0)  # monotone ramp, no step


@pytest.mark.parametrize("layout", ["picture", "fit"])
def test_a_face_at_the_picture_border_pads_the_crop_and_pastes_back_in_line(layout):
    picture = _blocks(1600, 900)
    avatar = avatar_at(picture, (60.0, 450.0, 400.0), SIZE * 4)  # reaches 140 px past the left edge
    assert np.array_equal(avatar.model_input[:, 0], avatar.model_input[:, 1])  # padded: the edge replicated
    comp = Compositor(layout, OUT)
    pl = comp.placement(avatar)
    left, top, w, h = pl.picture_box
    assert pl.roi[0] >= left and pl.roi[2] <= left + w  # nothing is pasted outside the picture (bars)
    error, weight = _identity_error(avatar, layout)
    core = weight > 0.99
    assert core.sum() > 5000 and np.median(error[core]) <= 3  # a shift by a pixel would show on every edge


def test_a_rotated_crop_gets_a_rotated_mask_that_lines_up():
    picture = _blocks(1280, 720)
    size = SIZE * 4
    to_model = cv2.getRotationMatrix2D((640.0, 360.0), 25.0, size / 300)  # a 300-px square tilted 25 degrees
    to_model[:, 2] += (size / 2 - 640.0, size / 2 - 360.0)
    model_input = cv2.warpAffine(picture, to_model, (size, size), flags=cv2.INTER_LINEAR)
    avatar = AvatarPicture(picture, cv2.invertAffineTransform(to_model), to_model, model_input)
    error, weight = _identity_error(avatar, "picture")
    ys, xs = np.nonzero(weight > 0.99)
    assert abs(xs.mean() - 640) < 2 and abs(ys.mean() - 360) < 2
    corner = (640 + 150, 360 - 150)  # the axis-aligned square's corner lies outside the tilted one
    assert weight[corner[1], corner[0]] == 0
    assert np.median(error[weight > 0.99]) <= 3


def test_a_small_face_still_lines_up():
    picture = _blocks(1920, 1080, cell=6)
    avatar = avatar_at(picture, (900.0, 500.0, 48.0), 256)  # a 48-px face square, upscaled 5x for the model
    error, weight = _identity_error(avatar)
    assert 0 < (weight > 0).sum() < 48 * 48
    assert np.median(error[weight > 0.99]) <= 4


def test_every_layout(picture):
    tall = np.ascontiguousarray(cv2.rotate(picture, cv2.ROTATE_90_CLOCKWISE))  # 1080x1920 portrait
    for layout in OUTPUT_LAYOUTS:
        for pic in (picture, tall):
            avatar = frame_avatar(pic, 256)
            out = Compositor(layout, OUT).compose(avatar, avatar.model_input, ai_label=False)
            assert out.shape == (720, 1280, 3), layout
            rows, cols = out.max(axis=(1, 2)), out.max(axis=(0, 2))
            barred = (rows == 0).any() or (cols == 0).any()
            if layout == "picture":
                assert not barred  # cover: never bars, for either aspect
            elif pic is tall:
                assert barred  # fit / face: padded
    square = frame_avatar(picture, 256)
    face = Compositor("face", OUT).compose(square, square.model_input, ai_label=False)
    assert np.abs(face.astype(int) - letterbox(square.model_input, OUT)).max() <= 2  # the old output


def test_cover_keeps_the_face_in_view_of_a_tall_picture():
    picture = _blocks(1000, 3000)
    avatar = avatar_at(picture, (500.0, 300.0, 400.0), 256)  # face near the top of a tall picture
    pl = Compositor("picture", OUT).placement(avatar)
    scale = 1280 / 1000
    assert pl.roi is not None and pl.roi[3] - pl.roi[1] >= 400 * scale  # the whole crop square is in view
    assert abs((pl.roi[1] + pl.roi[3]) / 2 - 360) < 30  # and centred, not cut off at the middle of the picture


def test_mirror_and_label_land_on_the_final_frame(picture):
    avatar = frame_avatar(picture, 256)
    comp = Compositor("picture", OUT)
    plain = comp.compose(avatar, None, ai_label=False)
    mirrored = comp.compose(avatar, None, mirror=True, ai_label=False)
    assert np.array_equal(mirrored, plain[:, ::-1])
    labelled = comp.compose(avatar, None, mirror=True)
    changed = np.nonzero((labelled != mirrored).any(axis=2))
    assert changed[0].min() > 600 and changed[1].min() > 1100  # bottom-right corner only


def test_huge_pictures_are_scaled_down_once():
    avatar = frame_avatar(_blocks(4000, 3000), 256)
    assert max(avatar.picture.shape[:2]) == MAX_PICTURE_SIDE
