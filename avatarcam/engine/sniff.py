"""What a file's first bytes say it is (stdlib only: the downloader checks the first chunk with it)."""

from __future__ import annotations

from typing import Literal


def sniff_header(head: bytes) -> Literal["zip", "legacy", "html", "unknown"]:
    """A torch zip checkpoint, a legacy (pre-1.6) pickle checkpoint, a web page served instead of
    the file, or something else."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":  # pickle protocol 2+
        return "legacy"
    if head.lstrip()[:1] == b"<":
        return "html"
    return "unknown"
