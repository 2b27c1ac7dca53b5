"""`avatarcam animate` end to end on a synthesized astronaut clip, with the tiny model."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from synthetic import astronaut_face, driving_frames, write_clip

from avatarcam.video import AtomicVideoWriter, VideoReader


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "drive.mp4", driving_frames(9, size=200), fps=25)


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "avatarcam", "animate", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def _avatar(tmp_path, name, image):
    path = tmp_path / name
    assert cv2.imwrite(str(path), image)
    return path


def test_animate_writes_every_frame(tmp_path, clip, tiny_checkpoint):
    src = _avatar(tmp_path, "face.png", cv2.cvtColor(astronaut_face(300), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out.mp4"
    proc = _run(src, clip, "-o", out, "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 0, proc.stderr
    with VideoReader(out) as reader:
        frames = list(reader)
        assert reader.fps == pytest.approx(25, abs=0.5)
    assert len(frames) == 9 and frames[0].shape == (720, 1280, 3)  # the default output size
    assert np.std([f.mean() for f in frames]) > 0  # the animation changes over time


def test_side_by_side_and_max_frames(tmp_path, clip, tiny_checkpoint):
    src = _avatar(tmp_path, "face.jpg", cv2.cvtColor(astronaut_face(256), cv2.COLOR_RGB2BGR))
    out = tmp_path / "sbs.mp4"
    proc = _run(src, clip, "-o", out, "--checkpoint", tiny_checkpoint, "--side-by-side", "--max-frames", 4)
    assert proc.returncode == 0, proc.stderr
    with VideoReader(out) as reader:
        frames = list(reader)
    assert len(frames) == 4 and frames[0].shape == (720, 3 * 1280, 3)  # source | driving | result


@pytest.mark.parametrize("kind", ["grey", "rgba", "16bit", "wide"])
def test_any_avatar_format_is_converted(tmp_path, clip, tiny_checkpoint, kind):
    face = cv2.cvtColor(astronaut_face(200), cv2.COLOR_RGB2BGR)
    image = {
        "grey": cv2.cvtColor(face, cv2.COLOR_BGR2GRAY),
        "rgba": np.dstack([face, np.full(face.shape[:2], 200, np.uint8)]),
        "16bit": face.astype(np.uint16) * 257,
        "wide": np.hstack([face, face, face]),
    }[kind]
    src = _avatar(tmp_path, f"{kind}.png", image)
    out = tmp_path / f"{kind}.mp4"
    proc = _run(src, clip, "-o", out, "--checkpoint", tiny_checkpoint, "--max-frames", 2)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("case", ["missing-image", "text-image", "empty-video", "text-video", "no-frames"])
def test_bad_inputs_fail_with_one_line(tmp_path, clip, tiny_checkpoint, case):
    src = _avatar(tmp_path, "face.png", cv2.cvtColor(astronaut_face(64), cv2.COLOR_RGB2BGR))
    video = clip
    if case == "missing-image":
        src = tmp_path / "nope.png"
    elif case == "text-image":
        src = tmp_path / "text.png"
        src.write_text("not an image")
    elif case == "empty-video":
        video = tmp_path / "empty.mp4"
        video.write_bytes(b"")
    elif case == "text-video":
        video = tmp_path / "text.mp4"
        video.write_text("not a video " * 100)
    elif case == "no-frames":
        video = tmp_path / "header-only.mp4"
        cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 64)).release()
    out = tmp_path / "out.mp4"
    proc = _run(src, video, "-o", out, "--checkpoint", tiny_checkpoint)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("avatarcam: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))  # no partial file left behind


def test_atomic_writer_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "video.mp4"
    with pytest.raises(RuntimeError):
        with AtomicVideoWriter(target, fps=10) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("case", ["truncated", "text", "malicious"])
def test_bad_checkpoints_fail_with_one_line(tmp_path, clip, tiny_checkpoint, case):
    import torch

    src = _avatar(tmp_path, "face.png", cv2.cvtColor(astronaut_face(64), cv2.COLOR_RGB2BGR))
    ckpt = tmp_path / f"{case}.pth.tar"
    marker = tmp_path / "code-ran"
    if case == "truncated":
        data = tiny_checkpoint.read_bytes()
        ckpt.write_bytes(data[: len(data) // 3])
    elif case == "text":
        ckpt.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 228\n")
    else:
        torch.save({"kp_detector": {}, "generator": {}, "epoch": _Exploit(marker)}, ckpt)
    out = tmp_path / "out.mp4"
    proc = _run(src, clip, "-o", out, "--checkpoint", ckpt)
    assert proc.returncode == 2
    progress, error = proc.stderr.splitlines(keepends=True)  # "loading the model ...", then one error line
    assert progress == "avatarcam: loading the model ...\n" and error.startswith("avatarcam: error:"), proc.stderr
    assert str(ckpt) in proc.stderr
    assert not out.exists() and not marker.exists()


def _frames_of(path):
    with VideoReader(path) as reader:
        return list(reader)


def test_animate_checks_the_output_folder_before_loading_the_model(tmp_path, clip):
    src = _avatar(tmp_path, "face.png", cv2.cvtColor(astronaut_face(64), cv2.COLOR_RGB2BGR))
    # the checkpoint does not exist: had the model been loaded first, the error would name it
    proc = _run(src, clip, "-o", tmp_path / "no-such-folder" / "out.mp4", "--checkpoint", tmp_path / "missing.pth")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no-such-folder" in proc.stderr and "missing.pth" not in proc.stderr
    assert "loading the model" not in proc.stderr


def test_animate_labels_tags_and_respects_the_umask(tmp_path, clip, tiny_checkpoint):
    from mutagen.mp4 import MP4

    from avatarcam.video import SYNTHETIC_NOTE

    src = _avatar(tmp_path, "face.png", cv2.cvtColor(astronaut_face(256), cv2.COLOR_RGB2BGR))
    labelled, plain = tmp_path / "labelled.mp4", tmp_path / "plain.mp4"
    for out, flag in ((labelled, "--ai-label"), (plain, "--no-ai-label")):
        proc = subprocess.run(["sh", "-c", 'umask 027 && exec "$0" -m avatarcam animate "$@"', sys.executable,
                               str(src), str(clip), "-o", str(out), "--checkpoint", str(tiny_checkpoint),
                               "--max-frames", "3", "--device", "cpu", "--precision", "fp32", flag],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "loading the model ..." in proc.stderr
        assert "\r" not in proc.stderr  # stderr is not a terminal: no progress-bar updates in logs
        assert (out.stat().st_mode & 0o777) == 0o640
        assert MP4(str(out)).tags["\xa9cmt"] == [SYNTHETIC_NOTE]
    a, b = (np.stack(_frames_of(p)).astype(np.int16) for p in (labelled, plain))
    diff = np.abs(a - b).max(axis=(0, 3)) > 40  # where the label changed the picture
    ys, xs = np.nonzero(diff)
    assert len(ys) > 20, "no label drawn"
    assert ys.min() > 720 * 0.8 and xs.min() > 1280 * 0.8  # only in the bottom-right corner
    corner = a[:, int(ys.min()):, int(xs.min()):]
    assert corner.max() > 200 and corner.min() < 60  # light text on a dark box: legible


def test_side_by_side_letterboxes_a_4_3_driving_frame(tmp_path, tiny_checkpoint):
    frames = [cv2.resize(f, (160, 120)) for f in driving_frames(3, size=200)]  # 4:3, no black rows
    clip = write_clip(tmp_path / "wide.mp4", [np.clip(f, 40, 255).astype(np.uint8) for f in frames], fps=25)
    src = _avatar(tmp_path, "face.png", cv2.cvtColor(astronaut_face(256), cv2.COLOR_RGB2BGR))
    out = tmp_path / "sbs.mp4"
    proc = _run(src, clip, "-o", out, "--checkpoint", tiny_checkpoint, "--side-by-side", "--no-ai-label")
    assert proc.returncode == 0, proc.stderr
    panel = _frames_of(out)[0][:, 1280:2560].astype(np.float32).mean(axis=(0, 2))
    bar = (1280 - 960) // 2  # 720 high -> 960 wide: 160 black columns left and right
    assert panel[: bar - 3].max() < 12 and panel[-(bar - 3):].max() < 12
    assert panel[bar + 3: -(bar + 3)].min() > 30  # the picture itself, full width of its 4:3


def test_animate_backend_choice_reaches_the_engine(tmp_path, clip, tiny_checkpoint):
    src = _avatar(tmp_path, "face.png", cv2.cvtColor(astronaut_face(128), cv2.COLOR_RGB2BGR))
    out = tmp_path / "onnx.mp4"
    proc = _run(src, clip, "-o", out, "--checkpoint", tiny_checkpoint, "--max-frames", 2, "--backend", "onnx",
                "--precision", "fp32", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "to ONNX" in proc.stderr  # the onnx backend exported the model before running it
    assert len(_frames_of(out)) == 2
