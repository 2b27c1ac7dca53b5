"""ONNX export and the ONNX Runtime backend (CPU provider; GPU providers only via fallback)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from avatarcam.engine import (  # noqa: E402
    Animator,
    EngineOptions,
    Keypoints,
    load_networks,
    normalize_kp,
    onnx_backend,  # noqa: E402
)
from avatarcam.engine import export as export_mod  # noqa: E402
from avatarcam.engine.export import MANIFEST, OPSET, STAGES, ensure_exported, is_complete  # noqa: E402
from avatarcam.engine.onnx_backend import CPU, OnnxBackend, provider_order  # noqa: E402
from avatarcam.paths import user_models_dir  # noqa: E402

ALL_GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def _t(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32)


def test_export_layout_and_checks(tiny_export):
    assert is_complete(tiny_export)
    manifest = json.loads((tiny_export / MANIFEST).read_text())
    assert manifest["opset"] == OPSET >= 16
    for stage in STAGES:
        assert manifest["stages"][stage]["max_abs_error"] < 1e-4
        sess = ort.InferenceSession(str(tiny_export / f"{stage}.onnx"), providers=[CPU])
        for inp in sess.get_inputs():  # static shapes
            assert all(isinstance(d, int) for d in inp.shape), (stage, inp.name, inp.shape)


@pytest.mark.slow
def test_full_model_onnx_matches_fixture(vox_export, parity_fixture):
    folder, manifest = vox_export
    assert max(s["max_abs_error"] for s in manifest["stages"].values()) < 1e-4
    fx = parity_fixture
    sess = {s: ort.InferenceSession(str(folder / f"{s}.onnx"), providers=[CPU]) for s in STAGES}

    def kp(img):
        value, jac = sess["kp_detector"].run(None, {"image": _t(img)})
        return Keypoints.from_numpy(value, jac)

    ks, k0, kd = kp(fx["source"]), kp(fx["driving_initial"]), kp(fx["driving"])
    assert np.abs(kd.value.numpy() - fx["kp_driving_value"]).max() < 1e-4
    kn = normalize_kp(ks, kd, k0, True, True, True)
    features, small = sess["source_encoder"].run(None, {"image": _t(fx["source"])})
    (pred,) = sess["generator"].run(None, {
        "features": features, "small": small, "value_source": ks.value.numpy(),
        "jacobian_source": ks.jacobian.numpy(), "value_driving": kn.value.numpy(),
        "jacobian_driving": kn.jacobian.numpy()})
    assert np.abs(pred - fx["prediction"]).max() < 1e-4


@pytest.mark.slow
def test_full_model_onnx_animator_end_to_end(vox_checkpoint, vox_export, parity_fixture):
    folder, _ = vox_export
    options = EngineOptions(device="cpu", precision="fp32", backend="onnx", onnx_dir=str(folder))
    anim = Animator.from_checkpoint(vox_checkpoint, options)
    assert anim.options.backend == "onnx" and anim.backend.provider == CPU and anim.options.precision == "fp32"
    anim.set_source(parity_fixture["source"])
    anim.calibrate(parity_fixture["driving_initial"])
    out = anim.animate(parity_fixture["driving"])
    assert out.shape == (256, 256, 3) and out.dtype == np.float32
    assert np.abs(out - parity_fixture["prediction"][0].transpose(1, 2, 0)).max() < 1e-4


def test_onnx_animator_matches_torch_fp32_tiny(tiny_checkpoint, tiny_export, parity_fixture):
    outs = []
    for backend in ("torch", "onnx"):
        options = EngineOptions(device="cpu", precision="fp32", backend=backend, onnx_dir=str(tiny_export))
        anim = Animator.from_checkpoint(tiny_checkpoint, options)
        assert anim.options.backend == backend
        anim.set_source(parity_fixture["source"])
        anim.calibrate(parity_fixture["driving_initial"])
        outs.append(anim.animate(parity_fixture["driving"]))
    assert np.abs(outs[0] - outs[1]).max() < 1e-4


def test_provider_order_rules():
    assert provider_order("cuda", ALL_GPU) == ALL_GPU
    assert provider_order("cuda", [CPU]) == [CPU]
    assert provider_order("cuda", ["CUDAExecutionProvider", CPU]) == ["CUDAExecutionProvider", CPU]
    assert provider_order("cpu", ALL_GPU) == [CPU]
    assert provider_order("cpu", [CPU], ["FooExecutionProvider", "CUDAExecutionProvider"]) == [CPU]


def test_failing_provider_falls_back_to_cpu(tiny_export, monkeypatch):
    """A GPU provider that ONNX Runtime lists but cannot start (no CUDA libraries, no GPU): the
    session is retried on the CPU provider alone, with a notice."""
    real_session = ort.InferenceSession
    attempts = []

    def session(path, sess_options=None, providers=None, **kw):
        names = [p if isinstance(p, str) else p[0] for p in providers]
        attempts.append(names)
        if names != [CPU]:
            raise RuntimeError("CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version")
        return real_session(path, sess_options=sess_options, providers=providers, **kw)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", CPU])
    monkeypatch.setattr(ort, "InferenceSession", session)
    messages = []
    backend = OnnxBackend(tiny_export, torch.device("cuda"), "fp32", progress=messages.append)
    assert attempts[0] == ["CUDAExecutionProvider", CPU] and [CPU] in attempts  # the fallback branch ran
    assert backend.provider == CPU
    assert any("CUDAExecutionProvider failed" in m for m in messages)
    assert backend.detect(torch.rand(1, 3, 256, 256)).value.shape == (1, 10, 2)


def test_fp16_request_without_tensorrt_runs_fp32(tiny_export):
    messages = []
    backend = OnnxBackend(tiny_export, torch.device("cpu"), "fp16", progress=messages.append)
    assert backend.precision == "fp32" and messages


def test_falls_back_to_torch_when_onnxruntime_unusable(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(onnx_backend, "onnxruntime_usable", lambda: "onnxruntime cannot be imported (test)")
    messages = []
    options = EngineOptions(device="cpu", precision="fp32", backend="onnx")
    anim = Animator.from_checkpoint(tiny_checkpoint, options, progress=messages.append)
    assert anim.options.backend == "torch"
    assert any("falling back to the torch backend" in m for m in messages)


def test_export_is_cached_per_checkpoint(tiny_checkpoint, tmp_path, monkeypatch):
    networks = load_networks(tiny_checkpoint)
    calls = []
    real = export_mod.export_onnx

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(export_mod, "export_onnx", counting)
    first = ensure_exported(networks, checkpoint=tiny_checkpoint)
    again = ensure_exported(networks, checkpoint=tiny_checkpoint)
    assert first == again and len(calls) == 1 and is_complete(first)
    assert first.parent == user_models_dir() / "onnx"
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="cpu", precision="fp32", backend="onnx"))
    assert anim.options.backend == "onnx" and len(calls) == 1


def test_export_command(tiny_checkpoint, tmp_path, capsys):
    from avatarcam.cli import main

    out = tmp_path / "exported"
    assert main(["export-onnx", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    assert is_complete(out)
    text = capsys.readouterr().out
    assert "max abs error" in text and str(out) in text
