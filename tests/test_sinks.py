"""Outputs as a seam (pipeline/sinks.py): registered kinds, a list of sinks in the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import wait_until
from synthetic import face_on_background, write_clip

from avatarcam.engine import Animator, EngineOptions
from avatarcam.errors import OutputError
from avatarcam.pipeline import Pipeline, PipelineConfig
from avatarcam.pipeline.sinks import Sink, make_sink, register_sink, sink_names, unregister_sink


class ProbeSink:
    """Keeps copies of what it is sent; raises from the ``fail_at``-th frame on."""

    def __init__(self, size=(1280, 720), fail_at: int = 0) -> None:
        self.size, self.fail_at = size, fail_at
        self.frames: list[np.ndarray] = []
        self.opened = self.closed = False

    def open(self) -> None:
        self.opened = True

    def send(self, frame: np.ndarray) -> None:
        if self.fail_at and len(self.frames) + 1 >= self.fail_at:
            raise OSError("probe broke")
        self.frames.append(frame.copy())

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def probe_kind():
    register_sink("probe", ProbeSink)
    try:
        yield "probe"
    finally:
        unregister_sink("probe")


def test_kinds_are_registered_listed_and_made_by_name(probe_kind):
    assert {"virtual-camera", "file", "probe"} <= set(sink_names())
    sink = make_sink("probe", size=(640, 480))
    assert isinstance(sink, Sink) and sink.size == (640, 480)
    with pytest.raises(OutputError, match="no output called 'nope'"):
        make_sink("nope")


def test_every_sink_gets_every_frame_and_a_failing_one_stops_alone(tmp_path, tiny_checkpoint, probe_kind):
    animator = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", backend="torch"))
    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 30, 200), 30)
    notices: list[str] = []
    p = Pipeline(PipelineConfig(camera=clip, vcam=False, framing="manual"), animator=animator)
    p.on_notice = notices.append
    good, bad = make_sink(probe_kind), make_sink(probe_kind, fail_at=3)
    p.add_sink(good)
    p.add_sink(bad)
    assert good.opened and bad.opened
    p.start()
    try:
        wait_until(lambda: len(good.frames) >= 6)
    finally:
        p.stop()
    assert bad.closed and len(bad.frames) == 2  # removed and closed at its failure
    assert len([n for n in notices if "probe broke" in n]) == 1
    assert good.closed and all(f.shape == (720, 1280, 3) for f in good.frames)  # stop() closes every sink
