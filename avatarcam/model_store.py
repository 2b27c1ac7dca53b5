"""Getting, checking and finding the model weights (``vox-adv-cpk.pth.tar``). Qt-free.

``download_checkpoint`` tries each mirror in turn and streams into ``<dest>.part`` (with a small
``<dest>.part.json`` saying where it came from), resuming with an HTTP ``Range`` request after
an interruption. The finished file must match the source's checksum (when one is known) and
load strictly into the engine's networks; only then is it moved onto ``dest`` with
``os.replace``, so ``dest`` is always either absent, the previous file, or a verified file.

Every failure is an ``AvatarcamError`` whose message is one line. The HTTP client is the
standard library's ``urllib.request``: one GET with a timeout, nothing that needs a session.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .diagnostics import Check
from .errors import AvatarcamError, CheckpointError
from .paths import CHECKPOINT_NAME, CHECKPOINT_URL, checkpoint_candidates, user_data_dir, user_models_dir

KNOWN_MD5 = "8a45a24037871c045fbb8a6a8aa95ebc"  # Avatarify's inference-only vox-adv-cpk.pth.tar
DOWNLOAD_SIZE_LABEL = "228 MB"
MAX_DOWNLOAD_BYTES = 2 << 30  # sanity limit: the inference file is 228 MB
DISK_MARGIN_BYTES = 32 << 20  # keep some room on the disk after the download
CHUNK_BYTES = 1 << 16
DEFAULT_TIMEOUT_S = 30.0  # urllib applies it to the connect and to every read
USER_AGENT = f"avatarcam/{__version__} (model download; +https://github.com/avatarcam) Python-urllib"
PART_SUFFIX = ".part"
META_SUFFIX = ".part.json"
_MD5_CACHE_NAME = "checksums.json"

Progress = Callable[[int, "int | None"], None]  # (bytes on disk so far, total bytes or None)
Status = Callable[[str], None]


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


# Only mirrors that serve the file itself (not an HTML page) belong here. The FOMM authors'
# Google Drive / Yandex Disk links are pages, so they are for manual downloads only.
DEFAULT_MIRRORS: tuple[Mirror, ...] = (
    Mirror(CHECKPOINT_URL, md5=KNOWN_MD5, name="Avatarify mirror"),
)


# Errors ------------------------------------------------------------------------------------
class DownloadError(AvatarcamError):
    """The download failed (network, HTTP, wrong file); ``dest`` was not touched."""


class ChecksumError(DownloadError):
    """The downloaded file does not have the expected checksum (it was deleted)."""


class NotACheckpointError(DownloadError):
    """The server sent something that is not a checkpoint (e.g. an HTML page)."""


class DiskFullError(DownloadError):
    """Not enough free disk space for the download."""


class DownloadCancelled(AvatarcamError):
    """Cancelled by the user; a resumable ``.part`` may remain next to ``dest``."""


class _Retry(Exception):
    """Internal: restart this mirror from byte 0 (the partial file was discarded)."""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    md5: str
    source: str  # the URL it came from, or "" when an existing file was kept
    already_present: bool = False
    checksum_checked: bool = False
    kind: str = ""  # what verify_loads found, e.g. "vox-256"

    @property
    def known_file(self) -> bool:
        return self.md5 == KNOWN_MD5


# Locations ---------------------------------------------------------------------------------
def default_destination() -> Path:
    return user_models_dir() / CHECKPOINT_NAME


def resolve_destination(dest: str | os.PathLike | None) -> Path:
    """``dest`` as a file path; a folder (existing, or written with a trailing slash) gets the
    standard file name inside it."""
    if dest is None:
        return default_destination()
    text = os.fspath(dest)
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)):
        return path / CHECKPOINT_NAME
    return path


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + PART_SUFFIX)


def meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + META_SUFFIX)


def locate_checkpoint(explicit: str | os.PathLike | None = None) -> Path | None:
    """The first existing checkpoint among ``paths.checkpoint_candidates``, or None."""
    for path in checkpoint_candidates(explicit):
        if path.is_file():
            return path
    return None


def manual_steps(dest: Path, url: str = CHECKPOINT_URL) -> str:
    return f"to get it by hand, download {url} and save it as {dest}"


# Checking files ----------------------------------------------------------------------------
def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_md5(path: str | os.PathLike) -> str:
    """md5 of a file, remembered by (path, size, mtime) in the user data folder."""
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    cache_file = user_data_dir() / _MD5_CACHE_NAME
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        md5 = entry.get("md5")
        if isinstance(md5, str) and len(md5) == 32:
            return md5
    md5 = file_digest(path, "md5")
    cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": md5}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a cache only
    return md5


def verify_loads(path: str | os.PathLike) -> str:
    """Load the file strictly into fresh networks on the CPU (fp32); return a short description
    of the model. Raises ``CheckpointError``."""
    from .engine.checkpoint import load_networks
    from .engine.config import FOMMConfig

    config = load_networks(path).config
    if config == FOMMConfig.vox256():
        return "vox-256"
    return f"reduced model ({config.image_size} px, from its stored config)"


def _expected(mirror: Mirror) -> tuple[str, str] | None:
    if mirror.sha256:
        return "sha256", mirror.sha256.strip().lower()
    if mirror.md5:
        return "md5", mirror.md5.strip().lower()
    return None


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


# Downloading -------------------------------------------------------------------------------
def download_checkpoint(
    dest: str | os.PathLike | None = None,
    mirrors: Sequence[Mirror] | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    status: Status | None = None,
    cancel: threading.Event | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> DownloadResult:
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

    failures: list[str] = []
    last: DownloadError | None = None
    for mirror in mirrors:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(f"download cancelled; re-run to resume ({part_path(dest)} is kept).")
        say(f"Downloading {CHECKPOINT_NAME} from {mirror.label}")
        try:
            return _from_mirror(mirror, dest, progress, say, cancel, timeout, max_bytes)
        except DiskFullError:
            raise
        except DownloadError as err:
            last = err
            failures.append(str(err))
            if len(mirrors) > 1:
                say(f"failed: {err}")
    manual_url = mirrors[0].url if mirrors else CHECKPOINT_URL
    if len(failures) == 1 and last is not None:
        raise type(last)(f"{failures[0]}; {manual_steps(dest, manual_url)}.")
    raise DownloadError(f"all {len(failures)} mirrors failed: {' | '.join(failures)}; "
                        f"{manual_steps(dest, manual_url)}.")


def _existing_ok(dest: Path, mirrors: list[Mirror], say: Status) -> DownloadResult | None:
    """A result for an existing good file at ``dest``, or None to download a fresh copy."""
    # A checksum the user asked for (or the only source's) must match; the known md5 of the
    # default mirror is not required: the full training checkpoint is just as good.
    sums = {_expected(m) for m in mirrors}
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


def _write_meta(dest: Path, meta: dict) -> None:
    try:
        meta_path(dest).write_text(json.dumps(meta), encoding="utf-8")
    except OSError:
        pass  # resume then restarts from zero; not worth failing for


def _from_mirror(mirror: Mirror, dest: Path, progress, say, cancel, timeout, max_bytes) -> DownloadResult:
    part = part_path(dest)
    meta = _read_meta(dest)
    if part.exists() and meta.get("url") != mirror.url:
        _remove(part, meta_path(dest))  # a partial file from another source: start over
        meta = {}
    for _attempt in range(2):
        try:
            _fetch(mirror, dest, part, meta, progress, say, cancel, timeout, max_bytes)
            break
        except _Retry:
            _remove(part, meta_path(dest))
            meta = {}
    else:  # pragma: no cover - the server keeps refusing a fresh start
        raise DownloadError(f"{mirror.url}: the server does not serve the file consistently.")
    return _verify_and_install(mirror, dest, part, say, cancel)


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
            total = _total_from_content_range(err.headers.get("Content-Range", ""))
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
    except TimeoutError:
        raise DownloadError(f"{mirror.url}: no answer within {timeout:g} s (slow or no network)") from None
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


def _total_from_content_range(value: str) -> int | None:
    # "bytes 100-199/200" or "bytes */200"
    try:
        total = value.rsplit("/", 1)[1].strip()
        return int(total) if total != "*" else None
    except (IndexError, ValueError):
        return None


def _start_from_content_range(value: str) -> int | None:
    try:
        unit, rest = value.strip().split(" ", 1)
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _check_head(url: str, head: bytes) -> None:
    """Refuse a body that does not start like a PyTorch file (zip or legacy pickle)."""
    from .engine.sniff import sniff_header

    kind = sniff_header(head)
    if kind == "html":
        raise NotACheckpointError(f"{url}: serves a web page (HTML), not the checkpoint file; "
                                  "cloud drive links open a page: use a direct file link")
    if kind == "unknown":
        raise NotACheckpointError(f"{url}: does not serve a PyTorch checkpoint (the file starts with {head[:8]!r})")


def _fetch(mirror: Mirror, dest: Path, part: Path, meta: dict, progress, say, cancel, timeout, max_bytes) -> None:
    """Bring ``part`` to the complete file (raises on failure, keeping what resumes)."""
    start = part.stat().st_size if part.is_file() else 0
    if start > max_bytes:
        raise _Retry()
    resp = _open(mirror, start, meta, timeout)
    if resp is None:
        say("The partial download is already complete")
        return
    with resp:
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype in ("text/html", "application/xhtml+xml"):
            raise NotACheckpointError(f"{mirror.url}: serves a web page ({ctype}), not the checkpoint file; "
                                      "cloud drive links open a page: use a direct file link")
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if resp.status == 206:
            first = _start_from_content_range(resp.headers.get("Content-Range", ""))
            if first != start:
                raise _Retry()  # not the range we asked for
            total = _total_from_content_range(resp.headers.get("Content-Range", ""))
            if total is None and length is not None:
                total = start + length
            say(f"Resuming at {_mb(start)}")
        else:
            if start > 0:
                say("The server does not resume downloads; starting over")
            start = 0
            total = length
        if total is not None and total > max_bytes:
            raise DownloadError(f"{mirror.url}: the file is {_mb(total)}, far larger than a FOMM checkpoint "
                                f"(limit {_mb(max_bytes)}); refusing it")
        if total is not None:
            need = total - start + DISK_MARGIN_BYTES
            free = shutil.disk_usage(part.parent).free
            if free < need:
                raise DiskFullError(f"{part.parent}: not enough disk space: the download needs "
                                    f"{_mb(total - start)}, {_mb(free)} free; free some space and re-run")
        try:
            first_block = resp.read(min(CHUNK_BYTES, 512) if start == 0 else CHUNK_BYTES)
        except (OSError, http.client.HTTPException) as err:
            raise _lost(mirror, start, total, err, timeout) from None
        if start == 0:
            _check_head(mirror.url, first_block)
        if start == 0 or not part.is_file():
            meta.clear()
        meta.update(url=mirror.url, etag=resp.headers.get("ETag") or "",
                    last_modified=resp.headers.get("Last-Modified") or "", total=total)
        _write_meta(dest, meta)
        done = start
        try:
            with open(part, "ab" if start > 0 else "wb") as out:
                block = first_block
                while block:
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
                    if done > max_bytes:
                        out.close()
                        _remove(part, meta_path(dest))
                        raise DownloadError(f"{mirror.url}: more than {_mb(max_bytes)} and still going; "
                                            "not a FOMM checkpoint, refusing it")
                    if cancel is not None and cancel.is_set():
                        raise DownloadCancelled(f"download cancelled at {_mb(done)}; "
                                                f"download again to resume ({part} is kept).")
                    try:
                        block = resp.read(CHUNK_BYTES)
                    except (OSError, http.client.HTTPException) as err:
                        out.flush()
                        raise _lost(mirror, done, total, err, timeout) from None
                out.flush()
                os.fsync(out.fileno())
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                _remove(part, meta_path(dest))
                raise DiskFullError(f"{part.parent}: disk full while downloading (at {_mb(done)}); "
                                    "free some space and re-run") from None
            raise DownloadError(f"{part}: cannot write the download ({err.strerror or err})") from None
        if total is not None and done != total:
            raise _lost(mirror, done, total, None, timeout)


def _lost(mirror: Mirror, done: int, total: int | None, err: BaseException | None, timeout: float) -> DownloadError:
    of = f" of {_mb(total)}" if total else ""
    if isinstance(err, TimeoutError):
        why = f"no data for {timeout:g} s"
    elif err is None or isinstance(err, http.client.IncompleteRead):
        why = "connection closed early"
    else:
        why = _network_reason(err, timeout)
    return DownloadError(f"{mirror.url}: download interrupted at {_mb(done)}{of} ({why}); "
                         "run `avatarcam download-model` again to resume")


def _verify_and_install(mirror: Mirror, dest: Path, part: Path, say: Status, cancel) -> DownloadResult:
    md5 = file_digest(part, "md5")
    wanted = _expected(mirror)
    if wanted is not None:
        algo, hexd = wanted
        say(f"Checking the {algo} checksum")
        got = md5 if algo == "md5" else file_digest(part, algo)
        if got != hexd:
            _remove(part, meta_path(dest))
            raise ChecksumError(f"{mirror.url}: checksum mismatch ({algo} {got}, expected {hexd}): the download "
                                "is corrupt or a different file; deleted it")
    say("Checking that it loads into the model")
    try:
        kind = verify_loads(part)
    except CheckpointError as err:
        _remove(part, meta_path(dest))
        raise NotACheckpointError(f"{mirror.url}: the downloaded file is not a usable checkpoint ({err}); "
                                  "deleted it") from None
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download cancelled; download again to finish ({part} is kept).")
    size = part.stat().st_size
    os.replace(part, dest)
    _remove(meta_path(dest))
    try:  # remember the md5 we already know
        st = dest.stat()
        cache_file = user_data_dir() / _MD5_CACHE_NAME
        cache = json.loads(cache_file.read_text(encoding="utf-8")) if cache_file.is_file() else {}
        if isinstance(cache, dict):
            cache[str(dest.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": md5}
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    except (OSError, ValueError):
        pass
    return DownloadResult(dest, size, md5, mirror.url, checksum_checked=wanted is not None, kind=kind)


# Doctor ------------------------------------------------------------------------------------
def checkpoint_checks(explicit: str | os.PathLike | None = None, *, load: bool = True) -> list[Check]:
    """`avatarcam doctor` checks: where the weights are, their size and md5, and whether they
    load strictly. The first existing candidate is the one the app uses (required); other
    copies are reported as optional."""
    candidates = checkpoint_candidates(explicit)
    found = [p for p in candidates if p.is_file()]
    where = ", ".join(f"{p} ({'found' if p.is_file() else 'missing'})" for p in candidates)
    partials = [part_path(p) for p in candidates if part_path(p).is_file()]
    fix = f"run `avatarcam download-model` ({manual_steps(default_destination())})"
    checks: list[Check] = []
    if explicit and not Path(explicit).expanduser().is_file():
        checks.append(Check("checkpoint", False, f"--checkpoint {explicit}: no such file",
                            f"check the path, or drop --checkpoint and {fix}"))
    elif not found:
        extra = "".join(f"; an interrupted download is at {p} ({_mb(p.stat().st_size)})" for p in partials)
        checks.append(Check("checkpoint", False, f"{CHECKPOINT_NAME} not found; searched {where}{extra}", fix))
        return checks
    else:
        detail = f"searched {where}"
        if partials:
            detail += "; interrupted download(s): " + ", ".join(map(str, partials))
        checks.append(Check("checkpoint locations", True, detail, required=False))
    for i, path in enumerate(found):
        in_use = i == 0 and not (explicit and path != Path(explicit).expanduser())
        checks.append(_file_check(path, in_use, load))
    return checks


def _file_check(path: Path, in_use: bool, load: bool) -> Check:
    name = f"checkpoint {path}" + ("" if in_use else " (not used: an earlier location wins)")
    try:
        size = path.stat().st_size
        md5 = cached_md5(path)
    except OSError as err:
        return Check(name, False, f"cannot read it ({err.strerror or err})",
                     "check the file's permissions, or delete it and run `avatarcam download-model`", required=in_use)
    known = ("matches the published vox-adv-cpk.pth.tar" if md5 == KNOWN_MD5
             else f"not the published inference file (md5 {KNOWN_MD5}); fine if it is the full training checkpoint")
    detail = f"{_mb(size)}, md5 {md5} ({known})"
    if not load:
        return Check(name, True, detail, required=in_use)
    try:
        kind = verify_loads(path)
    except CheckpointError as err:
        return Check(name, False, f"{detail}; does not load: {err}",
                     f"delete {path} and run `avatarcam download-model`", required=in_use)
    return Check(name, True, f"{detail}; loads strictly ({kind})", required=in_use)


def describe_mirrors(mirrors: Iterable[Mirror] = DEFAULT_MIRRORS) -> str:
    return ", ".join(m.label for m in mirrors)
