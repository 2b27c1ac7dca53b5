"""Faults while running: the stream survives, says what happened, and exits cleanly from any state."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from helpers import SlowAnimator, wait_until
from synthetic import astronaut_face, driving_frames, write_clip

from avatarcam.engine import Animator, EngineOptions
from avatarcam.pipeline import FileSink, Pipeline, PipelineConfig
from avatarcam.pipeline.loading import load_animator


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("cam") / "cam.mp4", driving_frames(30, size=160), fps=30)


def test_cuda_unavailable_at_load_falls_back_to_cpu(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this check needs a machine without CUDA; the OOM case below covers GPUs")
    notices = []
    anim = load_animator(tiny_checkpoint, EngineOptions(device="cuda", precision="fp16"), notice=notices.append)
    assert anim.options.device == "cpu" and anim.options.precision in ("fp32", "bf16")
    assert len(notices) == 1 and "CPU" in notices[0]


def test_cuda_out_of_memory_at_load_falls_back_to_cpu(tiny_checkpoint, monkeypatch):
    real = Animator.from_checkpoint.__func__

    def fake(cls, path, options=None, **kw):
        if options.device != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return real(cls, path, options, **kw)

    monkeypatch.setattr(Animator, "from_checkpoint", classmethod(fake))
    notices = []
    anim = load_animator(tiny_checkpoint, EngineOptions(device="auto"), notice=notices.append)
    assert anim.options.device == "cpu"
    assert "out of memory" in notices[0] and "CPU" in notices[0]


def test_deleted_avatar_keeps_the_cached_one(tmp_path, clip, tiny_checkpoint):
    import cv2

    avatar = tmp_path / "me.png"
    cv2.imwrite(str(avatar), cv2.cvtColor(astronaut_face(200), cv2.COLOR_RGB2BGR))
    other = astronaut_face(256)[:, ::-1].copy()
    p = Pipeline(PipelineConfig(camera=str(clip), checkpoint=str(tiny_checkpoint), device="cpu", detector="lbp",
                                vcam=False, avatar=str(avatar)))
    p.start()
    try:
        wait_until(lambda: p.stats().frames_out >= 3)
        in_use = p.avatar_image.copy()
        p.set_avatar(other)
        wait_until(lambda: not np.array_equal(p.avatar_image, in_use))
        avatar.unlink()  # the user deletes the file while avatarcam runs
        p.set_avatar(str(avatar))  # e.g. pressing its number key again
        wait_until(lambda: np.array_equal(p.avatar_image, in_use))
        n = p.stats().frames_out
        wait_until(lambda: p.stats().frames_out > n + 3)
    finally:
        p.stop()


def test_small_disk_fills_up_recording_is_finished_and_kept_stream_goes_on(tmp_path, clip, tiny_checkpoint,
                                                                             monkeypatch):
    """A drive with little room (before: nothing saved and a 0-byte hidden part file left behind)."""
    frame_bytes = 640 * 480 * 3
    capacity = FileSink.FINISH_RESERVE + FileSink.FRAMES_IN_FLIGHT * frame_bytes + (300 << 10)
    usage = collections.namedtuple("usage", "total used free")

    def disk_usage(_path):  # a disk of `capacity` bytes holding what is in tmp_path
        used = sum(f.stat().st_size for f in tmp_path.iterdir() if f.is_file())
        return usage(capacity, used, capacity - used)

    monkeypatch.setattr("avatarcam.pipeline.outputs.shutil.disk_usage", disk_usage)
    notices = []
    out = tmp_path / "rec.mp4"
    p = Pipeline(PipelineConfig(camera=str(clip), checkpoint=str(tiny_checkpoint), device="cpu", detector="lbp",
                                vcam=False, record=str(out), vcam_size=(640, 480)))  # the frame_bytes above
    p.on_notice = notices.append
    p.start()
    try:
        wait_until(lambda: any("almost full" in n for n in notices))
        n = p.stats().frames_out
        wait_until(lambda: p.stats().frames_out > n + 5)  # the stream goes on
    finally:
        p.stop()
    [notice] = [n for n in notices if "almost full" in n]
    saved = int(re.search(rf"the first (\d+) frames are saved in {re.escape(str(out))}", notice).group(1))
    assert saved > 0 and p.stats().recorded_frames == saved
    cap = cv2.VideoCapture(str(out))  # finished: plays, every frame
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == saved
    cap.release()
    assert out.stat().st_size <= capacity - FileSink.FINISH_RESERVE  # stopped with room to finish
    assert [f.name for f in tmp_path.iterdir()] == ["rec.mp4"]  # no hidden part file


def test_no_room_at_all_saves_nothing_and_leaves_no_part_file(tmp_path, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr("avatarcam.pipeline.outputs.shutil.disk_usage", lambda _p: usage(1 << 30, 1 << 30, 1 << 20))
    notices = []
    sink = FileSink(str(tmp_path / "rec.mp4"), 30.0, on_error=notices.append)
    sink.write(np.zeros((48, 64, 3), np.uint8))
    assert sink.close() is None
    assert notices == [f"recording to {tmp_path / 'rec.mp4'} stopped: the disk is almost full (1 MB free); "
                       f"no video was saved; free some space or record to another drive."]
    assert list(tmp_path.iterdir()) == []


def test_write_failure_keeps_what_was_recorded(tmp_path, monkeypatch):
    """A writer that fails mid-recording (e.g. the encoder): the frames before it are kept, playable."""
    import errno

    notices = []
    sink = FileSink(str(tmp_path / "rec.mp4"), 30.0, on_error=notices.append)
    for i in range(5):
        sink.write(np.full((48, 64, 3), 40 * i, np.uint8))
    wait_until(lambda: sink.frames == 5)
    real_write = sink.writer.write

    def failing(frame):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sink.writer, "write", failing)
    sink.write(np.zeros((48, 64, 3), np.uint8))
    wait_until(lambda: bool(notices))
    assert real_write is not None and sink.close() == str(tmp_path / "rec.mp4")
    assert "Input/output error; the first 5 frames are saved in" in notices[0]
    cap = cv2.VideoCapture(str(tmp_path / "rec.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


@pytest.fixture
def small_disk(tmp_path):
    """A real, tiny file system (tmpfs) where the machine lets us mount one (root on Linux)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size_kb = (FileSink.FINISH_RESERVE + FileSink.FRAMES_IN_FLIGHT * 320 * 240 * 3 + (16 << 10)) >> 10
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)],
                         capture_output=True, text=True) if shutil.which("mount") else None
    if res is None or res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the simulated small disk above covers the logic")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_real_full_disk_run_keeps_a_playable_recording(small_disk, tmp_path, tiny_checkpoint):
    # noise passed through: big frames, so the encoder's 256 KB write buffer reaches the disk at once
    rng = np.random.default_rng(0)
    noise = write_clip(tmp_path / "noise.mp4", [rng.integers(0, 255, (240, 320, 3), np.uint8) for _ in range(30)])
    out = small_disk / "out.mp4"
    res = subprocess.run([sys.executable, "-m", "avatarcam", "run", "--camera", noise, "--passthrough",
                          "--checkpoint", str(tiny_checkpoint), "--record", str(out), "--no-vcam", "--device", "cpu",
                          "--detector", "lbp", "--size", "320x240", "--output-size", "320x240", "--max-frames", "60"],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    saved = int(re.search(r"the first (\d+) frames are saved in", res.stderr).group(1))
    assert f"recorded {saved} frames to {out}" in res.stderr and saved < 60
    cap = cv2.VideoCapture(str(out))
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == saved
    cap.release()
    assert [f.name for f in small_disk.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("state", ["worker-mid-frame", "camera-retrying", "vcam-missing"])
def test_stop_from_any_state_joins_every_thread_within_a_second(tmp_path, clip, tiny_checkpoint, state, fake_vcam):
    from avatarcam.errors import CameraError
    from avatarcam.pipeline.capture import OpenCVSource

    opened = []

    def dying_opener(spec, size, fps):
        opened.append(spec)
        if len(opened) > 1:
            raise CameraError("camera unplugged")
        return OpenCVSource(spec, size, fps)

    cfg = PipelineConfig(camera=str(clip), checkpoint=str(tiny_checkpoint), device="cpu", detector="lbp",
                         vcam=state == "vcam-missing", vcam_backend="avatarcam-missing",
                         loop_video=state != "camera-retrying")
    animator = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"))
    if state == "worker-mid-frame":
        animator = SlowAnimator(animator, 0.6)
    p = Pipeline(cfg, animator=animator, opener=dying_opener if state == "camera-retrying" else None)
    p.start()
    if state == "camera-retrying":
        wait_until(lambda: p.stats().camera_state in ("retrying", "ended"))
    else:
        wait_until(lambda: p.stats().frames_out >= 1)
    p.stop(timeout=1.0)  # joins with that deadline: a thread still busy (a whole slow frame) stays alive
    alive = [t.name for t in p.threads() if t.is_alive()]
    assert alive == [], alive
    if state == "vcam-missing":
        assert p.notices and "virtual camera" in p.notices[0]
