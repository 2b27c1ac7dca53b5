"""ONNX export of the three stages, with static 256x256 shapes.

Files in the export folder:

* ``kp_detector.onnx``: image (1,3,S,S) in [0,1] -> value (1,K,2), jacobian (1,K,2,2)
* ``source_encoder.onnx``: image -> features (1,C,S/4,S/4), small (1,3,S/4,S/4)  (once per avatar)
* ``generator.onnx``: features, small, value_source, jacobian_source, value_driving,
  jacobian_driving -> prediction (1,3,S,S)  (per frame: dense motion + warp + decoder)
* ``generator.<i>.onnx``: the same per-frame graph cut into consecutive stages, each either all
  geometry (sparse motions, heatmaps, mask softmax, flow, every GridSample: fp32 always) or all
  conv stack (the dense-motion hourglass with its mask/occlusion convolutions, the decoder: may run
  in a reduced precision). A runtime that applies one precision to a whole graph (OpenVINO's
  ``INFERENCE_PRECISION_HINT``) compiles each stage on its own to keep the geometry fp32, as the
  torch backend does (:mod:`.prepare`). The cut follows the ONNX name scopes of the sub-modules whose
  weights the preparation pass puts in the compute dtype (:func:`reduced_precision_scopes`), so the
  model code has one forward; ``onnx.utils.Extractor`` cuts the graph.
* ``export.json``: what was exported (checkpoint key, config, opset, the measured errors, the
  generator's stages with their inputs and outputs).

The graphs are exported from the fp32 prepared networks (:mod:`.prepare`: BatchNorm folded,
sub-pixel up blocks), so ONNX Runtime gets the same reduced FLOPs as the torch backend.
Exports are cached per checkpoint (file identity), config, opset and exporter code in
``<user models dir>/onnx/``, so the export runs once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import AvatarcamError
from ..paths import file_identity, user_models_dir
from .checkpoint import Networks
from .config import FOMMConfig
from .generator import EncodedSource, OcclusionAwareGenerator
from .motion import Keypoints
from .options import notify
from .precision import seeded_inputs
from .prepare import prepare_for_inference

OPSET = 17  # GridSample needs >= 16
EXPORT_VERSION = 2  # bump when the exported graphs change (2: the generator's precision stages)
STAGES = ("kp_detector", "source_encoder", "generator")
MANIFEST = "export.json"
GENERATOR_STAGES = "generator_stages"  # manifest key: [{"file", "reduced", "inputs", "outputs"}, ...]


class _Detector(nn.Module):
    """Plain-tensor entry point of the prepared keypoint detector."""

    def __init__(self, det: nn.Module) -> None:
        super().__init__()
        self.det = det

    def forward(self, image: torch.Tensor):
        kp = self.det(image)
        return (kp.value, kp.jacobian) if kp.jacobian is not None else (kp.value,)


class _Encoder(nn.Module):
    def __init__(self, gen: OcclusionAwareGenerator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, image: torch.Tensor):
        enc = self.gen.encode_source(image)
        return enc.features, enc.small


class _Decoder(nn.Module):
    def __init__(self, gen: OcclusionAwareGenerator, with_jacobian: bool) -> None:
        super().__init__()
        self.gen, self.with_jacobian = gen, with_jacobian

    def forward(self, features, small, value_source, *rest):
        if self.with_jacobian:
            jacobian_source, value_driving, jacobian_driving = rest
        else:
            (value_driving,), jacobian_source, jacobian_driving = rest, None, None
        return self.gen.decode_tensors(features, small, value_source, value_driving, jacobian_source, jacobian_driving)


def input_names(stage: str, with_jacobian: bool = True) -> list[str]:
    if stage == "generator":
        return (["features", "small", "value_source", "jacobian_source", "value_driving", "jacobian_driving"]
                if with_jacobian else ["features", "small", "value_source", "value_driving"])
    return ["image"]


def output_names(stage: str, with_jacobian: bool = True) -> list[str]:
    return {"kp_detector": ["value", "jacobian"] if with_jacobian else ["value"],
            "source_encoder": ["features", "small"], "generator": ["prediction"]}[stage]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


class ExportedStages:
    """detect / encode / decode over the exported graphs, for a runtime that implements
    ``run_stage(stage, feeds) -> outputs`` (numpy in, numpy out, in :func:`output_names` order).
    Results are CPU tensors; ``with_jacobian`` comes from the export's manifest."""

    with_jacobian: bool = True

    def _open_export(self, folder: str | os.PathLike) -> dict:
        """Read the export folder's manifest; sets ``folder`` and ``with_jacobian``, returns the manifest."""
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        self.with_jacobian = bool(manifest["config"].get("estimate_jacobian", True))
        return manifest

    def run_stage(self, stage: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def detect(self, image: torch.Tensor) -> Keypoints:
        return Keypoints.from_numpy(*self.run_stage("kp_detector", {"image": to_numpy(image)}))

    def encode(self, image: torch.Tensor) -> EncodedSource:
        features, small = self.run_stage("source_encoder", {"image": to_numpy(image)})
        return EncodedSource(torch.from_numpy(small), torch.from_numpy(features))

    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        """The graphs have static batch-1 shapes: a batch runs row by row."""
        names = input_names("generator", self.with_jacobian)
        rows = []
        for i in range(encoded.features.shape[0]):
            values = [encoded.features[i:i + 1], encoded.small[i:i + 1], kp_source.value[i:i + 1]]
            if self.with_jacobian:
                values += [kp_source.jacobian[i:i + 1], kp_driving.value[i:i + 1], kp_driving.jacobian[i:i + 1]]
            else:
                values += [kp_driving.value[i:i + 1]]
            (pred,) = self.run_stage("generator", {n: to_numpy(v) for n, v in zip(names, values, strict=True)})
            rows.append(torch.from_numpy(pred))
        return rows[0] if len(rows) == 1 else torch.cat(rows)  # no torch copy per frame (see _to_tensor)

    def render(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """The prediction for a source and a driving picture (the precision check and the speed race)."""
        return self.decode(self.encode(source), self.detect(source), self.detect(driving))


def read_manifest(folder: str | os.PathLike) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def _code_hash() -> str:
    """The exported graphs are traced from this code: a change to it invalidates cached exports."""
    h = hashlib.sha1()
    here = Path(__file__).resolve().parent
    for name in ("export.py", "prepare.py", "motion.py", "blocks.py", "generator.py", "dense_motion.py",
                 "keypoint_detector.py"):
        try:
            h.update((here / name).read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:12]


def checkpoint_key(path: str | os.PathLike, config: FOMMConfig, opset: int = OPSET) -> str:
    """Changes when the checkpoint file (path, size, mtime), the config or the exporter change."""
    identity = file_identity(path)
    if identity is None:
        raise AvatarcamError(f"{path}: cannot read the checkpoint to export it.")
    blob = json.dumps({"file": list(identity), "config": config.to_dict(),
                       "opset": opset, "version": EXPORT_VERSION, "code": _code_hash(),
                       "torch": torch.__version__.split("+")[0]},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def default_cache_dir(key: str, stem: str = "model") -> Path:
    return user_models_dir() / "onnx" / f"{stem}-{key}"


def is_complete(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    if not (folder / MANIFEST).is_file() or not all((folder / f"{s}.onnx").is_file() for s in STAGES):
        return False
    try:
        stages = read_manifest(folder)[GENERATOR_STAGES]
    except (OSError, ValueError, KeyError):
        return False  # an export from before the precision stages
    return all((folder / stage["file"]).is_file() for stage in stages)


def reduced_precision_scopes(gen: OcclusionAwareGenerator) -> list[tuple[str, ...]]:
    """The generator's largest sub-modules (as name paths) whose weights the preparation pass puts
    in the compute dtype: the conv stacks. Everything else in the per-frame graph decides where
    pixels go and stays fp32 (read off :func:`.prepare.prepare_for_inference`, not listed here)."""
    low = prepare_for_inference(gen, torch.bfloat16)
    scopes: list[tuple[str, ...]] = []

    def visit(module: nn.Module, path: tuple[str, ...]) -> None:
        tensors = [*module.parameters(), *module.buffers()]
        if tensors and all(t.dtype == torch.bfloat16 for t in tensors):
            scopes.append(path)
            return
        for name, child in module.named_children():
            visit(child, (*path, name))

    visit(low, ())
    return scopes


def _in_scopes(node_name: str, scopes: list[tuple[str, ...]]) -> bool:
    """Whether an exported node ("/bottleneck/r0/conv1/Conv", "/up_blocks.0/Relu") belongs to one of
    ``scopes``. The exporter joins called modules with "/" and a list's index with ".": both split."""
    parts = tuple(re.split(r"[/.]", node_name.strip("/")))[:-1]
    return any(parts[:len(scope)] == scope for scope in scopes)


def _stage_of_nodes(graph, scopes: list[tuple[str, ...]]) -> list[int]:
    """Each node's stage: even stages are geometry (fp32), odd ones conv stacks; a node goes to the
    first stage of its kind after every stage it reads from (Constant nodes and weights are free)."""
    made_in: dict[str, int] = {}
    stages = []
    for node in graph.node:
        kind = int(_in_scopes(node.name, scopes))
        after = max((made_in.get(name, -1) for name in node.input), default=-1)
        stage = -1 if node.op_type == "Constant" else max(after, 0) + (max(after, 0) % 2 != kind)
        stages.append(stage)
        made_in.update((name, stage) for name in node.output)
    return stages


def _example_inputs(config: FOMMConfig, gen: OcclusionAwareGenerator, det: nn.Module) -> dict[str, tuple]:
    src, drv = seeded_inputs(config.image_size)
    with torch.no_grad():
        enc = gen.encode_source(src)
        kp_s, kp_d = det(src), det(drv)
    dec = [enc.features, enc.small, kp_s.value]
    dec += [kp_s.jacobian, kp_d.value, kp_d.jacobian] if kp_s.jacobian is not None else [kp_d.value]
    return {"kp_detector": (drv,), "source_encoder": (src,), "generator": tuple(dec)}


def _export_stage(stage: str, module: nn.Module, example: tuple, path: Path, opset: int, with_jac: bool) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, str(path), opset_version=opset,
                          input_names=input_names(stage, with_jac), output_names=output_names(stage, with_jac),
                          do_constant_folding=True, dynamo=False)
    return {"file": path.name, "export_seconds": round(time.perf_counter() - t0, 2)}


def split_generator(path: Path, scopes: list[tuple[str, ...]]) -> list[dict]:
    """Cut ``generator.onnx`` into its precision stages (``generator.<i>.onnx`` beside it); returns
    their manifest entries in running order. Refuses a cut that would leave a convolution in a
    geometry stage or a GridSample in a conv stack (the exporter's names changed)."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))  # the cut tensors need their shapes
    graph = model.graph
    stage_of = _stage_of_nodes(graph, scopes)
    made_in = {name: stage for node, stage in zip(graph.node, stage_of, strict=True) for name in node.output}
    misplaced = [n.name for n, st in zip(graph.node, stage_of, strict=True)
                 if (n.op_type in ("Conv", "ConvTranspose") and st % 2 == 0) or (n.op_type == "GridSample" and st % 2)]
    if misplaced:
        raise AvatarcamError(f"{path}: cannot split the generator by precision ({misplaced[0]} is misplaced).")
    graph_inputs, graph_outputs = [i.name for i in graph.input], [o.name for o in graph.output]
    extractor, entries = Extractor(model), []
    for stage in range(max(stage_of) + 1):
        nodes = [n for n, st in zip(graph.node, stage_of, strict=True) if st == stage]
        read = {name for n in nodes for name in n.input if name}
        inputs = [name for name in graph_inputs if name in read]
        inputs += sorted(name for name in read if made_in.get(name, -1) not in (-1, stage) and name not in inputs)
        later = {name for n, st in zip(graph.node, stage_of, strict=True) if st > stage for name in n.input}
        outputs = sorted(name for n in nodes for name in n.output if name in later or name in graph_outputs)
        file = f"generator.{stage}.onnx"
        onnx.save(extractor.extract_model(inputs, outputs), str(path.parent / file))
        entries.append({"file": file, "reduced": bool(stage % 2), "inputs": inputs, "outputs": outputs})
    return entries


def export_onnx(networks: Networks, out_dir: str | os.PathLike, *, opset: int = OPSET, key: str = "",
                check: bool = True, progress: Callable[[str], None] | None = None, show_bar: bool = False) -> dict:
    """Export the three stages of the prepared fp32 networks into ``out_dir`` (written atomically)
    and check each against torch with ONNX Runtime on the CPU. Returns the manifest (with
    ``max_abs_error`` per stage)."""
    if opset < 16:
        raise AvatarcamError(f"opset {opset}: GridSample needs ONNX opset 16 or newer.")
    out_dir, config = Path(out_dir), networks.config
    det, gen = prepare_for_inference(networks.kp_detector), prepare_for_inference(networks.generator)
    with_jac = config.estimate_jacobian
    modules = {"kp_detector": _Detector(det), "source_encoder": _Encoder(gen), "generator": _Decoder(gen, with_jac)}
    examples = _example_inputs(config, gen, det)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    manifest: dict = {"key": key, "config": config.to_dict(), "opset": opset, "version": EXPORT_VERSION,
                      "stages": {}}
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=len(STAGES), desc="export-onnx", unit="stage", dynamic_ncols=True)
    try:
        for stage in STAGES:
            notify(progress, f"Exporting {stage} to ONNX (opset {opset})...")
            info = _export_stage(stage, modules[stage], examples[stage], tmp / f"{stage}.onnx", opset, with_jac)
            if check:
                info["max_abs_error"] = check_stage(tmp / info["file"], modules[stage], examples[stage], stage,
                                                    with_jac)
                message = f"{stage}: ONNX Runtime vs torch max abs error {info['max_abs_error']:.2e}"
                notify(progress, message)
                if bar:
                    bar.write(message)
            if bar:
                bar.update(1)
            manifest["stages"][stage] = info
        notify(progress, "Cutting the generator into fp32 geometry and conv-stack stages...")
        manifest[GENERATOR_STAGES] = split_generator(tmp / "generator.onnx", reduced_precision_scopes(gen))
        if check:
            manifest["generator_stages_max_abs_error"] = check_split(tmp, manifest[GENERATOR_STAGES],
                                                                     examples["generator"], with_jac)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar:
            bar.close()
    return manifest


def check_stage(path: Path, module: nn.Module, example: tuple, stage: str, with_jac: bool = True) -> float:
    """Max abs difference between ONNX Runtime (CPU) and torch fp32 on the example inputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(input_names(stage, with_jac), example, strict=True)}
    got = sess.run(None, feeds)
    with torch.no_grad():
        want = module(*example)
    want = want if isinstance(want, tuple) else (want,)
    return float(max(np.abs(g - w.numpy()).max() for g, w in zip(got, want, strict=True)))


def check_split(folder: Path, stages: list[dict], example: tuple, with_jac: bool = True) -> float:
    """Max abs difference between the chained precision stages and the whole generator graph (ONNX
    Runtime, CPU, fp32): the cut must not change what the graph computes."""
    import onnxruntime as ort

    def run(file: str, feeds: dict) -> dict:
        sess = ort.InferenceSession(str(folder / file), providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))

    made = {name: t.numpy() for name, t in zip(input_names("generator", with_jac), example, strict=True)}
    whole = run("generator.onnx", made)["prediction"]
    for stage in stages:
        made.update(run(stage["file"], {name: made[name] for name in stage["inputs"]}))
    return float(np.abs(made["prediction"] - whole).max())


def ensure_exported(networks: Networks, *, checkpoint: str | os.PathLike | None = None,
                    folder: str | os.PathLike | None = None, opset: int = OPSET,
                    progress: Callable[[str], None] | None = None) -> Path:
    """The export folder for this model (``folder``, or the cache keyed by the checkpoint file),
    exporting it first if it is not there yet."""
    if folder is None:
        if checkpoint is None:
            raise AvatarcamError("an ONNX export needs the checkpoint file or an export folder.")
        stem = Path(checkpoint).name.split(".")[0] or "model"
        folder = default_cache_dir(checkpoint_key(checkpoint, networks.config, opset), stem)
    folder = Path(folder)
    if not is_complete(folder):
        export_onnx(networks, folder, opset=opset, key=folder.name, progress=progress)
    return folder
