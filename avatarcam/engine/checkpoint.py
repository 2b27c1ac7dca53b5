"""Safe loading of FOMM checkpoints.

A checkpoint is an untrusted download, so it is read with ``weights_only=True`` (no code in
the file can run), its size is bounded, and every problem becomes one ``CheckpointError``
line that names the file and the fix.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..paths import CHECKPOINT_NAME, CHECKPOINT_URL, user_models_dir
from .config import FOMMConfig
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector
from .layout import FACE_DOMAIN, config_from_state_dicts, config_name, domain_of
from .sniff import sniff_header

log = logging.getLogger("avatarcam.engine")

MODULES = ("kp_detector", "generator")
CONFIG_KEY = "avatarcam_config"  # optional: architecture of a non-vox-256 (test) model
MAX_CHECKPOINT_BYTES = 4 << 30  # the full training checkpoint is ~700 MB; 4 GiB is plainly wrong
_SHOW_KEYS = 3


def where_to_get() -> str:
    return (f"run `avatarcam download-model`, or download {CHECKPOINT_NAME} from {CHECKPOINT_URL} "
            f"into {user_models_dir()} (or pass --checkpoint PATH)")


def _first(keys, n: int = _SHOW_KEYS) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Mapping]:
    """Read the file and return {"kp_detector": state_dict, "generator": state_dict}.

    Accepts the official training layout (extra ``discriminator``, ``optimizer_*`` and ``epoch``
    entries are ignored) and files holding only the two inference modules. An optional
    ``avatarcam_config`` entry (reduced test models) is passed through.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found; {where_to_get()}.")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file; pass the path of {CHECKPOINT_NAME}.")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: file is empty (an interrupted download?); {where_to_get()}.")
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: {size / 2**30:.1f} GiB is far larger than a FOMM checkpoint; "
                              f"check the file, {where_to_get()}.")
    with open(path, "rb") as f:
        head = f.read(512)
    kind = sniff_header(head)
    if kind == "html":
        raise CheckpointError(f"{path}: is a web page (HTML), not a checkpoint, as cloud drives serve "
                              f"instead of the file; {where_to_get()}.")
    if kind == "unknown":
        raise CheckpointError(f"{path}: not a PyTorch checkpoint; {where_to_get()}.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(f"{path}: refused, the file contains Python code or objects that would run "
                                  f"on loading; use the official {CHECKPOINT_NAME}.") from None
        log.debug("unpickling %s failed: %s", path, _short(err))  # torch's words are for a bug report, not the user
        raise CheckpointError(f"{path}: corrupt checkpoint; delete it and {where_to_get()}.") from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError, MemoryError) as err:
        log.debug("loading %s failed: %s", path, _short(err))
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (an interrupted download?); "
                              f"delete it and {where_to_get()}.") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict with "
                              f"'kp_detector' and 'generator'; {where_to_get()}.")
    missing = [m for m in MODULES if m not in obj]
    if missing:
        entries = " or ".join(repr(m) for m in missing)
        raise CheckpointError(f"{path}: not a First Order Motion Model checkpoint: no {entries} "
                              f"entry (has {_first(map(str, obj.keys()))}); {where_to_get()}.")
    out = {}
    for name in MODULES:
        sd = obj[name]
        if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{path}: entry {name!r} is not a state dict of tensors; {where_to_get()}.")
        out[name] = sd
    if isinstance(obj.get(CONFIG_KEY), Mapping):
        out[CONFIG_KEY] = obj[CONFIG_KEY]
    return out


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _scalar_counters(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> dict:
    """BatchNorm ``num_batches_tracked`` saved as a 1-element 1-d tensor (older tools) as the 0-d
    scalar the module holds, as torch's own ``load_state_dict`` accepts; every other key unchanged."""
    out = dict(state_dict)
    for k, v in state_dict.items():
        ref = expected.get(k)
        if k.endswith("num_batches_tracked") and ref is not None and ref.dim() == 0 and tuple(v.shape) == (1,):
            out[k] = v.reshape(())
    return out


def load_module_weights(module: nn.Module, state_dict: Mapping[str, torch.Tensor], name: str,
                        path: str | os.PathLike, layout: str = "vox-256 layout") -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the first bad keys.

    Half-precision checkpoints are accepted: floating tensors are cast to the module's dtype.
    """
    expected = module.state_dict()
    state_dict = _scalar_counters(state_dict, expected)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"missing keys: {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_first(unexpected)}")
    if wrong:
        problems.append(f"mis-shaped keys: {_first(wrong)}")
    if problems:
        raise CheckpointError(f"{path}: {name} does not match the {layout} model ({'; '.join(problems)}); "
                              f"use {CHECKPOINT_NAME} or another First Order Motion Model checkpoint.")
    converted = {}
    for k, v in state_dict.items():
        ref = expected[k]
        if v.is_floating_point() != ref.is_floating_point():
            raise CheckpointError(f"{path}: {name}.{k} has dtype {v.dtype}, expected {ref.dtype}; "
                                  f"use {CHECKPOINT_NAME}.")
        bad = v.is_floating_point() and not bool(torch.isfinite(v).all())
        if bad:
            raise CheckpointError(f"{path}: {name}.{k} contains NaN or infinite values; the file is damaged.")
        converted[k] = v.to(ref.dtype) if v.dtype != ref.dtype else v
    module.load_state_dict(converted, strict=True)


@dataclass(frozen=True)
class Networks:
    """The two reference networks of one checkpoint: CPU, fp32, eval mode."""

    config: FOMMConfig
    kp_detector: KeypointDetector
    generator: OcclusionAwareGenerator
    domain: str = FACE_DOMAIN  # "face", or a full-frame domain (engine/layout.py: taichi, fashion, bair, mgif)


def load_networks(path: str | os.PathLike) -> Networks:
    """THE checkpoint -> networks recipe (Animator, model checks, ONNX export); raises CheckpointError.

    The configuration is the stored ``avatarcam_config`` if any, else read from the state-dict
    shapes (every public FOMM checkpoint: vox, taichi, fashion, nemo, bair, mgif); the load is strict."""
    state = read_checkpoint(path)
    stored = state.get(CONFIG_KEY)
    try:
        config = (FOMMConfig.from_dict(stored) if stored
                  else config_from_state_dicts(state["kp_detector"], state["generator"]))
        kp_detector, generator = KeypointDetector(config), OcclusionAwareGenerator(config)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError):
        what = f"its {CONFIG_KEY!r} entry is not a valid model config" if stored else \
            "its tensor shapes do not describe a First Order Motion Model"
        raise CheckpointError(f"{path}: {what}; use {CHECKPOINT_NAME}.") from None
    layout = config_name(config)
    load_module_weights(kp_detector, state["kp_detector"], "kp_detector", path, layout)
    load_module_weights(generator, state["generator"], "generator", path, layout)
    return Networks(config, kp_detector.eval(), generator.eval(), domain_of(path, config))
