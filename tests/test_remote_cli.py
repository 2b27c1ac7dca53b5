"""`avatarcam serve` and the client options: the bad-input paths, each one line (no Ray started)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest
from helpers import wait_until

from avatarcam.cli import main
from avatarcam.errors import AvatarcamError
from avatarcam.remote.cli import TOKEN_ENV, add_client_arguments, connect_from_args
from avatarcam.remote.client import RemoteAnimator

pytest_plugins = ["remote_fixtures"]


def test_serve_without_weights_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.pth.tar"
    assert main(["serve", "--checkpoint", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "--checkpoint" in err[0]


@pytest.mark.parametrize("argv", [["--port", "70000"], ["--replicas", "-1"], ["--device", "tpu"],
                                  ["--precision", "fp8"]])
def test_serve_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", *argv])
    assert exit_.value.code == 2
    assert f"argument {argv[0]}" in capsys.readouterr().err


def _client_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    return parser.parse_args(list(argv))


def test_no_remote_means_local():
    assert connect_from_args(_client_args()) is None


def test_remote_needs_a_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(AvatarcamError, match="token"):
        connect_from_args(_client_args("--remote", "ws://127.0.0.1:1"))


def test_keypoint_uplink_needs_local_weights(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "t")
    with pytest.raises(AvatarcamError, match="--uplink image"):
        connect_from_args(_client_args("--remote", "ws://127.0.0.1:1", "--uplink", "keypoints"))


def test_unreachable_worker_is_one_line(monkeypatch, astronaut, loopback_port):
    monkeypatch.setenv(TOKEN_ENV, "t")
    port = loopback_port  # nothing listens there
    with pytest.raises(AvatarcamError, match=f"127.0.0.1:{port}.*(refused|Errno)"):
        connect_from_args(_client_args("--remote", f"ws://127.0.0.1:{port}", "--uplink", "image"), astronaut)


def test_serve_command_says_ready_serves_healthz_and_stops_on_ctrl_c(tiny_checkpoint, loopback_port, astronaut):
    """The real command in its own process, with its own embedded Ray instance; a session on it moves to
    the replica's own port (the command turns Serve's direct ingress on itself)."""
    pytest.importorskip("ray.serve")
    port = loopback_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_")}  # nothing inherited from tests
    proc = subprocess.Popen([sys.executable, "-m", "avatarcam", "serve", "--checkpoint", str(tiny_checkpoint),
                             "--port", str(port), "--device", "cpu", "--precision", "fp32"],
                            env={**env, TOKEN_ENV: "t"}, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("worker ready" in line for line in lines) or proc.poll() is not None, timeout=120)
        ready = [line for line in lines if line.startswith("avatarcam:")]
        assert ready == [f"avatarcam: worker ready on ws://127.0.0.1:{port} (1 replica(s), 0 GPU each); health at "
                         f"http://127.0.0.1:{port}/healthz; Ctrl-C stops\n"], lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            assert json.loads(reply.read())["engine"] == "torch-cpu fp32"
        client = RemoteAnimator.connect(f"ws://127.0.0.1:{port}", "t", avatar=astronaut, mode="image")
        try:
            assert client.stats().path == "direct"
        finally:
            client.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert any("stopping the worker" in line for line in lines)
