"""Getting, checking and finding the model weights (``vox-adv-cpk.pth.tar``). Qt-free.

``locate`` (where the file goes), ``download`` (mirrors, resumable HTTP), ``verify`` (digests,
md5 cache, strict load, atomic install) and ``checks`` (`avatarcam doctor`'s checkpoint checks).
"""

from ..errors import ChecksumError, DiskFullError, DownloadCancelled, DownloadError, NotACheckpointError
from .checks import checkpoint_checks
from .download import DEFAULT_MIRRORS, DEFAULT_TIMEOUT_S, DOWNLOAD_SIZE_LABEL, Mirror, download_checkpoint
from .locate import manual_steps, meta_path, part_path, resolve_destination
from .verify import KNOWN_MD5, DownloadResult, cached_md5, verify_loads

__all__ = ["DEFAULT_MIRRORS", "DEFAULT_TIMEOUT_S", "DOWNLOAD_SIZE_LABEL", "KNOWN_MD5", "ChecksumError", "DiskFullError",
           "DownloadCancelled", "DownloadError", "DownloadResult", "Mirror", "NotACheckpointError", "cached_md5",
           "checkpoint_checks", "download_checkpoint", "manual_steps", "meta_path", "part_path",
           "resolve_destination", "verify_loads"]
