"""Precision selection, the prepared networks, bf16 accuracy and device consistency (no timing assertions)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatarcam.engine import Animator, EngineOptions, Keypoints, backends, load_networks, precision
from avatarcam.engine.blocks import AntiAliasDownsample
from avatarcam.engine.options import PSNR_BAR_DB
from avatarcam.engine.precision import auto_precision, psnr, resolve_precision
from avatarcam.engine.prepare import ConvBlock, FoldedResBlock, prepare_for_inference, subpixel_transposed
from avatarcam.engine.torch_backend import TorchBackend
from avatarcam.errors import AvatarcamError

ENGINE = Path(__file__).resolve().parent.parent / "avatarcam" / "engine"


def _run(anim: Animator, fx: dict) -> np.ndarray:
    anim.set_source(fx["source"])
    anim.calibrate(fx["driving_initial"])
    return anim.animate(fx["driving"])


def _reference(fx: dict) -> np.ndarray:
    return fx["prediction"][0].transpose(1, 2, 0)


def _load(path, **options) -> Animator:
    progress = options.pop("progress", None)
    return Animator.from_checkpoint(path, EngineOptions(**options), progress=progress)


@pytest.fixture(scope="module")
def tiny_networks(tiny_checkpoint):
    return load_networks(tiny_checkpoint)


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
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("fp16", cuda) == "fp16"
    with pytest.raises(AvatarcamError, match="fp16 on the CPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(AvatarcamError, match="unknown precision"):
        resolve_precision("int8", cpu)


def test_fp16_on_cpu_refused_by_animator(tiny_checkpoint):
    with pytest.raises(AvatarcamError, match="fp16"):
        _load(tiny_checkpoint, device="cpu", precision="fp16")


def test_native_bf16_env_override(monkeypatch):
    precision.cpu_has_native_bf16.cache_clear()
    try:
        monkeypatch.setenv("AVATARCAM_CPU_BF16", "0")
        assert precision.cpu_has_native_bf16() is False
        precision.cpu_has_native_bf16.cache_clear()
        monkeypatch.setenv("AVATARCAM_CPU_BF16", "1")
        assert precision.cpu_has_native_bf16() is True
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_subpixel_transposed_equals_upsample_then_conv():
    torch.manual_seed(0)
    x, w, b = torch.randn(1, 5, 7, 9), torch.randn(4, 5, 3, 3), torch.randn(4)
    want = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), w, b, padding=1)
    got = F.conv_transpose2d(x, subpixel_transposed(w.double()).float(), b, stride=2, padding=1)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_prepared_fp32_matches_unprepared(tiny_networks, channels_last):
    det, gen = tiny_networks.kp_detector, tiny_networks.generator
    pdet, pgen = (prepare_for_inference(m, torch.float32, channels_last) for m in (det, gen))
    assert any(isinstance(m, FoldedResBlock) for m in pgen.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in pgen.modules())
    torch.manual_seed(1)
    src, drv = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        ks, kd, pks = det(src), det(drv), pdet(src)
        assert (pks.value - ks.value).abs().max() < 1e-5 and (pks.jacobian - ks.jacobian).abs().max() < 1e-5
        ref = gen(src, ks, kd)
        got = pgen.decode(pgen.encode_source(src), ks, kd)
    assert (got.prediction - ref.prediction).abs().max() < 1e-5
    assert (got.motion.deformation - ref.motion.deformation).abs().max() < 1e-5
    assert next(det.parameters()).dtype == torch.float32  # the reference networks are untouched


def test_prepared_bf16_keeps_geometry_fp32(tiny_networks):
    gen = prepare_for_inference(tiny_networks.generator, torch.bfloat16, channels_last=True)
    convs = [m.conv for m in gen.modules() if isinstance(m, ConvBlock)]
    assert convs and all(c.weight.dtype == torch.bfloat16 for c in convs)
    assert all(m.weight.dtype == torch.float32 for m in gen.modules() if isinstance(m, AntiAliasDownsample))
    with torch.inference_mode():
        src = torch.rand(1, 3, 256, 256)
        kp = Keypoints(torch.rand(1, 10, 2) - 0.5, torch.eye(2).expand(1, 10, 2, 2).clone())
        out = gen.decode(gen.encode_source(src), kp, kp)
    for t in (out.prediction, out.motion.deformation, out.motion.mask, out.motion.occlusion_map):
        assert t.dtype == torch.float32


def test_tiny_bf16_close_to_fp32(tiny_checkpoint, parity_fixture):
    fp32 = _run(_load(tiny_checkpoint, device="cpu", precision="fp32"), parity_fixture)
    bf16 = _run(_load(tiny_checkpoint, device="cpu", precision="bf16"), parity_fixture)
    assert psnr(bf16, fp32) >= PSNR_BAR_DB


def test_auto_falls_back_to_fp32_below_the_bar(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "PSNR_BAR_DB", 1000.0)
    messages = []
    anim = _load(tiny_checkpoint, device="cpu", progress=messages.append)
    assert anim.options.precision == "fp32"
    assert any("using fp32" in m for m in messages)


def test_auto_keeps_bf16_above_the_bar(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    anim = _load(tiny_checkpoint, device="cpu")
    assert anim.options.precision == "bf16" and anim.describe() == "torch-cpu bf16"
    assert anim.backend.accuracy_db >= PSNR_BAR_DB
    assert anim.options.backend == "torch" and anim.backend.provider == "torch-cpu"


def test_precision_check_result_is_cached_on_disk(tiny_checkpoint, monkeypatch):
    """A second start with precision=auto does not run the check again (even in a new process:
    the in-memory state is not involved, only the file under the user data dir)."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    calls = []
    real = backends.precision_accuracy

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(backends, "precision_accuracy", counting)
    first = _load(tiny_checkpoint, device="cpu")
    second = _load(tiny_checkpoint, device="cpu")
    assert calls == ["bf16"]
    assert second.options.precision == first.options.precision == "bf16"
    assert second.backend.accuracy_db == pytest.approx(first.backend.accuracy_db)
    assert (precision.user_data_dir() / precision.CACHE_FILE).is_file()


def test_precision_check_runs_on_one_device(tiny_networks, monkeypatch):
    """The accuracy check compares prepared networks on the SAME device. On the meta device any
    op mixing a CPU tensor in raises (as CUDA would); the old check ran the CPU reference modules
    on device inputs and failed here."""
    seen = []

    def fake_psnr(a, b):
        seen.append((a.device.type, b.device.type))
        return 60.0

    monkeypatch.setattr(precision, "psnr", fake_psnr)  # meta tensors carry no values to compare
    assert backends.precision_accuracy(tiny_networks, torch.device("meta"), "bf16") == 60.0
    assert seen == [("meta", "meta")] * len(precision.CHECK_MOTIONS)


def _detail(image: torch.Tensor) -> float:
    return float((image[..., 1:, :] - image[..., :-1, :]).abs().mean())


def test_check_inputs_are_a_moving_face(monkeypatch):
    """The check measures on pictures like real use: a textured face (the smooth seeded picture hid
    OpenVINO's bf16 warp error) and moved copies of it; the worst pair counts."""
    pairs = precision.check_inputs(256)
    assert len(pairs) == len(precision.CHECK_MOTIONS) >= 2
    smooth, _ = precision.seeded_inputs(256)
    for source, driving in pairs:
        assert source.shape == driving.shape == (1, 3, 256, 256)
        assert _detail(source) > 2 * _detail(smooth)  # a photo's texture
        assert psnr(source, driving) < 25  # really moved
    assert precision.render_accuracy(lambda s, d: d, lambda s, d: d, 256, "cpu") == float("inf")
    results = iter([50.0, 44.0])
    monkeypatch.setattr(precision, "psnr", lambda a, b: next(results))
    assert precision.render_accuracy(lambda s, d: d, lambda s, d: d, 256, "cpu") == 44.0


def test_a_result_of_an_older_check_is_not_reused(tiny_checkpoint, tiny_networks, monkeypatch):
    config, cpu, current = tiny_networks.config, torch.device("cpu"), precision.CHECK_VERSION
    monkeypatch.setattr(precision, "CHECK_VERSION", current - 1)
    precision.store_accuracy(tiny_checkpoint, config, cpu, "bf16", 45.8)
    assert precision.cached_accuracy(tiny_checkpoint, config, cpu, "bf16") == 45.8
    monkeypatch.setattr(precision, "CHECK_VERSION", current)
    assert precision.cached_accuracy(tiny_checkpoint, config, cpu, "bf16") is None


def test_torch_backend_stages_stay_on_their_device(tiny_networks):
    backend = TorchBackend(tiny_networks, torch.device("meta"), "bf16")
    image = torch.rand(2, 3, 256, 256)  # a CPU batch, as the Animator hands it over
    kp = backend.detect(image)
    encoded = backend.encode(image)
    cpu_kp = Keypoints(torch.zeros(2, 10, 2), torch.eye(2).expand(2, 10, 2, 2).clone())  # e.g. filtered on the CPU
    prediction = backend.decode(encoded, kp, cpu_kp)
    assert {t.device.type for t in (kp.value, kp.jacobian, encoded.features, encoded.small, prediction)} == {"meta"}
    assert prediction.shape == (2, 3, 256, 256) and prediction.dtype == torch.float32


@pytest.mark.slow
def test_full_model_fp32_parity_and_bf16_psnr(vox_checkpoint, parity_fixture):
    ref = _reference(parity_fixture)
    fp32 = _run(_load(vox_checkpoint, device="cpu", precision="fp32"), parity_fixture)
    assert np.abs(fp32 - ref).max() < 1e-4
    bf16 = _run(_load(vox_checkpoint, device="cpu", precision="bf16"), parity_fixture)
    assert psnr(bf16, fp32) >= PSNR_BAR_DB


@pytest.mark.slow
def test_compile_matches_eager_or_falls_back(tiny_checkpoint, parity_fixture):
    messages = []
    compiled = _load(tiny_checkpoint, device="cpu", precision="fp32", compile=True, progress=messages.append)
    eager = _load(tiny_checkpoint, device="cpu", precision="fp32")
    assert messages  # the compile cost is announced, never hidden in the first frame
    assert np.abs(_run(compiled, parity_fixture) - _run(eager, parity_fixture)).max() < 1e-4
