"""Every bad checkpoint is refused with one line naming the file and the problem; none runs code."""

from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from synthetic import synthetic_state_dicts

from avatarcam.engine import Animator, EngineOptions, FOMMConfig, KeypointDetector
from avatarcam.engine.checkpoint import read_checkpoint
from avatarcam.errors import CheckpointError


@pytest.fixture(scope="module")
def tiny_state():
    return synthetic_state_dicts(FOMMConfig.tiny(), seed=0)


def _save(path, obj, **kw):
    torch.save(obj, path, **kw)
    return path


def _tiny_ckpt(tiny_state, **extra):
    ckpt = {"kp_detector": tiny_state["kp_detector"], "generator": tiny_state["generator"],
            "avatarcam_config": FOMMConfig.tiny().to_dict()}
    ckpt.update(extra)
    return ckpt


def _error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        Animator.from_checkpoint(path, EngineOptions(device="cpu", precision="fp32"))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_file_says_where_to_get_it(tmp_path):
    msg = _error(tmp_path / "vox-adv-cpk.pth.tar")
    assert "not found" in msg and "download-model" in msg and "openavatarify" in msg


def test_folder_empty_text_html(tmp_path):
    assert "folder" in _error(tmp_path)
    empty = tmp_path / "empty.pth.tar"
    empty.write_bytes(b"")
    assert "empty" in _error(empty)
    text = tmp_path / "text.pth.tar"
    text.write_text("this is not a model\n")
    assert "not a PyTorch checkpoint" in _error(text)
    html = tmp_path / "page.pth.tar"
    html.write_text("<!DOCTYPE html><html><body>Google Drive can't scan this file</body></html>")
    assert "HTML" in _error(html)


def test_truncated_file(tmp_path, tiny_state):
    full = _save(tmp_path / "full.pth.tar", _tiny_ckpt(tiny_state))
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert "truncated or corrupt" in _error(cut)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, tiny_state, legacy):
    marker = tmp_path / "pwned"
    ckpt = _tiny_ckpt(tiny_state, epoch=_Exploit(marker))
    path = tmp_path / "evil.pth.tar"
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    msg = _error(path)
    assert "refused" in msg and "code" in msg
    assert not marker.exists()
    # the file really is an exploit: an unsafe loader would have run it
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    pickle.loads(raw.read_bytes())
    assert marker.exists()


def test_official_training_layout_and_inference_only_layout_load(tmp_path, tiny_state):
    training = _tiny_ckpt(tiny_state, discriminator=collections.OrderedDict(w=torch.zeros(3)),
                          optimizer_generator={"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999)}]},
                          epoch=149)
    legacy = _save(tmp_path / "legacy.pth.tar", training, _use_new_zipfile_serialization=False)
    modern = _save(tmp_path / "inference.pth.tar", _tiny_ckpt(tiny_state))
    outs = []
    for path in (legacy, modern):
        anim = Animator.from_checkpoint(path, EngineOptions(device="cpu", precision="fp32"))
        anim.set_source(np.full((64, 48, 3), 0.5, np.float32))
        outs.append(anim.animate(np.full((256, 256, 3), 0.4, np.float32)))
    assert np.array_equal(outs[0], outs[1])


def test_removed_key_is_named(tmp_path, tiny_state):
    gen = collections.OrderedDict(tiny_state["generator"])
    del gen["bottleneck.r0.norm2.running_var"]
    path = _save(tmp_path / "missing-key.pth.tar", _tiny_ckpt(tiny_state, generator=gen))
    msg = _error(path)
    assert "missing keys" in msg and "bottleneck.r0.norm2.running_var" in msg


def test_unexpected_and_misshaped_keys_are_named(tmp_path, tiny_state):
    kp = collections.OrderedDict(tiny_state["kp_detector"])
    kp["extra.weight"] = torch.zeros(2)
    kp["kp.bias"] = torch.zeros(11)
    path = _save(tmp_path / "bad-keys.pth.tar", _tiny_ckpt(tiny_state, kp_detector=kp))
    msg = _error(path)
    assert "unexpected keys: extra.weight" in msg and "mis-shaped keys: kp.bias (11,) != (10,)" in msg


def test_wrong_architecture(tmp_path, tiny_state):
    """A keypoint detector for 5 keypoints with a generator for 10 matches no model (the
    configuration is read from the shapes, so each module alone would load)."""
    five = KeypointDetector(dataclasses.replace(FOMMConfig.tiny(), num_kp=5)).state_dict()
    path = _save(tmp_path / "other.pth.tar", {"kp_detector": five, "generator": tiny_state["generator"]})
    assert "generator does not match the custom layout model" in _error(path)
    not_fomm = _save(tmp_path / "resnet.pth.tar", {"state_dict": {"fc.weight": torch.zeros(2)}})
    assert "not a First Order Motion Model checkpoint" in _error(not_fomm)
    tensor = _save(tmp_path / "tensor.pth.tar", torch.zeros(3))
    assert "holds a Tensor" in _error(tensor)


def test_fp16_saved_weights_load_as_fp32(tmp_path, tiny_state):
    half = {m: collections.OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
            for m, sd in tiny_state.items()}
    path = _save(tmp_path / "half.pth.tar", _tiny_ckpt(tiny_state, **half))
    anim = Animator.from_checkpoint(path, EngineOptions(device="cpu", precision="fp32"))
    assert next(anim.networks.generator.parameters()).dtype == torch.float32


def test_nan_weights_refused(tmp_path, tiny_state):
    gen = collections.OrderedDict(tiny_state["generator"])
    gen["final.bias"] = torch.tensor([float("nan"), 0.0, 0.0])
    path = _save(tmp_path / "nan.pth.tar", _tiny_ckpt(tiny_state, generator=gen))
    assert "NaN" in _error(path)


def test_read_checkpoint_ignores_training_extras(tmp_path, tiny_state):
    path = _save(tmp_path / "x.pth.tar", _tiny_ckpt(tiny_state, epoch=3, optimizer_kp_detector={"state": {}}))
    assert set(read_checkpoint(path)) == {"kp_detector", "generator", "avatarcam_config"}


def test_cli_reports_removed_key_without_traceback(tmp_path, tiny_state):
    gen = collections.OrderedDict(tiny_state["generator"])
    del gen["final.weight"]
    ckpt = _save(tmp_path / "ckpt.pth.tar", _tiny_ckpt(tiny_state, generator=gen))
    import cv2
    from synthetic import astronaut_face, driving_frames, write_clip

    cv2.imwrite(str(tmp_path / "a.png"), astronaut_face(64))
    write_clip(tmp_path / "b.mp4", driving_frames(2, size=64))
    cmd = [sys.executable, "-m", "avatarcam", "animate", "a.png", "b.mp4", "-o", str(tmp_path / "o.mp4"),
           "--checkpoint", str(ckpt)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if not line.endswith("loading the model ...")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("avatarcam: error:") and "final.weight" in lines[0]
    assert not (tmp_path / "o.mp4").exists()
