"""The OpenVINO backend, backend="auto" (OpenVINO devices, the CPU speed race) and Apple's GPU in device="auto".

No Intel GPU/NPU or Apple GPU here: device lists are faked through ``openvino_backend.available_devices``
and ``torch.backends.mps.is_available``; compiling for the faked GPU really fails, so the fallbacks
run for real.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from avatarcam.engine import Animator, EngineOptions, load_networks, runtime_race  # noqa: E402
from avatarcam.engine import openvino_backend as ovb  # noqa: E402
from avatarcam.engine.export import GENERATOR_STAGES, MANIFEST, is_complete, split_generator  # noqa: E402
from avatarcam.engine.openvino_backend import OpenVINOBackend, pick_device, resolve_openvino_precision  # noqa: E402
from avatarcam.engine.options import PSNR_BAR_DB  # noqa: E402
from avatarcam.engine.precision import (  # noqa: E402
    auto_precision,
    cpu_has_native_bf16,
    psnr,
    render_accuracy,
    resolve_device,
)
from avatarcam.engine.torch_backend import TorchBackend  # noqa: E402
from avatarcam.errors import AvatarcamError  # noqa: E402


def _animate(anim: Animator, fx: dict) -> np.ndarray:
    anim.set_source(fx["source"])
    anim.calibrate(fx["driving_initial"])
    return anim.animate(fx["driving"])


def test_device_and_precision_rules(monkeypatch):
    assert pick_device(None, "auto", ["CPU", "GPU.0", "GPU.1", "NPU"]) == "GPU.0"
    assert pick_device(None, "auto", ["CPU", "NPU"]) == "NPU"
    assert pick_device(None, "auto", ["CPU"]) == "CPU"
    assert pick_device(None, "cpu", ["CPU", "GPU.0"]) == "CPU"  # device=cpu means the CPU
    assert pick_device("AUTO", "cpu", ["CPU"]) == "AUTO"
    assert resolve_openvino_precision("auto", "GPU.1") == resolve_openvino_precision("auto", "NPU") == "fp16"
    monkeypatch.setenv("AVATARCAM_CPU_BF16", "0")
    cpu_has_native_bf16.cache_clear()
    assert resolve_openvino_precision("auto", "CPU") == "fp32"
    assert resolve_openvino_precision("bf16", "CPU") == "bf16"
    cpu_has_native_bf16.cache_clear()


def test_openvino_device_option_is_checked():
    assert EngineOptions(backend="openvino", openvino_device="GPU.1").openvino_device == "GPU.1"
    with pytest.raises(AvatarcamError, match="unknown OpenVINO device 'TPU'"):
        EngineOptions(backend="openvino", openvino_device="TPU")


def test_openvino_fp32_matches_torch_and_says_what_runs(tiny_checkpoint, tiny_export, parity_fixture):
    outs = {}
    for backend in ("torch", "openvino"):
        options = EngineOptions(device="cpu", precision="fp32", backend=backend, onnx_dir=str(tiny_export))
        anim = Animator.from_checkpoint(tiny_checkpoint, options)
        outs[backend] = _animate(anim, parity_fixture)
    assert anim.describe() == "openvino CPU fp32" and anim.options.backend == "openvino"
    assert np.abs(outs["torch"] - outs["openvino"]).max() < 1e-4


# ops that move no data (views; aten::to of a tensor already in that dtype returns it: a conversion is aten::_to_copy)
NO_DATA_MOVED = {"aten::as_strided", "aten::detach", "detach", "aten::permute", "aten::resolve_conj",
                 "aten::resolve_neg", "aten::view", "aten::select", "aten::slice", "aten::unsqueeze", "aten::alias",
                 "aten::to", "aten::lift_fresh"}


def test_an_openvino_frame_runs_no_picture_sized_torch_op(tiny_checkpoint, tiny_export, parity_fixture):
    """torch only glues OpenVINO's stages: a torch op on a picture-sized tensor would wake torch's thread
    pool, whose spinning threads then compete with OpenVINO's for the same cores."""
    options = EngineOptions(device="cpu", precision="fp32", backend="openvino", onnx_dir=str(tiny_export))
    anim = Animator.from_checkpoint(tiny_checkpoint, options)
    anim.set_source(parity_fixture["source"])
    anim.calibrate(parity_fixture["driving_initial"])
    picture = 3 * anim.size * anim.size
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        anim.animate(parity_fixture["driving"])
    sized = {e.name for e in prof.events() if any(np.prod(shape) >= picture for shape in e.input_shapes if shape)}
    assert not sized - NO_DATA_MOVED


def test_second_build_loads_the_compiled_models_from_the_cache(tiny_export, tmp_path):
    folder = tmp_path / "export"  # a copy without the cache other tests filled
    shutil.copytree(tiny_export, folder, ignore=shutil.ignore_patterns(ovb.CACHE_SUBDIR))
    first = OpenVINOBackend(folder, "CPU", "fp32")
    blobs = sorted(p.name for p in first.cache_dir.iterdir())
    assert not first.loaded_from_cache and blobs
    second = OpenVINOBackend(folder, "CPU", "fp32")
    assert second.loaded_from_cache
    assert sorted(p.name for p in second.cache_dir.iterdir()) == blobs  # nothing compiled again


def test_reduced_precision_is_checked_once_and_kept_above_the_bar(tiny_checkpoint, tiny_export, monkeypatch):
    monkeypatch.setenv("AVATARCAM_CPU_BF16", "1")
    cpu_has_native_bf16.cache_clear()
    try:
        options = EngineOptions(device="cpu", backend="openvino", onnx_dir=str(tiny_export))
        messages: list[str] = []
        anim = Animator.from_checkpoint(tiny_checkpoint, options, progress=messages.append)
        assert anim.backend.precision == "bf16" and anim.backend.accuracy_db >= 45.0
        assert anim.describe() == "openvino CPU bf16"
        assert any("Checking OpenVINO bf16" in m for m in messages)
        again: list[str] = []
        anim = Animator.from_checkpoint(tiny_checkpoint, options, progress=again.append)
        assert anim.backend.accuracy_db >= 45.0 and not any("Checking" in m for m in again)  # cached
    finally:
        cpu_has_native_bf16.cache_clear()


def _runtime_precisions(compiled) -> dict[str, set[str]]:
    """{layer type: precisions it ran in} from OpenVINO's runtime model (what the plugin really executes)."""
    ran: dict[str, set[str]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        ran.setdefault(info["layerType"].astype(str), set()).add(info["runtimePrecision"].astype(str))
    return ran


def test_reduced_precision_keeps_the_geometry_fp32(tiny_export):
    """bf16 compiles the conv stacks bf16 and the geometry stages (flow, softmax, GridSample) f32; the
    single generator graph at the bf16 hint runs the flow's arithmetic in bf16 (the plugin ignores
    per-node marks), which is why it is split."""
    backend = OpenVINOBackend(tiny_export, "CPU", "bf16")
    assert backend.precision == "bf16"  # this CPU has native bf16 (AVX512-BF16)
    assert [stage["reduced"] for stage in backend.generator_stages] == [False, True, False, True, False]
    for stage, compiled in zip(backend.generator_stages, backend.generator_models, strict=True):
        ran = _runtime_precisions(compiled)
        if stage["reduced"]:
            assert ran.get("Convolution") == {"bf16"} and "GridSample" not in ran
        else:
            assert "Convolution" not in ran and not any("bf16" in p for p in ran.values()), ran
    assert sum("GridSample" in _runtime_precisions(m) for m in backend.generator_models) == 2
    one_graph = OpenVINOBackend(tiny_export, "CPU", "bf16", split=False)
    ran = _runtime_precisions(one_graph.generator_models[0])
    assert "bf16" in ran["Softmax"] | ran["MatMul"]  # the mask softmax, the jacobian product


def test_accuracy_check_refuses_bf16_geometry_and_passes_the_split(tiny_checkpoint, tiny_export):
    """The old single bf16 graph passed the old check (smooth seeded picture) and lost accuracy on
    faces; the check on moving faces refuses it and passes the fp32-geometry split."""
    networks = load_networks(tiny_checkpoint)
    reference = TorchBackend(networks, torch.device("cpu"), "fp32").render
    size = networks.config.image_size
    one_graph = OpenVINOBackend(tiny_export, "CPU", "bf16", split=False)
    split = OpenVINOBackend(tiny_export, "CPU", "bf16")
    assert render_accuracy(one_graph.render, reference, size, "cpu") < PSNR_BAR_DB
    assert render_accuracy(split.render, reference, size, "cpu") >= PSNR_BAR_DB


def test_openvino_bf16_stays_above_the_bar_on_animated_faces(tiny_checkpoint, tiny_export, monkeypatch):
    """What auto picks keeps >= 45 dB from torch fp32 on every frame of a moving face (the Animator's
    whole path: calibration, relative motion), not only on the check's inputs."""
    from synthetic import astronaut_face, driving_frames

    monkeypatch.setenv("AVATARCAM_CPU_BF16", "1")
    cpu_has_native_bf16.cache_clear()
    try:
        runs = {}
        for backend, precision in (("openvino", "auto"), ("torch", "fp32")):
            options = EngineOptions(device="cpu", precision=precision, backend=backend, onnx_dir=str(tiny_export))
            anim = Animator.from_checkpoint(tiny_checkpoint, options)
            frames = driving_frames(12)
            anim.set_source(astronaut_face(256))
            anim.calibrate(frames[0])
            runs[anim.describe()] = [anim.animate(frame) for frame in frames[1:]]
    finally:
        cpu_has_native_bf16.cache_clear()
    got, want = runs["openvino CPU bf16"], runs["torch-cpu fp32"]
    assert min(psnr(a, b) for a, b in zip(got, want, strict=True)) >= PSNR_BAR_DB


def test_generator_split_refuses_a_wrong_cut_and_old_exports_are_redone(tiny_export, tmp_path):
    assert json.loads((tiny_export / MANIFEST).read_text())["generator_stages_max_abs_error"] < 1e-5  # exact cut
    shutil.copy(tiny_export / "generator.onnx", tmp_path)
    with pytest.raises(AvatarcamError, match="cannot split the generator by precision"):
        split_generator(tmp_path / "generator.onnx", [])  # no conv stack: convolutions would stay fp32
    old = tmp_path / "old"
    shutil.copytree(tiny_export, old, ignore=shutil.ignore_patterns(ovb.CACHE_SUBDIR))
    assert is_complete(old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest[GENERATOR_STAGES]
    (old / MANIFEST).write_text(json.dumps(manifest))
    assert not is_complete(old)  # an export from before the precision stages is made again


def test_auto_uses_a_listed_intel_gpu_and_falls_back_to_the_cpu(tiny_checkpoint, tiny_export, monkeypatch):
    """OpenVINO lists a GPU (faked): auto compiles for it; that really fails here, so OpenVINO's CPU
    runs, with one notice."""
    monkeypatch.delenv("AVATARCAM_AUTO_BACKEND")
    monkeypatch.setattr(ovb, "available_devices", lambda: ["CPU", "GPU.0"])
    monkeypatch.setattr(runtime_race, "race", lambda specs: pytest.fail("no race when a GPU is listed"))
    messages: list[str] = []
    options = EngineOptions(device="auto", precision="fp32", onnx_dir=str(tiny_export))
    anim = Animator.from_checkpoint(tiny_checkpoint, options, progress=messages.append)
    failed = [m for m in messages if "GPU.0 failed" in m]
    assert len(failed) == 1 and "\n" not in failed[0]
    assert anim.describe() == "openvino CPU fp32"


@pytest.mark.parametrize("faster", ["torch", "openvino"])
def test_auto_on_the_cpu_takes_the_faster_runtime_once(tiny_checkpoint, tiny_export, monkeypatch, faster):
    monkeypatch.delenv("AVATARCAM_AUTO_BACKEND")
    races = []

    def race(specs):
        races.append(specs)
        return {"torch": 50.0, "openvino": 80.0} if faster == "torch" else {"torch": 80.0, "openvino": 50.0}

    monkeypatch.setattr(runtime_race, "race", race)
    options = EngineOptions(device="cpu", precision="fp32", onnx_dir=str(tiny_export))
    for _ in range(2):
        anim = Animator.from_checkpoint(tiny_checkpoint, options)
        assert anim.options.backend == faster
    assert len(races) == 1  # the second start read the cached winner
    assert races[0]["torch"]["precision"] == races[0]["openvino"]["precision"] == "fp32"


def test_race_times_each_runtime_in_its_own_process(tiny_checkpoint, tiny_export):
    from avatarcam.engine import load_networks

    size = load_networks(tiny_checkpoint).config.image_size
    ms = runtime_race.race({
        "torch": {"backend": "torch", "checkpoint": str(tiny_checkpoint), "precision": "fp32", "size": size},
        "openvino": {"backend": "openvino", "folder": str(tiny_export), "device": "CPU", "precision": "fp32",
                     "size": size}})
    assert set(ms) == {"torch", "openvino"} and all(0 < v < 60_000 for v in ms.values())
    with pytest.raises(AvatarcamError, match="timing openvino failed"):
        runtime_race.measure({"backend": "openvino", "folder": str(tiny_export / "missing"), "device": "CPU",
                              "precision": "fp32", "size": size})


def test_thread_settings_reach_every_compiled_model(tiny_export):
    """The default thread properties, and a benchmark's overrides (scripts/bench_threads.py), are what
    OpenVINO compiled: every stage, the generator's precision stages included."""
    default = OpenVINOBackend(tiny_export, "CPU", "bf16")
    one = OpenVINOBackend(tiny_export, "CPU", "bf16", properties={"INFERENCE_NUM_THREADS": "1"})
    for backend, threads in ((default, None), (one, 1)):
        compiled = [*backend.models.values(), *backend.generator_models]
        assert len(compiled) == 2 + len(backend.generator_stages) > 3
        assert {str(m.get_property("PERFORMANCE_HINT")) for m in compiled} == {"LATENCY"}
        if threads:
            assert {m.get_property("INFERENCE_NUM_THREADS") for m in compiled} == {threads}


def test_a_timing_child_reports_each_frame(tiny_checkpoint):
    size = load_networks(tiny_checkpoint).config.image_size
    spec = {"backend": "torch", "checkpoint": str(tiny_checkpoint), "precision": "fp32", "size": size,
            "frames": 3, "torch_threads": 1}
    times = runtime_race.measure_frames(spec)
    assert len(times) == 3 and all(t > 0 for t in times)


def test_race_scores_each_runtime_quiet_and_under_a_competing_process(tiny_checkpoint, monkeypatch):
    """In use the call app shares the cores: each runtime is timed quiet and beside a busy process, the
    score is both together, and the busy process is gone afterwards."""
    from avatarcam.engine import load_networks

    spinners, timed = [], []
    real_busy, real_measure = runtime_race.busy_process, runtime_race.measure
    monkeypatch.setattr(runtime_race, "busy_process", lambda: spinners.append(real_busy()) or spinners[-1])
    monkeypatch.setattr(runtime_race, "measure", lambda spec, busy=False: timed.append(busy) or real_measure(
        spec, busy=busy))
    size = load_networks(tiny_checkpoint).config.image_size
    ms = runtime_race.race({"torch": {"backend": "torch", "checkpoint": str(tiny_checkpoint), "precision": "fp32",
                                      "size": size}})
    assert timed == [False, True] and ms["torch"] > 0
    assert len(spinners) == 1 and spinners[0].poll() is not None  # started for the busy run, then stopped


def test_race_times_the_runtimes_in_mirrored_order(monkeypatch):
    """A machine whose speed drifts while the race runs must not decide it: quiet A, B then busy B, A, so
    a steady slowdown adds the same to both scores (measured: a cold-start race once picked torch)."""
    clock = iter(range(1, 100))
    order = []

    def drifting(spec, busy=False):
        order.append((spec["backend"], busy))
        return 100.0 + 10 * next(clock)  # every later measurement is slower, whatever runs

    monkeypatch.setattr(runtime_race, "measure", drifting)
    ms = runtime_race.race({"torch": {"backend": "torch"}, "openvino": {"backend": "openvino"}})
    assert order == [("torch", False), ("openvino", False), ("openvino", True), ("torch", True)]
    assert ms["torch"] == ms["openvino"]


def test_unusable_openvino_falls_back_to_torch(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(ovb, "openvino_usable", lambda: "openvino cannot be imported (test)")
    messages: list[str] = []
    options = EngineOptions(device="cpu", precision="fp32", backend="openvino")
    anim = Animator.from_checkpoint(tiny_checkpoint, options, progress=messages.append)
    assert anim.options.backend == "torch"
    assert [m for m in messages if "falling back to the torch backend" in m] == [
        "OpenVINO unusable (openvino cannot be imported (test)); falling back to the torch backend."]


def test_auto_device_picks_apple_gpu_and_falls_back_to_the_cpu(tiny_checkpoint, monkeypatch):
    """torch reports mps (faked): device=auto picks it with fp16 to check; this torch build cannot run
    on mps, so the model runs on the CPU after one notice."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert auto_precision(torch.device("mps")) == "fp16"
    messages: list[str] = []
    anim = Animator.from_checkpoint(tiny_checkpoint, EngineOptions(device="auto"), progress=messages.append)
    assert anim.backend.device == torch.device("cpu") and anim.describe().startswith("torch-cpu")
    notices = [m for m in messages if "mps" in m]
    assert len(notices) == 1 and "running on the CPU" in notices[0]


def test_doctor_lists_openvino_devices(monkeypatch):
    from avatarcam.commands.doctor import openvino_checks

    monkeypatch.setattr(ovb, "available_devices", lambda: ["CPU", "GPU.0"])
    [check] = openvino_checks()
    assert check.ok and "CPU: " in check.detail and "GPU.0" in check.detail


@pytest.mark.slow
def test_full_model_openvino_fp32_matches_the_reference_fixture(vox_checkpoint, vox_export, parity_fixture):
    folder, _ = vox_export
    options = EngineOptions(device="cpu", precision="fp32", backend="openvino", onnx_dir=str(folder))
    anim = Animator.from_checkpoint(vox_checkpoint, options)
    assert anim.describe() == "openvino CPU fp32"
    out = _animate(anim, parity_fixture)
    assert np.abs(out - parity_fixture["prediction"][0].transpose(1, 2, 0)).max() < 1e-4


@pytest.mark.slow
def test_full_model_openvino_bf16_passes_the_check_on_moving_faces(vox_checkpoint, vox_export):
    """The full-size model (where the single bf16 graph measured 38.4 dB on the check's faces)."""
    folder, _ = vox_export
    networks = load_networks(vox_checkpoint)
    reference = TorchBackend(networks, torch.device("cpu"), "fp32").render
    split = OpenVINOBackend(folder, "CPU", "bf16")
    assert render_accuracy(split.render, reference, networks.config.image_size, "cpu") >= PSNR_BAR_DB
