"""User-facing errors.

Every error a user can cause (a bad file, a missing camera, a wrong option) is raised as an
``AvatarcamError`` whose message is one line naming the file or thing and the fix. The CLI
and the GUI print that line; they never show a traceback for these.
"""

from __future__ import annotations


class AvatarcamError(Exception):
    """An error the user can fix; ``str(err)`` is a single line saying how."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class CheckpointError(AvatarcamError):
    """A model checkpoint is missing, unreadable or of the wrong layout."""


class MediaError(AvatarcamError):
    """An image or video cannot be read or is unsuitable."""


class CameraError(AvatarcamError):
    """A camera cannot be opened or stopped delivering frames."""


class OutputError(AvatarcamError):
    """An output (virtual camera, recording) cannot be used."""


class DownloadError(AvatarcamError):
    """Downloading the checkpoint failed (network, HTTP, wrong file); the destination was not touched."""


class ChecksumError(DownloadError):
    """The downloaded file does not have the expected checksum (it was deleted)."""


class NotACheckpointError(DownloadError):
    """The server sent something that is not a checkpoint (e.g. an HTML page)."""


class DiskFullError(DownloadError):
    """Not enough free disk space for the download."""


class DownloadCancelled(AvatarcamError):
    """Cancelled by the user; a resumable ``.part`` may remain next to the destination."""
