"""Faults while running: the stream survives, says what happened, and exits cleanly from any state."""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest
import torch

from avatarcam.demo import astronaut_face, driving_frames, write_clip
from avatarcam.engine import Animator, EngineOptions
from avatarcam.pipeline import FileSink, Pipeline, PipelineConfig
from avatarcam.pipeline.loading import load_animator


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("cam") / "cam.mp4", driving_frames(30, size=160), fps=30)


def _wait(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


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
        assert _wait(lambda: p.stats().frames_out >= 3)
        in_use = p.avatar_image.copy()
        p.set_avatar(other)
        assert _wait(lambda: not np.array_equal(p.avatar_image, in_use))
        avatar.unlink()  # the user deletes the file while avatarcam runs
        p.set_avatar(str(avatar))  # e.g. pressing its number key again
        assert _wait(lambda: np.array_equal(p.avatar_image, in_use), 5)
        n = p.stats().frames_out
        assert _wait(lambda: p.stats().frames_out > n + 3)
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
        assert _wait(lambda: p._recorder is not None and p._recorder.frames >= FileSink.CHECK_EVERY)
        free["bytes"] = 50 << 20  # the disk fills up
        assert _wait(lambda: any("almost full" in n for n in notices))
        n = p.stats().frames_out
        assert _wait(lambda: p.stats().frames_out > n + 5)  # the stream goes on
    finally:
        p.stop()
    assert out.exists() and out.stat().st_size > 0  # what was recorded is kept
    assert not list(tmp_path.glob(".rec.*"))


class SlowAnimator:
    """Wraps an Animator so each frame takes long: stop() must not wait for a whole frame."""

    def __init__(self, inner, delay):
        self._inner, self._delay = inner, delay

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def animate_keypoints(self, kp):
        time.sleep(self._delay)
        return self._inner.animate_keypoints(kp)


@pytest.mark.parametrize("state", ["worker-mid-frame", "camera-retrying", "vcam-missing"])
def test_stop_from_any_state_joins_every_thread_within_a_second(tmp_path, clip, tiny_checkpoint, state):
    from avatarcam.errors import CameraError
    from avatarcam.pipeline.capture import OpenCVSource

    opened = []

    def dying_opener(spec, size, fps):
        opened.append(spec)
        if len(opened) > 1:
            raise CameraError("camera unplugged")
        return OpenCVSource(spec, size, fps)

    cfg = PipelineConfig(camera=str(clip), checkpoint=str(tiny_checkpoint), device="cpu", detector="lbp",
                         vcam=state == "vcam-missing", loop_video=state != "camera-retrying")
    animator = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"))
    if state == "worker-mid-frame":
        animator = SlowAnimator(animator, 0.6)
    p = Pipeline(cfg, animator=animator, opener=dying_opener if state == "camera-retrying" else None)
    p.start()
    if state == "camera-retrying":
        assert _wait(lambda: p.stats().camera_state in ("retrying", "ended"))
    else:
        assert _wait(lambda: p.stats().frames_out >= 1)
    t0 = time.monotonic()
    p.stop(timeout=1.0)
    elapsed = time.monotonic() - t0
    alive = [t.name for t in p.threads() if t.is_alive()]
    assert alive == [] and elapsed < 1.2, (alive, elapsed)
