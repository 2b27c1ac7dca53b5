"""Nothing in avatarcam listens on a network port by default, not even while streaming."""

from __future__ import annotations

import importlib
import pkgutil
import socket

from helpers import wait_until
from synthetic import driving_frames, write_clip

import avatarcam
from avatarcam.pipeline import Pipeline, PipelineConfig


def test_no_listening_socket_while_streaming(tmp_path, tiny_checkpoint, monkeypatch):
    calls = []
    real_bind, real_listen = socket.socket.bind, socket.socket.listen

    def bind(self, address):
        calls.append(("bind", address))
        return real_bind(self, address)

    def listen(self, *args):
        calls.append(("listen", args))
        return real_listen(self, *args)

    monkeypatch.setattr(socket.socket, "bind", bind)
    monkeypatch.setattr(socket.socket, "listen", listen)
    for info in pkgutil.walk_packages(avatarcam.__path__, "avatarcam."):
        # GUI modules need a QApplication (the GUI tests cover them); __main__ would run the CLI
        if ".gui" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    clip = write_clip(tmp_path / "cam.mp4", driving_frames(20, size=128))
    pipeline = Pipeline(PipelineConfig(camera=str(clip), checkpoint=str(tiny_checkpoint), device="cpu",
                                       detector="lbp", vcam=False, record=str(tmp_path / "rec.mp4")))
    pipeline.start()
    try:
        wait_until(lambda: pipeline.stats().frames_out >= 10, message="10 frames out")
    finally:
        pipeline.stop()
    assert pipeline.stats().frames_out >= 10
    assert [c for c in calls if c[0] == "listen"] == []
