"""Is this the checkpoint? Digests (with the md5 cache), the strict load, and the atomic install."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ChecksumError, DownloadCancelled, NotACheckpointError
from ..paths import FileIdentity, atomic_write_text, file_identity, user_data_dir
from .locate import discard_partial

KNOWN_MD5 = "8a45a24037871c045fbb8a6a8aa95ebc"  # Avatarify's inference-only vox-adv-cpk.pth.tar
MD5_CACHE_NAME = "checksums.json"

Status = Callable[[str], None]
Checksum = tuple[str, str]  # (hashlib algorithm, lower-case hex digest)


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


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _md5_cache() -> dict:
    try:
        cache = json.loads((user_data_dir() / MD5_CACHE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def remember_md5(identity: FileIdentity, md5: str) -> None:
    """Store ``md5`` for the file as it is now (the cache's one writer; atomic)."""
    cache = _md5_cache()
    cache[identity.path] = {"size": identity.size, "mtime_ns": identity.mtime_ns, "md5": md5}
    try:
        atomic_write_text(user_data_dir() / MD5_CACHE_NAME, json.dumps(cache, indent=1))
    except OSError:
        pass  # a cache only


def cached_md5(path: str | os.PathLike) -> str:
    """md5 of a file, remembered by its ``paths.file_identity`` in the user data folder."""
    identity = file_identity(path)
    if identity is None:
        Path(path).expanduser().stat()  # raises the OSError that says why
        raise FileNotFoundError(path)
    entry = _md5_cache().get(identity.path)
    if isinstance(entry, dict) and entry.get("size") == identity.size and entry.get("mtime_ns") == identity.mtime_ns:
        md5 = entry.get("md5")
        if isinstance(md5, str) and len(md5) == 32:
            return md5
    md5 = file_digest(identity.path, "md5")
    remember_md5(identity, md5)
    return md5


def verify_loads(path: str | os.PathLike) -> str:
    """Load the file strictly into fresh networks on the CPU (fp32); return a short description
    of the model. Raises ``CheckpointError``."""
    from ..engine import FOMMConfig, load_networks

    config = load_networks(path).config
    if config == FOMMConfig.vox256():
        return "vox-256"
    return f"reduced model ({config.image_size} px, from its stored config)"


def install(part: Path, dest: Path, source: str, expected: Checksum | None, say: Status,
            cancel: threading.Event | None) -> DownloadResult:
    """Check the finished ``part`` (checksum, strict load) and move it onto ``dest``; a bad file is deleted."""
    md5 = file_digest(part, "md5")
    if expected is not None:
        algo, hexd = expected
        say(f"Checking the {algo} checksum")
        got = md5 if algo == "md5" else file_digest(part, algo)
        if got != hexd:
            discard_partial(dest)
            raise ChecksumError(f"{source}: checksum mismatch ({algo} {got}, expected {hexd}): the download "
                                "is corrupt or a different file; deleted it")
    say("Checking that it loads into the model")
    try:
        kind = verify_loads(part)
    except CheckpointError as err:
        discard_partial(dest)
        raise NotACheckpointError(f"{source}: the downloaded file is not a usable checkpoint ({err}); "
                                  "deleted it") from None
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(f"download cancelled; download again to finish ({part} is kept).")
    size = part.stat().st_size
    os.replace(part, dest)
    discard_partial(dest)  # the .part.json
    identity = file_identity(dest)
    if identity is not None:
        remember_md5(identity, md5)
    return DownloadResult(dest, size, md5, source, checksum_checked=expected is not None, kind=kind)
