"""Getting, checking and finding the model weights (``vox-adv-cpk.pth.tar``). Qt-free.

``locate`` (where the file goes), ``download`` (mirrors, resumable HTTP), ``verify`` (digests,
md5 cache, strict load, atomic install) and ``checks`` (`avatarcam doctor`'s checkpoint checks).
"""

from ..errors import ChecksumError, DiskFullError, DownloadCancelled, DownloadError, NotACheckpointError
from .checks import checkpoint_checks
from .download import (
    DEFAULT_MIRRORS,
    DEFAULT_TIMEOUT_S,
    DOWNLOAD_SIZE_LABEL,
    MAX_DOWNLOAD_BYTES,
    Mirror,
    Progress,
    download_checkpoint,
)
from .locate import (
    default_destination,
    discard_partial,
    locate_checkpoint,
    manual_steps,
    meta_path,
    part_path,
    resolve_destination,
)
from .verify import KNOWN_MD5, DownloadResult, cached_md5, file_digest, install, remember_md5, verify_loads

__all__ = [
    "DEFAULT_MIRRORS", "DEFAULT_TIMEOUT_S", "DOWNLOAD_SIZE_LABEL", "KNOWN_MD5", "MAX_DOWNLOAD_BYTES",
    "ChecksumError", "DiskFullError", "DownloadCancelled", "DownloadError", "DownloadResult", "Mirror",
    "NotACheckpointError", "Progress", "cached_md5", "checkpoint_checks", "default_destination",
    "discard_partial", "download_checkpoint", "file_digest", "install", "locate_checkpoint", "manual_steps",
    "meta_path", "part_path", "remember_md5", "resolve_destination", "verify_loads",
]
