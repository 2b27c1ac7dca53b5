"""``avatarcam download-model``: fetch, verify and install the FOMM weights."""

from __future__ import annotations

import argparse
import re
import sys

from ..model_store import (
    DEFAULT_MIRRORS,
    DEFAULT_TIMEOUT_S,
    DOWNLOAD_SIZE_LABEL,
    Mirror,
    download_checkpoint,
    part_path,
    resolve_destination,
)
from ..paths import CHECKPOINT_NAME

HELP = f"Download {CHECKPOINT_NAME} ({DOWNLOAD_SIZE_LABEL}), check its checksum and that it loads, and install it."


def _hex(length: int, name: str):
    def parse(value: str) -> str:
        if not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value.strip()):
            raise argparse.ArgumentTypeError(f"{name} must be {length} hexadecimal digits")
        return value.strip().lower()

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", action="append", metavar="URL", dest="urls",
                        help="download from this URL instead of the default mirrors (repeat to give several, "
                        "tried in order); a direct file link, not a cloud-drive page")
    parser.add_argument("--dest", metavar="PATH",
                        help="where to put the file (a file path or a folder); default: your user models folder")
    sums = parser.add_mutually_exclusive_group()
    sums.add_argument("--md5", type=_hex(32, "--md5"), metavar="HEX",
                      help="expected md5 (overrides the known checksum of the default mirrors)")
    sums.add_argument("--sha256", type=_hex(64, "--sha256"), metavar="HEX", help="expected sha256")
    parser.add_argument("--force", action="store_true",
                        help="download again even if a good file is already there")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help=f"network timeout for connecting and for each read (default {DEFAULT_TIMEOUT_S:g})")


def _mirrors(args):
    if args.urls:
        return [Mirror(u, md5=args.md5, sha256=args.sha256) for u in args.urls]
    if args.md5 or args.sha256:
        return [Mirror(m.url, md5=args.md5, sha256=args.sha256, name=m.name) for m in DEFAULT_MIRRORS]
    return list(DEFAULT_MIRRORS)


class _Bar:
    """tqdm progress bar (bytes, rate, ETA) created on the first progress report."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=CHECKPOINT_NAME, dynamic_ncols=True, file=sys.stderr, disable=None)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def main(args) -> int:
    dest = resolve_destination(args.dest)
    bar = _Bar()

    def status(msg: str) -> None:
        bar.close()
        print(msg, flush=True)

    try:
        result = download_checkpoint(dest, _mirrors(args), force=args.force, progress=bar, status=status,
                                     timeout=args.timeout)
    except KeyboardInterrupt:
        bar.close()
        print(f"avatarcam: interrupted; nothing was installed at {dest}; run `avatarcam download-model` again "
              f"to resume (partial file {part_path(dest)})", file=sys.stderr)
        return 130
    finally:
        bar.close()
    known = "the published vox-adv-cpk.pth.tar" if result.known_file else "not the published file's md5"
    if result.already_present:
        print(f"{result.path} is already there and loads ({result.size / 1e6:.1f} MB, md5 {result.md5}, {known}); "
              "nothing to do (--force downloads it again).")
    else:
        checked = "checksum verified, " if result.checksum_checked else "no checksum known for this source, "
        print(f"Installed {result.path} ({result.size / 1e6:.1f} MB, md5 {result.md5}; {checked}"
              f"loads strictly: {result.kind}).")
    return 0
