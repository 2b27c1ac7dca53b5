"""`avatarcam download-model` end to end through a subprocess, against a local HTTP server."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until
from model_server import free_port

from avatarcam.model_store import part_path
from avatarcam.paths import CHECKPOINT_NAME

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatarcam", "download-model", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("avatarcam: error: ")
    return lines[0]


def test_download_then_already_present(server, ckpt_bytes, tmp_path):
    url = server.add("/vox.pth.tar", ckpt_bytes)
    dest = tmp_path / "m" / CHECKPOINT_NAME
    md5 = hashlib.md5(ckpt_bytes).hexdigest()
    proc = cli("--url", url, "--dest", str(dest), "--md5", md5)
    assert proc.returncode == 0, proc.stderr
    assert dest.read_bytes() == ckpt_bytes and "Installed" in proc.stdout and "checksum verified" in proc.stdout
    proc = cli("--url", url, "--dest", str(dest), "--md5", md5)
    assert proc.returncode == 0 and "already there" in proc.stdout and len(server.requests) == 1


def test_checksum_mismatch(server, ckpt_bytes, tmp_path):
    url = server.add("/vox.pth.tar", ckpt_bytes)
    dest = tmp_path / CHECKPOINT_NAME
    proc = cli("--url", url, "--dest", str(dest), "--md5", "0" * 32)
    assert proc.returncode == 2
    assert "checksum mismatch" in error_line(proc)
    assert list(tmp_path.iterdir()) == []


def test_http_404_and_refused(server, tmp_path):
    dest = tmp_path / CHECKPOINT_NAME
    proc = cli("--url", server.url("/nope"), "--dest", str(dest))
    assert proc.returncode == 2 and "HTTP 404" in error_line(proc)
    url = f"http://127.0.0.1:{free_port()}/vox.pth.tar"
    proc = cli("--url", url, "--dest", str(dest), "--timeout", "5")
    line = error_line(proc)
    assert proc.returncode == 2 and "connection refused" in line and url in line and str(dest) in line
    assert not dest.exists() and not part_path(dest).exists()


def test_bad_option_value():
    proc = cli("--md5", "xyz")
    assert proc.returncode == 2 and "hexadecimal" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_keeps_part_and_rerun_resumes(server, ckpt_bytes, tmp_path):
    url = server.add("/vox.pth.tar", ckpt_bytes, chunk=16_384, delay_s=0.05)  # ~3 s in all
    dest = tmp_path / CHECKPOINT_NAME
    proc = subprocess.Popen([sys.executable, "-m", "avatarcam", "download-model", "--url", url, "--dest", str(dest)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    part = part_path(dest)
    wait_until(lambda: proc.poll() is not None or (part.exists() and part.stat().st_size >= 100_000),
               message="100 kB downloaded")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "again to resume" in err.strip().splitlines()[-1]
    assert not dest.exists() and 0 < part.stat().st_size < len(ckpt_bytes)
    size = part.stat().st_size

    server.resources["/vox.pth.tar"].delay_s = 0
    done = cli("--url", url, "--dest", str(dest), "--md5", hashlib.md5(ckpt_bytes).hexdigest())
    assert done.returncode == 0, done.stderr
    assert dest.read_bytes() == ckpt_bytes and not part.exists()
    assert server.ranges_seen("/vox.pth.tar")[-1] == f"bytes={size}-"
