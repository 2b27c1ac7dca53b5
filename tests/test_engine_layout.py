"""The networks have exactly the published checkpoint's layout, so the real file loads strictly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from synthetic import synthetic_state_dicts

from avatarcam.engine import FOMMConfig, KeypointDetector, OcclusionAwareGenerator

LAYOUT = json.loads((Path(__file__).parent / "data" / "vox256_layout.json").read_text())
MODULES = {"kp_detector": KeypointDetector, "generator": OcclusionAwareGenerator}


@pytest.mark.parametrize("name", ["kp_detector", "generator"])
def test_state_dict_matches_official_layout(name):
    net = MODULES[name](FOMMConfig.vox256())
    ours = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in net.state_dict().items()]
    assert ours == LAYOUT["modules"][name]  # names, order, shapes, dtypes
    assert sum(p.numel() for p in net.parameters()) == LAYOUT["num_parameters"][name]


def test_synthetic_weights_reproduce_reference_recipe():
    """Same digests as the reference recipe the parity fixture was computed on."""
    sds = synthetic_state_dicts(FOMMConfig.vox256(), seed=0)
    for name, sd in sds.items():
        h = hashlib.sha256()
        for key, value in sd.items():
            h.update(key.encode())
            h.update(value.numpy().tobytes())
        assert h.hexdigest()[:16] == LAYOUT["seed0_sha256_16"][name]


def test_config_round_trip():
    cfg = FOMMConfig.tiny()
    assert FOMMConfig.from_dict(cfg.to_dict()) == cfg
    assert FOMMConfig.from_dict(FOMMConfig().to_dict()) == FOMMConfig.vox256()


def test_tiny_config_uses_same_classes_and_loads_strictly():
    cfg = FOMMConfig.tiny()
    sds = synthetic_state_dicts(cfg, seed=3)
    kp, gen = KeypointDetector(cfg), OcclusionAwareGenerator(cfg)
    kp.load_state_dict(sds["kp_detector"], strict=True)
    gen.load_state_dict(sds["generator"], strict=True)
    def classes(net):
        return {type(m).__name__ for m in net.modules()}

    assert classes(gen) == classes(OcclusionAwareGenerator(FOMMConfig()))
    assert classes(kp) == classes(KeypointDetector(FOMMConfig()))
