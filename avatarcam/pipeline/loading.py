"""Loading the model for live use: a GPU that fails at load falls back to the CPU with a notice.

Mid-meeting, a slow avatar beats no avatar: CUDA out of memory, a missing or broken CUDA
install, or a driver error while moving the weights all end up on the CPU instead of an error.
A bad checkpoint is still an error: the CPU would not load it either.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import CheckpointError
from ..paths import find_checkpoint


def load_animator(checkpoint: str | os.PathLike | None, device: str = "auto", precision: str = "auto",
                  notice: Callable[[str], None] | None = None, **options):
    """``Animator.from_checkpoint`` for the live pipeline, with the CPU as the fallback device."""
    from ..engine import Animator

    path = find_checkpoint(checkpoint)
    try:
        return Animator.from_checkpoint(path, device, precision, **options)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - CUDA OOM, CUDA unavailable, driver errors: all mean "not this GPU"
        if device == "cpu":
            raise
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        if notice is not None:
            notice(f"the GPU could not be used ({reason}); running on the CPU instead, which is slower.")
    cpu_precision = precision if precision in ("auto", "fp32", "bf16") else "auto"
    return Animator.from_checkpoint(path, "cpu", cpu_precision, **options)
