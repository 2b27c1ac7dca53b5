"""`avatarcam run` end to end in a subprocess."""

from __future__ import annotations

import glob
import os
import platform
import subprocess
import sys

import pytest
from synthetic import face_on_background, write_clip

from avatarcam.video import VideoReader


def run_cli(*args, env_extra=None, timeout=120):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "avatarcam", "run", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    positions = [(150 + 4 * i, 120 + 2 * i) for i in range(30)]
    return write_clip(path, face_on_background(positions, 200), 30)


def test_run_records_from_a_clip(tmp_path, clip, tiny_checkpoint):
    out = tmp_path / "out.mp4"
    res = run_cli("--camera", clip, "--checkpoint", str(tiny_checkpoint), "--record", str(out), "--max-frames", "12",
                  "--no-vcam", "--device", "cpu", "--detector", "lbp")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "fps" in res.stderr and "dropped" in res.stderr  # status line
    with VideoReader(out) as r:
        frames = list(r)
    assert len(frames) >= 10 and frames[0].shape == (720, 1280, 3)  # the default output size


@pytest.mark.skipif(platform.system() != "Linux" or bool(glob.glob("/dev/video*")),
                    reason="needs a Linux machine without v4l2loopback")
def test_run_vcam_missing_prints_fix(tmp_path, clip, tiny_checkpoint):
    # with no other output: a clear error and a non-zero exit
    res = run_cli("--camera", clip, "--checkpoint", str(tiny_checkpoint), "--max-frames", "5", "--vcam",
                  "--device", "cpu", "--detector", "lbp")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr and "v4l2loopback" in res.stderr
    # with a recording as well: the fix is printed and the run carries on (exit 0)
    out = tmp_path / "out.mp4"
    res = run_cli("--camera", clip, "--checkpoint", str(tiny_checkpoint), "--max-frames", "5", "--vcam",
                  "--record", str(out), "--device", "cpu", "--detector", "lbp")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "v4l2loopback" in res.stderr and out.is_file()


def test_run_missing_camera_index(tmp_path, tiny_checkpoint):
    res = run_cli("--camera", "7", "--checkpoint", str(tiny_checkpoint), "--no-vcam", "--device", "cpu",
                  "--detector", "lbp", "--record", str(tmp_path / "out.mp4"))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "camera 7" in lines[0], res.stderr


def test_run_options_are_checked_against_the_declared_choices_and_ranges(capsys):
    from avatarcam.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", "--precision", "bf16", "--fps", "60", "--size", "1280x720"])
    assert (args.precision, args.fps, args.size) == ("bf16", 60.0, (1280, 720))
    for bad in (["--precision", "fp8"], ["--fps", "0"], ["--fps", "1000"], ["--size", "8x8"], ["--backend", "tf"],
                ["--max-frames", "-1"], ["--max-frames", "2.5"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", *bad])
        assert f"argument {bad[0]}" in capsys.readouterr().err


def test_run_backend_choice_reaches_the_engine_options():
    from avatarcam.cli import build_parser
    from avatarcam.commands.run import _config

    for backend in ("auto", "torch", "onnx"):
        args = build_parser().parse_args(["run", "--backend", backend])
        assert _config(args).engine_options().backend == backend


@pytest.mark.parametrize("case", ["avatar", "camera-file", "record-folder", "no-output", "record-mkv",
                                  "record-is-a-folder", "camera-not-a-video", "camera-damaged-video"])
def test_run_checks_cheap_things_before_loading_the_model(tmp_path, clip, case):
    # the checkpoint does not exist: had the model been loaded first, the error would name it
    (tmp_path / "videos").mkdir()
    (tmp_path / "notes.jpg").write_text("my notes\n" * 50)  # FFmpeg opens it (image2) but gets no frame
    damaged = bytearray(open(clip, "rb").read())
    moov = damaged.find(b"moov")
    damaged[48:moov - 8] = bytes(moov - 56)  # the index intact, every frame zeroed
    (tmp_path / "damaged.mp4").write_bytes(damaged)
    args = {"avatar": ["--avatar", str(tmp_path / "nope.png")],
            "camera-file": ["--camera", str(tmp_path / "nope.mp4")],
            "record-folder": ["--record", str(tmp_path / "no-such-folder" / "out.mp4")],
            "no-output": ["--no-vcam"],
            "record-mkv": ["--record", str(tmp_path / "out.mkv")],
            "record-is-a-folder": ["--record", str(tmp_path / "videos")],
            "camera-not-a-video": ["--camera", str(tmp_path / "notes.jpg")],
            "camera-damaged-video": ["--camera", str(tmp_path / "damaged.mp4")]}[case]
    if not case.startswith("camera"):
        args = ["--camera", clip, *args]
    if case in ("avatar", "camera-file", "camera-not-a-video", "camera-damaged-video"):
        args += ["--record", str(tmp_path / "out.mp4")]
    res = run_cli(*args, "--no-vcam", "--checkpoint", str(tmp_path / "missing.pth.tar"), "--device", "cpu",
                  timeout=60)  # before: the camera files that are not videos retried "lost (no frames)" forever
    lines = [line for line in res.stderr.splitlines() if line.strip() and "@" not in line]  # (FFmpeg's own log)
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("avatarcam: error:"), res.stderr
    assert "missing.pth.tar" not in res.stderr and "loading the model" not in res.stderr
    expected = {"avatar": "nope.png", "camera-file": "nope.mp4", "record-folder": "no-such-folder",
                "no-output": "--no-vcam without --record", "record-mkv": f"use {tmp_path / 'out.mp4'}",
                "record-is-a-folder": "videos: is a folder", "camera-not-a-video": "notes.jpg: not a readable video",
                "camera-damaged-video": "damaged.mp4: not a readable video"}[case]
    assert expected in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*.m*")) == ["damaged.mp4"]  # no recording, no part file


def test_run_max_frames_records_exactly_that_many_frames(tmp_path, clip, tiny_checkpoint):
    out = tmp_path / "out.mp4"
    res = run_cli("--camera", clip, "--checkpoint", str(tiny_checkpoint), "--record", str(out), "--max-frames", "10",
                  "--no-vcam", "--device", "cpu", "--detector", "lbp", "--fps", "30")
    assert res.returncode == 0, res.stderr
    assert "loading the model ..." in res.stderr
    done = next(line for line in res.stderr.splitlines() if "done:" in line)
    assert "| frames 10 |" in done, res.stderr
    assert f"recorded 10 frames to {out}" in res.stderr
    with VideoReader(out) as r:
        assert len(list(r)) == 10 and r.fps == pytest.approx(30)
    assert "\r" not in res.stderr  # stderr is a pipe here: plain lines, no terminal updates


def test_run_recording_is_tagged_synthetic_and_respects_the_umask(tmp_path, clip, tiny_checkpoint):
    from mutagen.mp4 import MP4

    from avatarcam.video import SYNTHETIC_NOTE

    out = tmp_path / "out.mp4"
    res = subprocess.run(["sh", "-c", 'umask 022 && exec "$0" -m avatarcam run "$@"', sys.executable,
                          "--camera", clip, "--checkpoint", str(tiny_checkpoint), "--record", str(out),
                          "--max-frames", "3", "--no-vcam", "--device", "cpu", "--detector", "lbp"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (out.stat().st_mode & 0o777) == 0o644
    tags = MP4(str(out)).tags
    assert tags["\xa9cmt"] == [SYNTHETIC_NOTE] and tags["desc"] == [SYNTHETIC_NOTE]
    assert "avatarcam" in SYNTHETIC_NOTE and "ynthetic" in SYNTHETIC_NOTE


def test_run_help_states_the_recording_semantics(capsys):
    from avatarcam.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "every output frame exactly once" in text and "not padded to real time" in text
    from avatarcam.engine.options import BACKENDS

    assert "--ai-label, --no-ai-label" in text and "{" + ",".join(BACKENDS) + "}" in text
