"""Model download, resume and verification against a local HTTP server (no internet)."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import threading
from pathlib import Path

import pytest
import torch
from model_server import free_port
from synthetic import synthetic_state_dicts

from avatarcam import model_store
from avatarcam.engine import FOMMConfig
from avatarcam.engine.sniff import sniff_header
from avatarcam.model_store import (
    KNOWN_MD5,
    ChecksumError,
    DiskFullError,
    DownloadCancelled,
    DownloadError,
    Mirror,
    NotACheckpointError,
    checkpoint_checks,
    download_checkpoint,
    meta_path,
    part_path,
)
from avatarcam.paths import CHECKPOINT_NAME, user_data_dir, user_models_dir


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "models" / CHECKPOINT_NAME


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def assert_nothing_left(dest: Path, keep_part: bool = False) -> None:
    assert not dest.exists()
    if not keep_part:
        assert not part_path(dest).exists()
        assert not meta_path(dest).exists()


def assert_one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and text
    return text


def test_download_checks_checksum_and_loads(server, ckpt_bytes, dest):
    url = server.add("/vox.pth.tar", ckpt_bytes)
    seen: list[tuple[int, int | None]] = []
    msgs: list[str] = []
    result = download_checkpoint(dest, [Mirror(url, md5=md5(ckpt_bytes))], progress=lambda d, t: seen.append((d, t)),
                                 status=msgs.append)
    assert result.path == dest and dest.read_bytes() == ckpt_bytes
    assert result.checksum_checked and result.md5 == md5(ckpt_bytes) and not result.already_present
    assert not part_path(dest).exists() and not meta_path(dest).exists()
    assert seen[-1] == (len(ckpt_bytes), len(ckpt_bytes))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert any("loads" in m for m in msgs)
    assert server.requests[0].user_agent.startswith("avatarcam/")

    # Already there and good: nothing is downloaded again, unless forced.
    again = download_checkpoint(dest, [Mirror(url, md5=md5(ckpt_bytes))])
    assert again.already_present and len(server.requests) == 1
    forced = download_checkpoint(dest, [Mirror(url, md5=md5(ckpt_bytes))], force=True)
    assert not forced.already_present and len(server.requests) == 2 and dest.read_bytes() == ckpt_bytes


def test_sha256_and_folder_destination(server, ckpt_bytes, tmp_path):
    url = server.add("/f", ckpt_bytes)
    result = download_checkpoint(f"{tmp_path}/", [Mirror(url, sha256=hashlib.sha256(ckpt_bytes).hexdigest())])
    assert result.path == tmp_path / CHECKPOINT_NAME and result.path.read_bytes() == ckpt_bytes


def test_default_destination_is_user_models_dir(server, ckpt_bytes):
    url = server.add("/f", ckpt_bytes)
    result = download_checkpoint(None, [Mirror(url)])
    assert result.path == user_models_dir() / CHECKPOINT_NAME and not result.checksum_checked


def test_dropped_connection_resumes_with_range(server, ckpt_bytes, dest):
    cut = 300_000
    url = server.add("/vox.pth.tar", ckpt_bytes, drop_after=cut, drops_left=1)
    mirror = Mirror(url, md5=md5(ckpt_bytes))
    with pytest.raises(DownloadError) as info:
        download_checkpoint(dest, [mirror], timeout=5)
    text = assert_one_line(info.value)
    assert "interrupted" in text and "resume" in text and url in text
    assert_nothing_left(dest, keep_part=True)
    assert part_path(dest).stat().st_size == cut

    result = download_checkpoint(dest, [mirror], timeout=5)
    assert dest.read_bytes() == ckpt_bytes and result.checksum_checked
    assert server.ranges_seen("/vox.pth.tar") == [None, f"bytes={cut}-"]
    assert not part_path(dest).exists()


def test_server_ignoring_range_restarts_cleanly(server, ckpt_bytes, dest):
    url = server.add("/f", ckpt_bytes, ranges=False, drop_after=200_000, drops_left=1)
    mirror = Mirror(url, md5=md5(ckpt_bytes))
    with pytest.raises(DownloadError):
        download_checkpoint(dest, [mirror], timeout=5)
    msgs: list[str] = []
    download_checkpoint(dest, [mirror], status=msgs.append, timeout=5)
    assert dest.read_bytes() == ckpt_bytes
    assert server.ranges_seen("/f") == [None, "bytes=200000-"]
    assert any("starting over" in m for m in msgs)


def test_complete_partial_file_is_verified_not_refetched(server, ckpt_bytes, dest):
    url = server.add("/f", ckpt_bytes)
    dest.parent.mkdir(parents=True)
    part_path(dest).write_bytes(ckpt_bytes)
    meta_path(dest).write_text(f'{{"url": "{url}"}}')
    download_checkpoint(dest, [Mirror(url, md5=md5(ckpt_bytes))])  # server answers 416
    assert dest.read_bytes() == ckpt_bytes and not part_path(dest).exists()
    assert server.ranges_seen("/f") == [f"bytes={len(ckpt_bytes)}-"]  # one range request, no body fetched


def test_partial_file_from_another_source_is_discarded(server, ckpt_bytes, dest):
    url = server.add("/f", ckpt_bytes)
    dest.parent.mkdir(parents=True)
    part_path(dest).write_bytes(b"garbage" * 1000)
    download_checkpoint(dest, [Mirror(url, md5=md5(ckpt_bytes))])
    assert dest.read_bytes() == ckpt_bytes and server.ranges_seen("/f") == [None]


def test_wrong_checksum(server, ckpt_bytes, dest):
    url = server.add("/f", ckpt_bytes)
    with pytest.raises(ChecksumError) as info:
        download_checkpoint(dest, [Mirror(url, md5="0" * 32)])
    text = assert_one_line(info.value)
    assert "checksum mismatch" in text and md5(ckpt_bytes) in text and "by hand" in text
    assert_nothing_left(dest)


@pytest.mark.parametrize("ctype", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_instead_of_checkpoint(server, dest, ctype):
    page = b"<!DOCTYPE html><html><body>Google Drive can't scan this file for viruses</body></html>" * 50
    url = server.add("/drive", page, content_type=ctype)
    with pytest.raises(NotACheckpointError) as info:
        download_checkpoint(dest, [Mirror(url)])
    assert "web page" in assert_one_line(info.value)
    assert_nothing_left(dest)


def test_file_that_does_not_load_strictly(server, dest, tmp_path):
    # a 5-keypoint detector with a 10-keypoint generator: each part alone would load (the
    # configuration is read from the shapes), together they match no model
    five = synthetic_state_dicts(dataclasses.replace(FOMMConfig.tiny(), num_kp=5))["kp_detector"]
    wrong = tmp_path / "wrong.pth.tar"
    torch.save({"kp_detector": five, "generator": synthetic_state_dicts(FOMMConfig.tiny())["generator"]}, wrong)
    url = server.add("/f", wrong.read_bytes())
    with pytest.raises(NotACheckpointError) as info:
        download_checkpoint(dest, [Mirror(url)])
    assert "not a usable checkpoint" in assert_one_line(info.value)
    assert_nothing_left(dest)


def test_http_404(server, dest):
    url = server.url("/missing")
    with pytest.raises(DownloadError) as info:
        download_checkpoint(dest, [Mirror(url)])
    text = assert_one_line(info.value)
    assert "HTTP 404" in text and url in text and str(dest) in text
    assert_nothing_left(dest)


def test_connection_refused(dest):
    url = f"http://127.0.0.1:{free_port()}/vox.pth.tar"
    with pytest.raises(DownloadError) as info:
        download_checkpoint(dest, [Mirror(url)], timeout=5)
    text = assert_one_line(info.value)
    assert "connection refused" in text and url in text and f"save it as {dest}" in text
    assert_nothing_left(dest)


def test_next_mirror_after_a_failure(server, ckpt_bytes, dest):
    good = server.add("/good", ckpt_bytes)
    msgs: list[str] = []
    download_checkpoint(dest, [Mirror(server.url("/gone")), Mirror(good, md5=md5(ckpt_bytes))], status=msgs.append)
    assert dest.read_bytes() == ckpt_bytes
    assert any("HTTP 404" in m for m in msgs)


def test_all_mirrors_failing_is_one_line(server, dest):
    with pytest.raises(DownloadError) as info:
        download_checkpoint(dest, [Mirror(server.url("/a")), Mirror(server.url("/b"))])
    assert "all 2 mirrors failed" in assert_one_line(info.value)


def test_size_limit(server, ckpt_bytes, dest):
    url = server.add("/f", ckpt_bytes)
    with pytest.raises(DownloadError) as info:
        download_checkpoint(dest, [Mirror(url)], max_bytes=100_000)
    assert "far larger" in assert_one_line(info.value)
    assert_nothing_left(dest)


def test_not_enough_disk_space_is_checked_first(server, ckpt_bytes, dest, monkeypatch):
    url = server.add("/f", ckpt_bytes)
    monkeypatch.setattr(model_store.download.shutil, "disk_usage", lambda _p: type("U", (), {"free": 1000})())
    with pytest.raises(DiskFullError) as info:
        download_checkpoint(dest, [Mirror(url)])
    assert "disk space" in assert_one_line(info.value)
    assert_nothing_left(dest)


def test_disk_full_while_writing(server, ckpt_bytes, dest, monkeypatch):
    url = server.add("/f", ckpt_bytes)
    real_open = open

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 100_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(model_store.download, "open", lambda p, mode="r", *a, **k: Full(real_open(p, mode, *a, **k))
                        if "a" in mode or "w" in mode else real_open(p, mode, *a, **k), raising=False)
    with pytest.raises(DiskFullError) as info:
        download_checkpoint(dest, [Mirror(url)])
    assert "disk full" in assert_one_line(info.value)
    assert_nothing_left(dest)


def test_cancel_keeps_resumable_part_only(server, ckpt_bytes, dest):
    url = server.add("/f", ckpt_bytes, chunk=32_768)
    cancel = threading.Event()

    def progress(done, total):
        if done >= 200_000:
            cancel.set()

    with pytest.raises(DownloadCancelled) as info:
        download_checkpoint(dest, [Mirror(url)], progress=progress, cancel=cancel)
    assert "resume" in assert_one_line(info.value)
    assert_nothing_left(dest, keep_part=True)
    download_checkpoint(dest, [Mirror(url, md5=md5(ckpt_bytes))])
    assert dest.read_bytes() == ckpt_bytes
    assert server.ranges_seen("/f")[1].startswith("bytes=")


def test_corrupt_existing_file_is_replaced(server, ckpt_bytes, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(ckpt_bytes[: len(ckpt_bytes) // 2])
    url = server.add("/f", ckpt_bytes)
    result = download_checkpoint(dest, [Mirror(url)])
    assert not result.already_present and dest.read_bytes() == ckpt_bytes


def test_installed_file_md5_is_remembered_and_a_corrupt_cache_is_rewritten(server, ckpt_bytes, dest, monkeypatch):
    url = server.add("/f", ckpt_bytes)
    download_checkpoint(dest, [Mirror(url)])
    with monkeypatch.context() as m:
        m.setattr(model_store.verify, "file_digest", lambda *a: pytest.fail("re-hashed"))
        assert model_store.cached_md5(dest) == md5(ckpt_bytes)  # remembered by the install
    cache = user_data_dir() / "checksums.json"
    cache.write_text("{half a write")
    assert model_store.cached_md5(dest) == md5(ckpt_bytes)
    assert json.loads(cache.read_text())[str(dest.resolve())]["md5"] == md5(ckpt_bytes)
    assert [p.name for p in cache.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(("head", "kind"), [(b"PK\x03\x04rest", "zip"), (b"\x80\x02}q", "legacy"),
                                            (b" \n<!DOCTYPE html>", "html"), (b"GIF89a", "unknown"), (b"", "unknown")])
def test_sniff_header(head, kind):
    assert sniff_header(head) == kind


# doctor ------------------------------------------------------------------------------------
def test_checks_when_missing():
    checks = checkpoint_checks()
    assert len(checks) == 1 and not checks[0].ok and checks[0].required
    assert "avatarcam download-model" in checks[0].fix
    assert str(user_models_dir() / CHECKPOINT_NAME) in checks[0].detail


def test_checks_report_size_md5_and_loading(tiny_checkpoint, ckpt_bytes, monkeypatch):
    target = user_models_dir() / CHECKPOINT_NAME
    target.parent.mkdir(parents=True)
    target.write_bytes(ckpt_bytes)
    checks = checkpoint_checks()
    assert all(c.ok for c in checks)
    used = [c for c in checks if c.required]
    assert len(used) == 1 and str(target) in used[0].name
    assert md5(ckpt_bytes) in used[0].detail and "loads strictly" in used[0].detail
    assert KNOWN_MD5 in used[0].detail  # informative: not the published file, still fine

    # md5 is cached by (path, size, mtime): no re-hashing
    with monkeypatch.context() as m:
        m.setattr(model_store.verify, "file_digest", lambda *a: pytest.fail("re-hashed"))
        assert md5(ckpt_bytes) in checkpoint_checks(load=False)[1].detail

    # An explicit --checkpoint wins; the user-folder copy is then informational.
    checks = checkpoint_checks(tiny_checkpoint, load=False)
    assert [c.required for c in checks[1:]] == [True, False]


def test_checks_flag_a_broken_file(tmp_path):
    bad = tmp_path / "vox.pth.tar"
    bad.write_bytes(b"<html>nope</html>")
    checks = checkpoint_checks(bad)
    broken = [c for c in checks if not c.ok]
    assert len(broken) == 1 and "web page" in broken[0].detail and "download-model" in broken[0].fix


def test_checks_missing_explicit_path(tmp_path):
    checks = checkpoint_checks(tmp_path / "nope.pth.tar")
    assert not checks[0].ok and "no such file" in checks[0].detail
