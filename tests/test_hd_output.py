"""HD output end to end (issue 19): the whole avatar picture at 1280x720, only the face animated;
the remote client composites locally."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic import face_on_background, landscape_portrait, write_clip
from test_cli_run import run_cli

from avatarcam.engine import FOMMConfig
from avatarcam.pipeline.avatar_picture import frame_avatar
from avatarcam.pipeline.compositor import Compositor
from avatarcam.video import VideoReader


def _sharpness(image: np.ndarray, where: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))[where].mean())


def test_run_with_a_1080p_portrait_records_720p_with_only_the_face_animated(tmp_path, tiny_checkpoint):
    """The issue's done-when: `avatarcam run --avatar <1920x1080> --camera clip --record out --no-vcam`
    with no size option writes 1280x720 frames, no bars, the picture outside the face region
    unchanged from frame to frame and as sharp as the avatar picture scaled to 1280x720."""
    picture = landscape_portrait((1920, 1080))
    avatar_png = tmp_path / "portrait.png"
    cv2.imwrite(str(avatar_png), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    clip = write_clip(tmp_path / "clip.mp4", face_on_background([(150 + 4 * i, 120) for i in range(20)], 200), 30)
    out = tmp_path / "out.mp4"
    res = run_cli("--avatar", str(avatar_png), "--camera", clip, "--checkpoint", str(tiny_checkpoint),
                  "--record", str(out), "--no-vcam", "--max-frames", "8", "--device", "cpu", "--framing", "manual")
    assert res.returncode == 0, res.stderr
    with VideoReader(out) as r:
        frames = [f.astype(np.int16) for f in r]
    assert len(frames) == 8 and frames[0].shape == (720, 1280, 3)
    for f in frames:  # no black bars at any edge
        assert min(f[0].mean(), f[-1].mean(), f[:, 0].mean(), f[:, -1].mean()) > 15

    placement = Compositor("picture", (1280, 720)).placement(frame_avatar(picture, FOMMConfig.tiny().image_size))
    x0, y0, x1, y1 = placement.roi
    face = np.zeros((720, 1280), bool)
    face[y0:y1, x0:x1] = placement.mask > 0
    outside = ~face
    outside[-80:, -120:] = False  # the AI label's corner
    assert face.mean() < 0.3  # a compact region around the face
    still = cv2.resize(picture, (1280, 720), interpolation=cv2.INTER_AREA).astype(np.int16)
    for f in frames[2:]:  # unchanged frame to frame: mp4 noise only (the key frame differs more: from frame 1 on)
        assert np.abs(f - frames[1])[outside].mean() < 0.6
    assert np.abs(frames[1] - frames[0])[outside].mean() < 2.5
    assert np.abs(frames[-1] - still)[outside].mean() < 4.0  # it IS the avatar picture (mp4 is lossy)
    last = frames[-1].astype(np.uint8)
    assert _sharpness(last, outside) > 0.85 * _sharpness(still.astype(np.uint8), outside)
    inner = np.zeros_like(face)
    inner[y0:y1, x0:x1] = placement.mask > 0.99
    assert np.abs(frames[-1] - still)[inner].mean() > 8  # the face region is the model's (random weights)


@pytest.mark.parametrize("layout", ["fit", "face"])
def test_run_honours_the_output_layout_and_size(tmp_path, tiny_checkpoint, layout):
    picture = landscape_portrait((900, 1200))  # a tall picture: fit pads it
    avatar_png = tmp_path / "tall.png"
    cv2.imwrite(str(avatar_png), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    clip = write_clip(tmp_path / "clip.mp4", face_on_background([(150, 120)] * 6, 200), 30)
    out = tmp_path / "out.mp4"
    res = run_cli("--avatar", str(avatar_png), "--camera", clip, "--checkpoint", str(tiny_checkpoint),
                  "--record", str(out), "--no-vcam", "--max-frames", "3", "--device", "cpu", "--detector", "lbp",
                  "--output-layout", layout, "--output-size", "640x480")
    assert res.returncode == 0, res.stderr
    with VideoReader(out) as r:
        frame = next(iter(r))
    assert frame.shape == (480, 640, 3)
    assert frame[:, :20].max() < 30 and frame[:, -20:].max() < 30  # padded left and right


def test_detail_from_the_avatar_runs_live_and_keeps_the_outside_exact(tmp_path, tiny_checkpoint):
    from helpers import wait_until

    from avatarcam.engine import Animator, EngineOptions
    from avatarcam.pipeline import Pipeline, PipelineConfig

    animator = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", backend="torch"))
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 20, 200), 30)
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, framing="manual", avatar_detail=True,
                                avatar=landscape_portrait((1920, 1080))), animator=animator)
    outputs = []
    p.add_listener(lambda bundle: outputs.append(bundle.output) if bundle.face_found else None)
    p.start()
    try:
        wait_until(lambda: len(outputs) >= 3)
    finally:
        p.stop()
    assert animator.last_motion() is not None  # the field of the same forward was used
    assert not [n for n in p.notices if "detail" in n]
    placement = Compositor("picture", (1280, 720)).placement(p.avatar)
    x0, y0, x1, y1 = placement.roi
    outside = np.ones((720, 1280), bool)
    outside[y0:y1, x0:x1] = placement.mask == 0
    outside[-80:, -120:] = False  # the AI label
    assert np.array_equal(outputs[-1][outside], placement.background[outside])
