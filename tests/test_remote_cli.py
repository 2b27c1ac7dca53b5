"""`avatarcam serve` and the client options: the bad-input paths, each one line (no Ray started)."""

from __future__ import annotations

import argparse

import pytest
from remote_fixtures import free_port

from avatarcam.cli import main
from avatarcam.errors import AvatarcamError
from avatarcam.remote.cli import TOKEN_ENV, add_client_arguments, connect_from_args


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


def test_unreachable_worker_is_one_line(monkeypatch, astronaut):
    monkeypatch.setenv(TOKEN_ENV, "t")
    port = free_port()  # nothing listens there
    with pytest.raises(AvatarcamError, match=f"127.0.0.1:{port}.*(refused|Errno)"):
        connect_from_args(_client_args("--remote", f"ws://127.0.0.1:{port}", "--uplink", "image"), astronaut)
