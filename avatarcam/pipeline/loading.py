"""Loading the model for live use: a GPU that fails at load falls back to the CPU with a notice.

Mid-meeting, a slow avatar beats no avatar: CUDA out of memory, a missing or broken CUDA
install, or a driver error while moving the weights all end up on the CPU instead of an error.
Anything else (a bad checkpoint, a bug) is still an error: the CPU would not fix it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import torch

from ..errors import AvatarcamError, CheckpointError
from ..paths import find_checkpoint

_DEVICE_FAILURE = re.compile(r"cuda|cudnn|cublas|driver", re.IGNORECASE)


def is_device_failure(err: BaseException) -> bool:
    """True for errors that mean "this GPU cannot be used", never for bugs or bad files."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    if isinstance(err, CheckpointError) or not isinstance(err, (RuntimeError, AvatarcamError)):
        return False
    # RuntimeError: CUDA/cuDNN/cuBLAS/driver failures; AvatarcamError: resolve_device refusing the GPU
    return bool(_DEVICE_FAILURE.search(str(err)))


def load_animator(checkpoint: str | os.PathLike | None, options=None, *, motion=None,
                  notice: Callable[[str], None] | None = None, progress: Callable[[str], None] | None = None):
    """``Animator.from_checkpoint`` for the live pipeline, with the CPU as the fallback device."""
    from ..engine import Animator, EngineOptions

    options = options or EngineOptions()
    path = find_checkpoint(checkpoint)
    try:
        return Animator.from_checkpoint(path, options, motion=motion, progress=progress)
    except Exception as err:
        if options.device == "cpu" or not is_device_failure(err):
            raise
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        if notice is not None:
            notice(f"the GPU could not be used ({reason}); running on the CPU instead, which is slower.")
    cpu_precision = options.precision if options.precision in ("auto", "fp32", "bf16") else "auto"
    return Animator.from_checkpoint(path, options.replace(device="cpu", precision=cpu_precision),
                                    motion=motion, progress=progress)
