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


def test_unreachable_worker_is_one_line_with_a_hint(monkeypatch, astronaut, loopback_port):
    monkeypatch.setenv(TOKEN_ENV, "t")
    port = loopback_port  # nothing listens there
    with pytest.raises(AvatarcamError) as err:
        connect_from_args(_client_args("--remote", f"ws://127.0.0.1:{port}", "--uplink", "image"), astronaut)
    assert str(err.value) == (f"remote worker ws://127.0.0.1:{port}: connection refused; is `avatarcam serve` "
                              "running there?")


def test_serve_on_a_taken_port_is_one_line_before_ray_starts(tiny_checkpoint, capsys, monkeypatch):
    import socket

    monkeypatch.setenv(TOKEN_ENV, "t")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--checkpoint", str(tiny_checkpoint), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"avatarcam: error: cannot listen on 127.0.0.1:{port} (Address already in use); stop what uses "
                   "it or pick another port with --port"]


def test_serve_token_never_on_the_command_line_and_token_files_are_private(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["serve", "--token", "secret"]) == 2
    assert "--token-file" in capsys.readouterr().err
    token_file = tmp_path / "token"
    token_file.write_text("secret\n")
    token_file.chmod(0o644)
    assert main(["serve", "--token-file", str(token_file)]) == 2
    assert f"chmod 600 {token_file}" in capsys.readouterr().err


def _descendants(proc: subprocess.Popen) -> list:
    import psutil

    return psutil.Process(proc.pid).children(recursive=True)


def _check_process_tree(proc: subprocess.Popen, token: str) -> list:
    """Every process the command started: the token in no environment or command line, every listening
    socket on loopback. -> the processes (to check they are gone after the stop)."""
    import ipaddress

    import psutil

    tree = _descendants(proc)
    assert len(tree) >= 5, tree  # GCS, raylet, agents, proxy, replicas...
    for p in [psutil.Process(proc.pid), *tree]:  # the command's own environment is the caller's: not checked
        try:
            assert token not in " ".join(p.cmdline()), f"the token is in the command line of {p.name()}"
            if p.pid != proc.pid:
                assert token not in p.environ().values(), f"the token is in the environment of {p.name()}"
            listening = [c.laddr for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
        for addr in listening:
            ip = ipaddress.ip_address(addr.ip)
            ip = (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip
            assert ip.is_loopback, f"{p.name()} listens on {addr.ip}:{addr.port}"
    return tree


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_command_ready_loopback_token_kept_in_and_a_clean_quick_stop(stop, tiny_checkpoint, loopback_port,
                                                                           astronaut):
    """The real command in its own process, with its own embedded Ray instance, started as the README
    says: the ready line, /healthz, a session that moves to the replica's own port; no process of its tree
    holds the token or listens beyond loopback; Ctrl-C and SIGTERM stop it within seconds, exit 0, no
    crash dump, and no Ray process is left."""
    import secrets
    import time

    import psutil

    pytest.importorskip("ray.serve")
    port, token = loopback_port, f"tok-{secrets.token_hex(8)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # nothing inherited from tests
    proc = subprocess.Popen([sys.executable, "-m", "avatarcam", "serve", "--checkpoint", str(tiny_checkpoint),
                             "--port", str(port), "--device", "cpu", "--precision", "fp32"],
                            env={**env, TOKEN_ENV: token}, stderr=subprocess.PIPE, text=True)
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
        client = RemoteAnimator.connect(f"ws://127.0.0.1:{port}", token, avatar=astronaut, mode="image")
        try:
            assert client.stats().path == "direct"
        finally:
            client.close()
        tree = _check_process_tree(proc, token)
        t0 = time.monotonic()
        proc.send_signal(stop)
        assert proc.wait(timeout=60) in (0, -stop, 128 + stop) and time.monotonic() - t0 < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert proc.returncode == 0
    assert any("stopping the worker" in line for line in lines)
    assert not [line for line in lines if "SIGTERM received" in line or "Traceback" in line], lines
    wait_until(lambda: not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
               timeout=15, message="every Ray process to end")
