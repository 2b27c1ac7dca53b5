"""The GPU path, on a machine with an NVIDIA GPU (skipped cleanly elsewhere; CI has none).

Run them with ``scripts/gpu_check.sh`` (these tests, then the benchmark writing docs/bench/<gpu>.json).
The CPU-only tests of the same logic (device consistency on the meta device, the precision cache,
batch parity) are in test_precision.py and test_engine_api.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarcam.engine import AnimateJob, Animator, EngineOptions
from avatarcam.engine.options import PSNR_BAR_DB
from avatarcam.engine.precision import psnr

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _load(path, **options) -> Animator:
    return Animator.from_checkpoint(path, EngineOptions(**options))


def _run(anim: Animator, fx: dict) -> np.ndarray:
    anim.set_source(fx["source"])
    anim.calibrate(fx["driving_initial"])
    return anim.animate(fx["driving"])


@pytest.fixture(scope="module")
def fp32_cuda(vox_checkpoint):
    return _load(vox_checkpoint, device="cuda", precision="fp32")


def test_auto_stays_on_the_gpu_in_reduced_precision(vox_checkpoint, parity_fixture, fp32_cuda):
    """device=auto, precision=auto on CUDA: the default users get. It must neither fall back to the
    CPU nor run a device mix-up (the bug this issue was opened for)."""
    anim = _load(vox_checkpoint)
    assert anim.options.device.startswith("cuda") and anim.options.precision in ("fp16", "bf16")
    assert psnr(_run(anim, parity_fixture), _run(fp32_cuda, parity_fixture)) >= PSNR_BAR_DB


def test_fp16_keeps_the_geometry_in_fp32(vox_checkpoint, parity_fixture, fp32_cuda):
    fp16 = _load(vox_checkpoint, device="cuda", precision="fp16")
    for image in (parity_fixture["source"], parity_fixture["driving"]):
        a, b = fp16.detect(image), fp32_cuda.detect(image)
        assert a.value.dtype == torch.float32 and a.jacobian.dtype == torch.float32
        assert (a.value - b.value).abs().max().item() < 1e-4
        assert (a.jacobian - b.jacobian).abs().max().item() < 1e-4


def test_fp32_on_the_gpu_matches_the_authors(fp32_cuda, parity_fixture):
    reference = parity_fixture["prediction"][0].transpose(1, 2, 0)
    assert np.abs(_run(fp32_cuda, parity_fixture) - reference).max() < 1e-4


def test_cuda_graphs_replay_the_eager_result(vox_checkpoint, parity_fixture):
    eager = _run(_load(vox_checkpoint, device="cuda", precision="fp16"), parity_fixture)
    graphs = _load(vox_checkpoint, device="cuda", precision="fp16", cuda_graphs=True)
    assert np.abs(_run(graphs, parity_fixture) - eager).max() < 1e-3
    assert np.abs(graphs.animate(parity_fixture["driving"]) - eager).max() < 1e-3  # a replay, not a capture


def test_batch_items_equal_batch_one_on_the_gpu(fp32_cuda, parity_fixture):
    source = fp32_cuda.prepare_source(parity_fixture["source"])
    neutral = fp32_cuda.make_calibration(source, fp32_cuda.detect(parity_fixture["driving_initial"]))
    driving = fp32_cuda.detect(parity_fixture["driving"])
    single = fp32_cuda.animate_batch([AnimateJob(source, driving, neutral)])[0]
    batch = fp32_cuda.animate_batch([AnimateJob(source, driving, neutral)] * 4)
    assert np.abs(batch - single[None]).max() < 1e-5
