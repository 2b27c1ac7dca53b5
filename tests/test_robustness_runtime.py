"""Faults while running: the stream survives, says what happened, and exits cleanly from any state."""

from __future__ import annotations

import collections

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


def test_disk_almost_full_stops_recording_keeps_file_and_stream(tmp_path, clip, tiny_checkpoint, monkeypatch):
    free = {"bytes": 10 << 30}
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr("avatarcam.pipeline.outputs.shutil.disk_usage",
                        lambda _p: usage(100 << 30, 0, free["bytes"]))
    notices = []
    out = tmp_path / "rec.mp4"
    p = Pipeline(PipelineConfig(camera=str(clip), checkpoint=str(tiny_checkpoint), device="cpu", detector="lbp",
                                vcam=False, record=str(out)))
    p.on_notice = notices.append
    p.start()
    try:
        wait_until(lambda: p.stats().recorded_frames >= FileSink.CHECK_EVERY)
        free["bytes"] = 50 << 20  # the disk fills up
        wait_until(lambda: any("almost full" in n for n in notices))
        n = p.stats().frames_out
        wait_until(lambda: p.stats().frames_out > n + 5)  # the stream goes on
    finally:
        p.stop()
    assert out.exists() and out.stat().st_size > 0  # what was recorded is kept
    assert not list(tmp_path.glob(".rec.*"))


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
