"""Every public FOMM checkpoint layout loads strictly with its configuration read from the shapes."""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import synthetic_state_dicts

from avatarcam.engine import Animator, EngineOptions, FOMMConfig, KeypointDetector, load_networks
from avatarcam.engine.layout import config_from_state_dicts, domain_of
from avatarcam.errors import CheckpointError

DATA = Path(__file__).parent / "data"
MGIF = json.loads((DATA / "mgif256_layout.json").read_text())


def _save(path: Path, sds: dict) -> Path:
    """The authors' file layout, with no avatarcam_config entry: the shapes must say everything."""
    torch.save({**sds, "epoch": 0}, path)
    return path


@pytest.fixture(scope="module")
def mgif_checkpoint(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("ckpt") / "mgif-cpk.pth.tar", synthetic_state_dicts(FOMMConfig.mgif256(), 0))


def test_mgif_layout_and_recipe_match_the_authors_manifest():
    sds = synthetic_state_dicts(FOMMConfig.mgif256(), seed=0)
    for name, sd in sds.items():
        assert [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()] == MGIF["modules"][name]
        h = hashlib.sha256()
        for key, value in sd.items():
            h.update(key.encode())
            h.update(value.numpy().tobytes())
        assert h.hexdigest()[:16] == MGIF["seed0_sha256_16"][name]


@pytest.mark.parametrize("config", [FOMMConfig.vox256(), FOMMConfig.mgif256(), FOMMConfig.tiny()],
                         ids=["vox", "mgif", "tiny"])
def test_config_read_from_shapes_rebuilds_the_same_layout(config):
    sds = synthetic_state_dicts(config, 0)
    found = config_from_state_dicts(sds["kp_detector"], sds["generator"])
    assert found.kp_detector.single_jacobian_map == config.kp_detector.single_jacobian_map
    rebuilt = {k: tuple(v.shape) for k, v in KeypointDetector(found).state_dict().items()}
    assert rebuilt == {k: tuple(v.shape) for k, v in sds["kp_detector"].items()}
    if config != FOMMConfig.tiny():
        assert found == config


def test_domain_from_name_and_jacobian_maps():
    assert domain_of("vox-adv-cpk.pth.tar", FOMMConfig.vox256()) == "face"
    assert domain_of("nemo-cpk.pth.tar", FOMMConfig.vox256()) == "face"  # smiles: faces
    assert domain_of("/m/Taichi-adv-cpk.pth.tar", FOMMConfig.vox256()) == "taichi"
    assert domain_of("fashion.pth.tar", FOMMConfig.vox256()) == "fashion"
    assert domain_of("weights.pth.tar", FOMMConfig.mgif256()) == "mgif"


@pytest.mark.slow
def test_mgif_loads_strictly_and_matches_the_authors_prediction(mgif_checkpoint):
    anim = Animator.from_checkpoint(mgif_checkpoint, EngineOptions(device="cpu", precision="fp32", backend="torch"))
    assert anim.config == FOMMConfig.mgif256() and anim.networks.domain == "mgif"
    with np.load(DATA / "parity_mgif_seed0.npz") as f:
        fx = {k: f[k] for k in f.files}
    anim.set_source(fx["source"])
    anim.calibrate(fx["driving_initial"])
    kp = anim.detect(fx["driving"])
    for name in ("value", "jacobian"):
        assert np.abs(getattr(kp, name).numpy() - fx[f"kp_driving_{name}"]).max() <= 1e-5
    err = np.abs(anim.animate_keypoints(kp) - fx["prediction"][0].transpose(1, 2, 0))
    assert err.max() <= 1e-4 and err.mean() <= 1e-5, (err.max(), err.mean())


def test_batches_tracked_as_one_element_vector_is_accepted(tmp_path):
    sds = synthetic_state_dicts(FOMMConfig.tiny(), 0)
    kp = collections.OrderedDict((k, v.reshape(1) if k.endswith("num_batches_tracked") else v)
                                 for k, v in sds["kp_detector"].items())
    load_networks(_save(tmp_path / "old-tool.pth.tar", {"kp_detector": kp, "generator": sds["generator"]}))
    # everything else stays strict: a 1-element vector where the model has a scalar weight is refused
    kp["predictor.encoder.down_blocks.0.conv.bias"] = kp["predictor.encoder.down_blocks.0.conv.bias"][:1]
    with pytest.raises(CheckpointError, match="mis-shaped keys"):
        load_networks(_save(tmp_path / "bad.pth.tar", {"kp_detector": kp, "generator": sds["generator"]}))
    two = collections.OrderedDict(sds["kp_detector"])
    key = next(k for k in two if k.endswith("num_batches_tracked"))
    two[key] = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(CheckpointError, match="num_batches_tracked"):
        load_networks(_save(tmp_path / "two.pth.tar", {"kp_detector": two, "generator": sds["generator"]}))
