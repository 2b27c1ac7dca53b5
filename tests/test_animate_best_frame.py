"""`avatarcam animate --find-best-frame / --best-frame N` and full-frame animation of non-face checkpoints."""

from __future__ import annotations

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from synthetic import Warp, astronaut_face, synthetic_state_dicts, warp_image, write_clip

from avatarcam.engine import Animator, EngineOptions, FOMMConfig
from avatarcam.video import AtomicVideoWriter, VideoReader

OWN_POSE = 5  # the driving frame that is the avatar's own picture
WARPS = [Warp(-14, 1.05, 6, -3), Warp(11, 0.95, -5, 4), Warp(-9, 1.1, 0, 6), Warp(16, 1.0, 4, 0),
         Warp(-20, 0.92, -6, -6), None, Warp(8, 1.08, 5, 5), Warp(-12, 0.97, -3, 2)]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("best")
    face = astronaut_face(256)
    frames = [face.copy() if w is None else warp_image(face, w) for w in WARPS]
    avatar = folder / "avatar.png"
    cv2.imwrite(str(avatar), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    return avatar, write_clip(folder / "drive.mp4", frames, fps=25)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "avatarcam", "animate", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _frames(path):
    with VideoReader(path) as reader:
        return [f.astype(np.float32) / 255 for f in reader]


def test_find_best_frame_picks_the_avatars_own_pose(tmp_path, scene, tiny_checkpoint):
    avatar, clip = scene
    out = tmp_path / "best.mp4"
    proc = _run(avatar, clip, "-o", out, "--checkpoint", tiny_checkpoint, "--find-best-frame")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^best frame: (\d+)$", proc.stdout, re.M).group(1) == str(OWN_POSE)
    frames = _frames(out)
    assert len(frames) == len(WARPS)  # driving order, every frame
    # the neutral frame itself reproduces the avatar: no motion relative to it
    forced = tmp_path / "forced.mp4"
    proc = _run(avatar, clip, "-o", forced, "--checkpoint", tiny_checkpoint, "--best-frame", OWN_POSE)
    assert proc.returncode == 0, proc.stderr
    assert np.abs(np.stack(_frames(forced)) - np.stack(frames)).max() <= 2 / 255


def test_best_frame_equals_animating_forward_and_backward_from_it(tmp_path, scene, tiny_checkpoint):
    """The authors' demo animates frames N.. forward and N..0 backward with frame N as neutral;
    avatarcam calibrates on N and animates in driving order: the same frames."""
    avatar, clip = scene
    out = tmp_path / "n2.mp4"
    assert _run(avatar, clip, "-o", out, "--checkpoint", tiny_checkpoint, "--best-frame", 2,
                "--precision", "fp32", "--no-ai-label",  # compare pixels: no AI badge
                "--output-layout", "face", "--output-size", "256x256").returncode == 0  # the model's square as is
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32", backend="torch"))
    anim.set_source(cv2.cvtColor(cv2.imread(str(avatar)), cv2.COLOR_BGR2RGB))
    with VideoReader(clip) as reader:
        driving = [f.astype(np.float32) / 255 for f in reader]
    forward = [anim.animate(f) for f in driving[2:]]  # first call: frame 2 becomes neutral
    backward = [anim.animate(f) for f in driving[2::-1]][1:][::-1]
    with AtomicVideoWriter(tmp_path / "expected.mp4", fps=25) as writer:  # the same lossy encoder
        for frame in backward + forward:
            writer.write(frame)
    err = np.abs(np.stack(_frames(out)) - np.stack(_frames(tmp_path / "expected.mp4")))
    assert err.max() <= 2 / 255, err.max()


@pytest.mark.parametrize("n", [-1, len(WARPS)])
def test_out_of_range_best_frame_is_one_line_before_loading(tmp_path, scene, n):
    avatar, clip = scene
    proc = _run(avatar, clip, "-o", tmp_path / "x.mp4", "--checkpoint", tmp_path / "not-loaded.pth.tar",
                "--best-frame", n)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"--best-frame {n}" in proc.stderr and "checkpoint" not in proc.stderr  # refused before the model


def test_best_frame_beyond_max_frames_is_refused(tmp_path, scene, tiny_checkpoint):
    avatar, clip = scene
    proc = _run(avatar, clip, "-o", tmp_path / "x.mp4", "--checkpoint", tiny_checkpoint,
                "--max-frames", 3, "--best-frame", 3)
    assert proc.returncode == 2 and "frames 0..2" in proc.stderr


@pytest.mark.slow
def test_taichi_layout_checkpoint_animates_full_frame(tmp_path):
    """A full-size vox-layout file named like the authors' taichi checkpoint: no flag, no stored
    config; the whole (non-square) frame is the model input, not its centre square."""
    ckpt = tmp_path / "taichi-cpk.pth.tar"
    torch.save({**synthetic_state_dicts(FOMMConfig.vox256(), 1), "epoch": 0}, ckpt)
    wide = np.zeros((120, 240, 3), np.uint8)
    wide[:, :60] = 255  # a white band the centre square would cut away
    frames = [np.roll(wide, 3 * i, axis=0) for i in range(3)]
    clip = write_clip(tmp_path / "wide.mp4", frames, fps=25)
    src = tmp_path / "src.png"
    cv2.imwrite(str(src), wide)
    out = tmp_path / "out.mp4"
    proc = _run(src, clip, "-o", out, "--checkpoint", ckpt, "--side-by-side", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    sbs = _frames(out)
    assert len(sbs) == 3
    source_panel = sbs[0][:, :1280]  # the 240x120 picture covering 1280x720: 1440 wide, 80 px cut each side
    assert source_panel[:, :200].mean() > 0.9 and source_panel[:, 400:].mean() < 0.1  # the band is in view
