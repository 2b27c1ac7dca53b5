"""Downloading the checkpoint: mirrors tried in turn, each streamed into ``<dest>.part`` and resumed
with HTTP ``Range`` / ``If-Range`` (standard library ``urllib``); ``verify.install`` puts it in place.
Every failure is an ``AvatarcamError`` of one line."""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..engine.sniff import sniff_header
from ..errors import CheckpointError, DiskFullError, DownloadCancelled, DownloadError, NotACheckpointError
from ..paths import CHECKPOINT_NAME, CHECKPOINT_URL, atomic_write_text
from .locate import discard_partial, manual_steps, megabytes, meta_path, part_path, resolve_destination
from .verify import KNOWN_MD5, Checksum, DownloadResult, Status, cached_md5, file_digest, install, verify_loads

DOWNLOAD_SIZE_LABEL = "228 MB"
MAX_DOWNLOAD_BYTES = 2 << 30  # sanity limit: the inference file is 228 MB
DISK_MARGIN_BYTES = 32 << 20  # keep some room on the disk after the download
CHUNK_BYTES = 1 << 16
DEFAULT_TIMEOUT_S = 30.0  # urllib applies it to the connect and to every read
USER_AGENT = f"avatarcam/{__version__} (model download; +https://github.com/avatarcam) Python-urllib"
WEB_PAGE_FIX = "cloud drive links open a page: use a direct file link"

Progress = Callable[[int, "int | None"], None]  # (bytes on disk so far, total bytes or None)


@dataclass(frozen=True)
class Mirror:
    """A URL serving the checkpoint as a direct file, and its checksum when known."""

    url: str
    md5: str | None = None
    sha256: str | None = None
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} ({self.url})" if self.name else self.url

    @property
    def checksum(self) -> Checksum | None:
        if self.sha256:
            return "sha256", self.sha256.strip().lower()
        if self.md5:
            return "md5", self.md5.strip().lower()
        return None


# Only mirrors that serve the file itself (not an HTML page) belong here. The FOMM authors'
# Google Drive / Yandex Disk links are pages, so they are for manual downloads only.
DEFAULT_MIRRORS: tuple[Mirror, ...] = (Mirror(CHECKPOINT_URL, md5=KNOWN_MD5, name="Avatarify mirror"),)


class _Retry(Exception):
    """Internal: restart this mirror from byte 0 (the partial file was discarded)."""


@dataclass(frozen=True)
class _Job:
    """One ``download_checkpoint`` call: where to, how to report, cancel and bound it."""

    dest: Path
    say: Status
    progress: Progress | None
    cancel: threading.Event | None
    timeout: float
    max_bytes: int

    @property
    def part(self) -> Path:
        return part_path(self.dest)

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def download_checkpoint(dest: str | os.PathLike | None = None, mirrors: Sequence[Mirror] | None = None, *,
                        force: bool = False, progress: Progress | None = None, status: Status | None = None,
                        cancel: threading.Event | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                        max_bytes: int = MAX_DOWNLOAD_BYTES) -> DownloadResult:
    """Download the checkpoint to ``dest`` (default: the user models folder), verified.

    If ``dest`` already holds a checkpoint that loads (and has the checksum asked for, if
    any), it is kept unless ``force``. Raises a ``DownloadError`` subclass, ``CheckpointError``
    or ``DownloadCancelled``; ``KeyboardInterrupt`` passes through. In every case ``dest`` is
    untouched unless the result is returned.
    """
    dest = resolve_destination(dest)
    mirrors = list(mirrors) if mirrors else list(DEFAULT_MIRRORS)
    say = status or (lambda _msg: None)
    if dest.is_dir():
        raise DownloadError(f"{dest}: is a folder; pass a file path or its parent folder for --dest.")
    if dest.is_file() and not force:
        kept = _existing_ok(dest, mirrors, say)
        if kept is not None:
            return kept
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"{dest.parent}: cannot create the folder ({err.strerror or err}).") from None
    return _from_mirrors(_Job(dest, say, progress, cancel, timeout, max_bytes), mirrors)


def _from_mirrors(job: _Job, mirrors: list[Mirror]) -> DownloadResult:
    """The first mirror that delivers a verified file; one error line naming every failure."""
    failures: list[DownloadError] = []
    for mirror in mirrors:
        if job.cancelled():
            raise DownloadCancelled(f"download cancelled; re-run to resume ({job.part} is kept).")
        job.say(f"Downloading {CHECKPOINT_NAME} from {mirror.label}")
        try:
            return _from_mirror(job, mirror)
        except DiskFullError:
            raise
        except DownloadError as err:
            failures.append(err)
            if len(mirrors) > 1:
                job.say(f"failed: {err}")
    how = manual_steps(job.dest, mirrors[0].url)
    if len(failures) == 1:
        raise type(failures[0])(f"{failures[0]}; {how}.")
    raise DownloadError(f"all {len(failures)} mirrors failed: {' | '.join(map(str, failures))}; {how}.")


def _existing_ok(dest: Path, mirrors: list[Mirror], say: Status) -> DownloadResult | None:
    """A result for an existing good file at ``dest``, or None to download a fresh copy."""
    # A checksum the user asked for (or the only source's) must match; the known md5 of the
    # default mirror is not required: the full training checkpoint is just as good.
    sums = {m.checksum for m in mirrors}
    custom = any(m not in DEFAULT_MIRRORS for m in mirrors)
    wanted = sums.pop() if custom and len(sums) == 1 else None
    say(f"{dest} exists; checking it")
    md5 = cached_md5(dest)
    if wanted is not None:
        algo, hexd = wanted
        got = md5 if algo == "md5" else file_digest(dest, algo)
        if got != hexd:
            say(f"{dest}: {algo} {got} is not the expected {hexd}; downloading a fresh copy")
            return None
    try:
        kind = verify_loads(dest)
    except CheckpointError as err:
        say(f"{err} Downloading a fresh copy.")
        return None
    return DownloadResult(dest, dest.stat().st_size, md5, "", already_present=True,
                          checksum_checked=wanted is not None, kind=kind)


def _read_meta(dest: Path) -> dict:
    try:
        meta = json.loads(meta_path(dest).read_text(encoding="utf-8"))
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _from_mirror(job: _Job, mirror: Mirror) -> DownloadResult:
    meta = _read_meta(job.dest)
    if job.part.exists() and meta.get("url") != mirror.url:
        discard_partial(job.dest)  # a partial file from another source: start over
        meta = {}
    for _attempt in range(2):
        try:
            _fetch(job, mirror, meta)
            break
        except _Retry:
            discard_partial(job.dest)
            meta = {}
    else:  # pragma: no cover - the server keeps refusing a fresh start
        raise DownloadError(f"{mirror.url}: the server does not serve the file consistently.")
    return install(job.part, job.dest, mirror.url, mirror.checksum, job.say, job.cancel)


def _open(mirror: Mirror, start: int, meta: dict, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept": "application/octet-stream, */*;q=0.5",
               "Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator  # the server sends the whole file if it changed
    req = urllib.request.Request(mirror.url, headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) URLs from the user/config
    except urllib.error.HTTPError as err:
        if err.code == 416 and start > 0:
            total = _content_range(err.headers.get("Content-Range", ""))[1]
            err.close()
            if total == start:
                return None  # the partial file is already complete
            raise _Retry() from None
        reason = f" {err.reason}" if err.reason else ""
        err.close()
        raise DownloadError(f"{mirror.url}: HTTP {err.code}{reason}") from None
    except urllib.error.URLError as err:
        raise DownloadError(f"{mirror.url}: {_network_reason(err.reason, timeout)}") from None
    except ValueError as err:
        raise DownloadError(f"{mirror.url}: not a usable URL ({err})") from None
    except (OSError, http.client.HTTPException) as err:
        raise DownloadError(f"{mirror.url}: {_network_reason(err, timeout)}") from None


def _network_reason(reason: object, timeout: float) -> str:
    if isinstance(reason, socket.gaierror):
        return "cannot resolve the host name (offline, or a DNS failure)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (nothing serves that address)"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s (slow or no network)"
    if isinstance(reason, ssl.SSLError):
        return f"secure connection failed ({getattr(reason, 'reason', None) or reason})"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable (offline?)"
    if isinstance(reason, OSError):
        return f"connection failed ({reason.strerror or reason})"
    return f"connection failed ({reason})"


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total size) from "bytes 100-199/200" or "bytes */200"; None where absent."""
    m = re.fullmatch(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", value.strip())
    if m is None:
        return None, None
    return tuple(int(v) if v and v != "*" else None for v in m.groups())


def _check_head(job: _Job, url: str, head: bytes) -> None:
    """Refuse a body that does not start like a PyTorch file (zip or legacy pickle)."""
    kind = sniff_header(head)
    if kind == "html":
        raise NotACheckpointError(f"{url}: serves a web page (HTML), not the checkpoint file; {WEB_PAGE_FIX}")
    if kind == "unknown":
        raise NotACheckpointError(f"{url}: does not serve a PyTorch checkpoint (the file starts with {head[:8]!r})")


def _fetch(job: _Job, mirror: Mirror, meta: dict) -> None:
    """Bring the ``.part`` file to the complete file (raises on failure, keeping what resumes)."""
    start = job.part.stat().st_size if job.part.is_file() else 0
    if start > job.max_bytes:
        raise _Retry()
    resp = _open(mirror, start, meta, job.timeout)
    if resp is None:
        job.say("The partial download is already complete")
        return
    with resp:
        start, total = _accept(job, mirror, resp, start)
        try:
            first_block = resp.read(min(CHUNK_BYTES, 512) if start == 0 else CHUNK_BYTES)
        except (OSError, http.client.HTTPException) as err:
            raise _lost(mirror, start, total, err, job.timeout) from None
        if start == 0:
            _check_head(job, mirror.url, first_block)
        meta.update(url=mirror.url, etag=resp.headers.get("ETag") or "",
                    last_modified=resp.headers.get("Last-Modified") or "", total=total)
        with contextlib.suppress(OSError):  # without it a resume restarts from zero: not worth failing for
            atomic_write_text(meta_path(job.dest), json.dumps(meta))
        _stream(job, mirror, resp, start, total, first_block)


def _accept(job: _Job, mirror: Mirror, resp, start: int) -> tuple[int, int | None]:
    """(first byte, total size) of the response; refuses web pages, huge files and a full disk."""
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        raise NotACheckpointError(f"{mirror.url}: serves a web page ({ctype}), not the checkpoint file; {WEB_PAGE_FIX}")
    length = resp.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if resp.status == 206:
        first, total = _content_range(resp.headers.get("Content-Range", ""))
        if first != start:
            raise _Retry()  # not the range we asked for
        if total is None and length is not None:
            total = start + length
        job.say(f"Resuming at {megabytes(start)}")
    else:
        if start > 0:
            job.say("The server does not resume downloads; starting over")
        start, total = 0, length
    if total is not None and total > job.max_bytes:
        raise DownloadError(f"{mirror.url}: the file is {megabytes(total)}, far larger than a FOMM checkpoint "
                            f"(limit {megabytes(job.max_bytes)}); refusing it")
    if total is not None:
        free = shutil.disk_usage(job.part.parent).free
        if free < total - start + DISK_MARGIN_BYTES:
            raise DiskFullError(f"{job.part.parent}: not enough disk space: the download needs "
                                f"{megabytes(total - start)}, {megabytes(free)} free; free some space and re-run")
    return start, total


def _stream(job: _Job, mirror: Mirror, resp, start: int, total: int | None, block: bytes) -> None:
    """Append the response body to the ``.part`` file, ``block`` (already read) first."""
    done = start
    try:
        with open(job.part, "ab" if start > 0 else "wb") as out:
            while block:
                out.write(block)
                done += len(block)
                _count(job, mirror, done, total, out)
                try:
                    block = resp.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as err:
                    out.flush()
                    raise _lost(mirror, done, total, err, job.timeout) from None
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            discard_partial(job.dest)
            raise DiskFullError(f"{job.part.parent}: disk full while downloading (at {megabytes(done)}); "
                                "free some space and re-run") from None
        raise DownloadError(f"{job.part}: cannot write the download ({err.strerror or err})") from None
    if total is not None and done != total:
        raise _lost(mirror, done, total, None, job.timeout)


def _count(job: _Job, mirror: Mirror, done: int, total: int | None, out) -> None:
    """Report progress; stop a body that outgrows any checkpoint, or a cancelled download."""
    if job.progress is not None:
        job.progress(done, total)
    if done > job.max_bytes:
        out.close()
        discard_partial(job.dest)
        raise DownloadError(f"{mirror.url}: more than {megabytes(job.max_bytes)} and still going; "
                            "not a FOMM checkpoint, refusing it")
    if job.cancelled():
        raise DownloadCancelled(f"download cancelled at {megabytes(done)}; "
                                f"download again to resume ({job.part} is kept).")


def _lost(mirror: Mirror, done: int, total: int | None, err: BaseException | None, timeout: float) -> DownloadError:
    of = f" of {megabytes(total)}" if total else ""
    if isinstance(err, TimeoutError):
        why = f"no data for {timeout:g} s"
    elif err is None or isinstance(err, http.client.IncompleteRead):
        why = "connection closed early"
    else:
        why = _network_reason(err, timeout)
    return DownloadError(f"{mirror.url}: download interrupted at {megabytes(done)}{of} ({why}); "
                         "run `avatarcam download-model` again to resume")
