"""Precision selection, the derived fast modules, and bf16 accuracy (no timing assertions)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from avatarcam.engine.fast import _subpixel_transposed, build_fast

from avatarcam.engine import (
    Animator,
    EngineOptions,
    FOMMConfig,
    KeypointDetector,
    OcclusionAwareGenerator,
    backends,
    synthetic_state_dicts,
)
from avatarcam.engine.backends import PSNR_BAR_DB, auto_precision, psnr, resolve_precision
from avatarcam.errors import AvatarcamError

ENGINE = Path(__file__).resolve().parent.parent / "avatarcam" / "engine"


def _run(anim: Animator, fx: dict) -> np.ndarray:
    anim.set_source(fx["source"])
    anim.calibrate(fx["driving_initial"])
    return anim.animate(fx["driving"])


def _reference(fx: dict) -> np.ndarray:
    return fx["prediction"][0].transpose(1, 2, 0)


@pytest.fixture(scope="module")
def tiny_modules():
    cfg = FOMMConfig.tiny()
    sds = synthetic_state_dicts(cfg, seed=0)
    det, gen = KeypointDetector(cfg).eval(), OcclusionAwareGenerator(cfg).eval()
    det.load_state_dict(sds["kp_detector"])
    gen.load_state_dict(sds["generator"])
    return det, gen


def test_no_torch_inverse_in_engine():
    for path in ENGINE.glob("*.py"):
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        code = re.sub(r'""".*?"""', "", code, flags=re.S)
        assert not re.search(r"torch\.inverse|linalg\.inv\b|\.inverse\(", code), path.name


def test_precision_resolution_rules(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_precision("auto", cuda) == "fp16"
    assert auto_precision(cpu, native_bf16=True) == "bf16"
    assert auto_precision(cpu, native_bf16=False) == "fp32"
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("fp16", cuda) == "fp16"
    with pytest.raises(AvatarcamError, match="fp16 on the CPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(AvatarcamError, match="unknown precision"):
        resolve_precision("int8", cpu)


def test_fp16_on_cpu_refused_by_animator(tiny_checkpoint):
    with pytest.raises(AvatarcamError, match="fp16"):
        Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp16"))


def test_native_bf16_env_override(monkeypatch):
    backends.cpu_has_native_bf16.cache_clear()
    try:
        monkeypatch.setenv("AVATARCAM_CPU_BF16", "0")
        assert backends.cpu_has_native_bf16() is False
        backends.cpu_has_native_bf16.cache_clear()
        monkeypatch.setenv("AVATARCAM_CPU_BF16", "1")
        assert backends.cpu_has_native_bf16() is True
    finally:
        backends.cpu_has_native_bf16.cache_clear()


def test_subpixel_transposed_equals_upsample_then_conv():
    torch.manual_seed(0)
    x, w, b = torch.randn(1, 5, 7, 9), torch.randn(4, 5, 3, 3), torch.randn(4)
    want = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), w, b, padding=1)
    got = F.conv_transpose2d(x, _subpixel_transposed(w.double()).float(), b, stride=2, padding=1)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_fp32_matches_reference_modules(tiny_modules, channels_last):
    det, gen = tiny_modules
    fdet, fgen = build_fast(det, gen, dtype=torch.float32, channels_last=channels_last)
    torch.manual_seed(1)
    src, drv = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        ks, kd = det(src), det(drv)
        fks = fdet(src)
        for k in ks:
            assert (fks[k] - ks[k]).abs().max() < 1e-5
        ref = gen(src, kp_source=ks, kp_driving=kd)["prediction"]
        got = fgen.decode(fgen.encode(src), ks, kd)
    assert (got - ref).abs().max() < 1e-5


def test_tiny_bf16_close_to_fp32(tiny_checkpoint, parity_fixture):
    fp32 = _run(Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32")), parity_fixture)
    bf16 = _run(Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="bf16")), parity_fixture)
    assert psnr(bf16, fp32) >= PSNR_BAR_DB


def test_auto_falls_back_to_fp32_below_the_bar(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(backends, "PSNR_BAR_DB", 1000.0)
    messages = []
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"), progress=messages.append)
    assert anim.precision == "fp32"
    assert any("using fp32" in m for m in messages)


def test_auto_keeps_bf16_above_the_bar(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: True)
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu"))
    assert anim.precision == "bf16"
    assert anim.backend.accuracy_db >= PSNR_BAR_DB
    assert anim.backend_name == "torch" and anim.provider == "torch-cpu"


@pytest.mark.slow
def test_full_model_fp32_parity_and_bf16_psnr(vox_checkpoint, parity_fixture):
    ref = _reference(parity_fixture)
    fp32 = _run(Animator.from_checkpoint(vox_checkpoint, EngineOptions(device="cpu", precision="fp32")), parity_fixture)
    assert np.abs(fp32 - ref).max() < 1e-4
    bf16 = _run(Animator.from_checkpoint(vox_checkpoint, EngineOptions(device="cpu", precision="bf16")), parity_fixture)
    assert psnr(bf16, fp32) >= PSNR_BAR_DB


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_and_graphs(tiny_checkpoint, parity_fixture):  # pragma: no cover - GPU machines only
    fp32 = _run(Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32")), parity_fixture)
    fp16 = _run(Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cuda")), parity_fixture)
    graphs = _run(Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cuda", precision="fp16", cuda_graphs=True)),
                  parity_fixture)
    assert psnr(fp16, fp32) >= PSNR_BAR_DB
    assert np.abs(graphs - fp16).max() < 1e-3


@pytest.mark.slow
def test_compile_matches_eager_or_falls_back(tiny_checkpoint, parity_fixture):
    messages = []
    compiled = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32", compile=True), progress=messages.append)
    eager = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32"))
    assert messages  # the compile cost is announced, never hidden in the first frame
    assert np.abs(_run(compiled, parity_fixture) - _run(eager, parity_fixture)).max() < 1e-4
