"""Detail from the avatar (engine/detail.py) and the dense motion field the engine exposes for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synthetic import driving_frames, landscape_portrait

from avatarcam.engine import Animator, EngineOptions
from avatarcam.engine.blocks import make_coordinate_grid
from avatarcam.engine.dense_motion import MotionField
from avatarcam.engine.detail import DetailTransfer, upscale
from avatarcam.pipeline.avatar_picture import frame_avatar

MODEL = 256


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _affine_flow(side: int, angle_deg: float, scale: float, shift: tuple[float, float]) -> torch.Tensor:
    """(1,side,side,2) backward flow in grid_sample coordinates: a known rotation + zoom + shift."""
    grid = make_coordinate_grid(side, side, torch.float32, torch.device("cpu"))
    a = np.deg2rad(angle_deg)
    rot = torch.tensor([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=torch.float32) * scale
    return (grid @ rot.T + torch.tensor(shift))[None]


def _motion(flow: torch.Tensor, occlusion: torch.Tensor | None = None) -> MotionField:
    b, h, w, _ = flow.shape
    return MotionField(flow, torch.zeros(b, 1, h, w), torch.zeros(b, 1, 3, h, w), occlusion)


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    side = image.shape[-1]
    flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(side, side), mode="bilinear",
                         align_corners=False).permute(0, 2, 3, 1)
    return F.grid_sample(image, flow, align_corners=False, padding_mode="border")


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 768-px crop of a real picture: far more detail than the model's 256 px can carry."""
    avatar = frame_avatar(landscape_portrait((3840, 2160)), MODEL)
    from avatarcam.pipeline.crop import extract_crop

    return extract_crop(avatar.picture, *avatar.crop_square, 768)


def test_detail_transfer_restores_what_plain_upscaling_loses(crop):
    """Stand-in prediction = the model-size source warped by a known flow; the ground truth is the
    full-resolution crop warped by the same flow. The mechanism must get much closer than upscaling."""
    full = torch.from_numpy(crop).float().permute(2, 0, 1)[None] / 255
    small = F.interpolate(full, size=(MODEL, MODEL), mode="bilinear", antialias=True, align_corners=False)
    flow = _affine_flow(MODEL // 4, angle_deg=7.0, scale=0.93, shift=(0.05, -0.03))
    prediction = _warp(small, flow)[0].permute(1, 2, 0).numpy()
    truth = _warp(full, flow)[0].permute(1, 2, 0).numpy()
    inner = slice(40, -40)  # away from the border the warp sampled past
    hd = DetailTransfer(crop, MODEL).apply(prediction, _motion(flow, torch.ones(1, 1, MODEL // 4, MODEL // 4)))
    plain = upscale(prediction, 768)
    gain = _psnr(hd[inner, inner], truth[inner, inner]) - _psnr(plain[inner, inner], truth[inner, inner])
    assert hd.shape == truth.shape and gain > 6.0, gain


def test_nothing_is_added_where_the_source_is_occluded(crop):
    flow = _affine_flow(MODEL // 4, 0.0, 1.0, (0.0, 0.0))
    prediction = crop[::3, ::3].astype(np.float32) / 255
    hd = DetailTransfer(crop, MODEL).apply(prediction, _motion(flow, torch.zeros(1, 1, MODEL // 4, MODEL // 4)))
    assert np.abs(hd - upscale(prediction, 768)).max() < 1e-5


@pytest.fixture(scope="module")
def animator(tiny_checkpoint):
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32", backend="torch"))
    frames = driving_frames(3, anim.size)
    anim.set_source(frames[0])
    anim.calibrate(frames[0])
    return anim, frames


def test_the_engine_exposes_the_motion_field_of_the_same_forward(animator):
    anim, frames = animator
    plain = anim.animate(frames[2])
    assert anim.last_motion() is None  # not asked for: nothing kept
    assert anim.set_motion_output(True) is None  # the torch backend can
    try:
        with_motion = anim.animate(frames[2])
        motion = anim.last_motion()
        assert np.abs(with_motion - plain).max() < 1e-5  # the same picture
        assert motion.deformation.shape == (1, anim.size // 4, anim.size // 4, 2)
        assert motion.occlusion_map is not None and motion.occlusion_map.shape[-1] == anim.size // 4
        anim.animate(frames[1])
        assert anim.last_motion() is not motion  # each frame its own field
    finally:
        anim.set_motion_output(False)


def test_a_backend_without_the_field_says_so_once_and_still_animates(tiny_checkpoint, tmp_path):
    """ONNX Runtime runs the exported graph, which returns the picture only: detail transfer is
    unavailable there, with one line saying why, and animating carries on."""
    pytest.importorskip("onnxruntime")
    from avatarcam.engine import load_networks
    from avatarcam.engine.export import export_onnx

    export_onnx(load_networks(tiny_checkpoint), tmp_path / "onnx")
    options = EngineOptions(device="cpu", precision="fp32", backend="onnx", onnx_dir=str(tmp_path / "onnx"))
    anim = Animator.from_checkpoint(tiny_checkpoint, options)
    assert anim.options.backend == "onnx"
    frames = driving_frames(2, anim.size)
    anim.set_source(frames[0])
    reason = anim.set_motion_output(True)
    assert reason and "torch backend" in reason and "\n" not in reason
    assert anim.animate(frames[1]).shape == (anim.size, anim.size, 3)
    assert anim.last_motion() is None
