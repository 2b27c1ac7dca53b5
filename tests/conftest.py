"""Shared fixtures. Qt runs offscreen; heavy objects are built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Ray reads its loopback-only / no-metrics settings when it is first imported, whichever test module
# imports it first: set them before any test module is collected (remote/ray_setup.py)
from avatarcam.remote.ray_setup import prepare_environment  # noqa: E402

prepare_environment()

# Fixtures of module or session scope run before the per-test isolation below: give the whole process
# safe defaults too (a scratch user folder, the torch backend for "auto"), so no fixture ever touches the
# real user's folders or races runtimes.
import tempfile  # noqa: E402

_SCRATCH = tempfile.mkdtemp(prefix="avatarcam-tests-")
for _name, _value in {"AVATARCAM_DATA_DIR": f"{_SCRATCH}/data", "AVATARCAM_CONFIG_DIR": f"{_SCRATCH}/config",
                      "TORCH_HOME": f"{_SCRATCH}/torch", "AVATARCAM_AUTO_BACKEND": "torch"}.items():
    os.environ[_name] = _value
os.environ.pop("AVATARCAM_CHECKPOINT", None)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Never touch the real user's settings, avatars or models from a test."""
    root = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("AVATARCAM_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("AVATARCAM_CONFIG_DIR", str(root / "config"))
    monkeypatch.delenv("AVATARCAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    # backend="auto" on the CPU would race torch against OpenVINO (two child processes) in every test
    # that builds an Animator; the race and OpenVINO have their own tests (test_openvino.py)
    monkeypatch.setenv("AVATARCAM_AUTO_BACKEND", "torch")


@pytest.fixture(scope="session")
def parity_fixture() -> dict[str, np.ndarray]:
    with np.load(DATA / "parity_seed0.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A reduced-size checkpoint (same classes, config stored inside) for pipeline/GUI tests."""
    from synthetic import write_synthetic_checkpoint

    from avatarcam.engine import FOMMConfig

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth.tar"
    write_synthetic_checkpoint(path, FOMMConfig.tiny(), seed=0)
    return path


@pytest.fixture(scope="session")
def vox_checkpoint(tmp_path_factory) -> Path:
    """The full-size seed-0 synthetic checkpoint in the official layout (~250 MB)."""
    from synthetic import write_synthetic_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "vox-seed0.pth.tar"
    write_synthetic_checkpoint(path, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory):
    """The reduced model exported to ONNX (ONNX Runtime and OpenVINO tests)."""
    from avatarcam.engine import load_networks
    from avatarcam.engine.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    export_onnx(load_networks(tiny_checkpoint), folder)
    return folder


@pytest.fixture(scope="session")
def vox_export(vox_checkpoint, tmp_path_factory):
    """The full-size model exported to ONNX (folder, manifest), shared by the parity tests."""
    from avatarcam.engine import load_networks
    from avatarcam.engine.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx") / "vox"
    manifest = export_onnx(load_networks(vox_checkpoint), folder)
    return folder, manifest


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()


@pytest.fixture
def server():
    """A real HTTP file server on 127.0.0.1 (see model_server.py), stopped after the test."""
    from model_server import FileServer

    srv = FileServer()
    yield srv
    srv.stop()


@pytest.fixture
def fake_vcam():
    """Registers helpers.RecordingVcam (name "avatarcam-test") and helpers.MissingVcam
    ("avatarcam-missing") with pyvirtualcam, and always unregisters them: pyvirtualcam tries every
    registered backend when none is named, so a leftover would make later "no vcam" cases pass."""
    import pyvirtualcam
    from helpers import MissingVcam, RecordingVcam

    RecordingVcam.frames = []
    RecordingVcam.fail_after = None
    RecordingVcam.sent.clear()
    pyvirtualcam.register_backend("avatarcam-test", RecordingVcam)
    pyvirtualcam.register_backend("avatarcam-missing", MissingVcam)
    try:
        yield RecordingVcam
    finally:
        # pyvirtualcam has register_backend but no public unregister; its registry is this dict
        for name in ("avatarcam-test", "avatarcam-missing"):
            pyvirtualcam.camera.BACKENDS.pop(name, None)


@pytest.fixture(scope="session")
def ckpt_bytes(tiny_checkpoint) -> bytes:
    return Path(tiny_checkpoint).read_bytes()


torch.set_num_threads(min(2, os.cpu_count() or 1))
