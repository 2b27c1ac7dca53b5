"""The live loader falls back to the CPU only for real device failures, never to hide a bug."""

from __future__ import annotations

import pytest
import torch

from avatarcam.engine import Animator, EngineOptions
from avatarcam.errors import AvatarcamError, CheckpointError
from avatarcam.pipeline.loading import is_device_failure, load_animator


def test_device_failures_are_recognised():
    assert is_device_failure(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_device_failure(RuntimeError("CUDA error: no kernel image is available for execution on the device"))
    assert is_device_failure(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_INITIALIZED"))
    assert is_device_failure(RuntimeError("Found no NVIDIA driver on your system"))
    assert is_device_failure(AvatarcamError("device 'cuda' requested but no CUDA GPU is usable here"))
    assert not is_device_failure(CheckpointError("x.pth.tar: truncated"))
    assert not is_device_failure(RuntimeError("The size of tensor a (4) must match the size of tensor b (5)"))
    assert not is_device_failure(ValueError("bug"))
    assert not is_device_failure(AvatarcamError("unknown precision 'int8'; use auto, fp32, fp16, bf16."))


@pytest.mark.parametrize("error", [ValueError("a bug in the engine"),
                                   RuntimeError("mat1 and mat2 shapes cannot be multiplied")])
def test_a_bug_on_the_gpu_path_is_not_hidden(tiny_checkpoint, monkeypatch, error):
    real = Animator.from_checkpoint.__func__

    def failing(cls, path, options=None, **kw):
        if options.device != "cpu":
            raise error
        return real(cls, path, options, **kw)

    monkeypatch.setattr(Animator, "from_checkpoint", classmethod(failing))
    notices = []
    with pytest.raises(type(error)):
        load_animator(tiny_checkpoint, EngineOptions(device="auto"), notice=notices.append)
    assert notices == []
