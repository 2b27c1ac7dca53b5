"""Deterministic random weights in the checkpoint's layout.

Real weights cannot be shipped or downloaded in tests, so tests and demos use these. For the
vox-256 config this reproduces, value for value, the reference recipe the parity fixtures were
computed on (one numpy ``default_rng(seed)``, kp_detector then generator, in state_dict order,
float64 draws cast to float32). For other configs it gives the same kind of well-behaved
random network.
"""

from __future__ import annotations

import fnmatch
import os
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from .blocks import AntiAliasDownsample
from .checkpoint import CONFIG_KEY
from .config import FOMMConfig
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector

BIAS_STD = 0.02
# Extra gain on the He std so the random network's outputs are not degenerate
# (spread keypoints, invertible jacobians, unsaturated mask, occlusion and image).
GAINS = {
    "kp_detector": {"kp.weight": 1.0, "jacobian.weight": 0.2},
    "generator": {
        "bottleneck.r*.conv2.weight": 0.3,
        "dense_motion_network.mask.weight": 3.0,
        "dense_motion_network.occlusion.weight": 4.0,
        "final.weight": 1.0,
    },
}


def _gain(module_name: str, key: str) -> float:
    for pattern, gain in GAINS[module_name].items():
        if fnmatch.fnmatchcase(key, pattern):
            return gain
    return 1.0


def _antialias_kernel(module: AntiAliasDownsample) -> np.ndarray:
    channels, _, size, _ = module.weight.shape
    sigma = (module.step - 1) / 2
    g = np.exp(-((np.arange(size, dtype=np.float64) - (size - 1) / 2.0) ** 2) / (2.0 * sigma**2))
    k = np.outer(g, g)
    return np.broadcast_to(k / k.sum(), (channels, 1, size, size))


def _random_state_dict(module_name: str, net: nn.Module, rng: np.random.Generator) -> OrderedDict:
    owners = {}
    for prefix, sub in net.named_modules():
        for key in list(sub._parameters) + list(sub._buffers):
            owners[f"{prefix}.{key}" if prefix else key] = (sub, key)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, ref in net.state_dict().items():
        sub, attr = owners[name]
        shape = tuple(ref.shape)
        if attr == "num_batches_tracked":
            value = np.zeros(shape, dtype=np.int64)
        elif attr == "running_mean":
            value = rng.normal(0.0, BIAS_STD, shape)
        elif attr == "running_var":
            value = rng.uniform(0.5, 1.5, shape)
        elif isinstance(sub, AntiAliasDownsample):
            value = _antialias_kernel(sub)
        elif isinstance(sub, nn.BatchNorm2d):
            value = rng.uniform(0.8, 1.2, shape) if attr == "weight" else rng.normal(0.0, BIAS_STD, shape)
        elif isinstance(sub, nn.Conv2d) and attr == "weight":
            fan_in = shape[1] * shape[2] * shape[3]
            value = rng.normal(0.0, _gain(module_name, name) * np.sqrt(2.0 / fan_in), shape)
        elif isinstance(sub, nn.Conv2d) and attr == "bias":
            value = rng.normal(0.0, BIAS_STD, shape)
            if module_name == "kp_detector" and name == "jacobian.bias":
                value = value + np.tile([1.0, 0.0, 0.0, 1.0], shape[0] // 4)
        else:  # pragma: no cover - a new parameter kind must be given a rule here
            raise ValueError(f"{module_name}.{name}: no rule for synthetic weights")
        dtype = np.int64 if attr == "num_batches_tracked" else np.float32
        out[name] = torch.from_numpy(np.array(value, dtype=dtype, order="C"))  # keeps 0-d shapes
    return out


def synthetic_state_dicts(config: FOMMConfig | None = None, seed: int = 0) -> dict[str, OrderedDict]:
    """{"kp_detector": state_dict, "generator": state_dict} with deterministic random values."""
    config = config or FOMMConfig.vox256()
    rng = np.random.default_rng(seed)
    kp = _random_state_dict("kp_detector", KeypointDetector(config), rng)
    gen = _random_state_dict("generator", OcclusionAwareGenerator(config), rng)
    return {"kp_detector": kp, "generator": gen}


def write_synthetic_checkpoint(path: str | os.PathLike, config: FOMMConfig | None = None, seed: int = 0) -> str:
    """Write a checkpoint in the official layout (``kp_detector``, ``generator``, ``epoch``)."""
    config = config or FOMMConfig.vox256()
    ckpt: dict = dict(synthetic_state_dicts(config, seed))
    ckpt["epoch"] = 0
    if config != FOMMConfig.vox256():
        # Reduced test models say what they are, so `--checkpoint tiny.pth.tar` just works.
        ckpt[CONFIG_KEY] = config.to_dict()
    torch.save(ckpt, os.fspath(path))
    return os.fspath(path)
