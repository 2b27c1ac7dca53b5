"""Each field says once, in its declaration, whether a change applies live or restarts the pipeline;
the CLI options are built from the same declarations (no hand copies of field lists)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from avatarcam.cli import build_parser
from avatarcam.commands.run import _config
from avatarcam.pipeline import Pipeline
from avatarcam.pipeline.config import LIVE, RESTART, PipelineConfig, declare
from avatarcam.settings import Settings

# a value other than the default for each kind of flagged field
OTHER = {"camera": ("clip.mp4", "clip.mp4"), "capture_size": ("1280x720", (1280, 720)),
         "capture_fps": ("24", 24.0), "loop_video": (None, False), "checkpoint": ("m.pth", "m.pth"),
         "device": ("cpu", "cpu"), "precision": ("bf16", "bf16"), "backend": ("onnx", "onnx"),
         "avatar": ("me.png", "me.png"), "framing": ("manual", "manual"), "detector": ("lbp", "lbp"),
         "stabilize": ("0.2", 0.2), "mirror_output": (None, True), "record": ("out.mp4", "out.mp4"),
         "passthrough": (None, True), "max_frames": ("7", 7), "ai_label": (None, False),
         "vcam_size": ("1920x1080", (1920, 1080)), "output_layout": ("fit", "fit"), "avatar_detail": (None, True)}


def test_every_field_declares_once_whether_it_applies_live_or_restarts():
    undeclared = [spec.name for spec in fields(Settings) if spec.metadata.get("apply") not in (LIVE, RESTART)]
    assert undeclared == []
    where = {spec.name: spec.metadata["apply"] for spec in fields(Settings)}
    assert where["model_on"] == where["remote_url"] == where["remote_token"] == RESTART  # chosen at start
    with pytest.raises(ValueError):
        declare("later")


def test_every_live_pipeline_field_has_a_public_setter_or_crop_control():
    live = {spec.name for spec in fields(PipelineConfig) if spec.metadata["apply"] == LIVE}
    by_crop = {"zoom": "zoom_crop", "offset": "move_crop", "vcam": "set_vcam_enabled", "framing": "set_framing_mode"}
    for name in live:
        assert callable(getattr(Pipeline, by_crop.get(name, f"set_{name}"), None)), name


def test_every_flagged_field_is_a_run_option_and_reaches_the_config():
    parser = build_parser()
    flagged = [spec for spec in fields(PipelineConfig) if spec.metadata.get("flag")]
    assert {spec.name for spec in flagged} - {"vcam", "vcam_fps"} == set(OTHER)
    for spec in flagged:
        if spec.name not in OTHER:
            continue  # vcam is opened by the command itself; vcam_fps shares --fps
        text, value = OTHER[spec.name]
        flag = spec.metadata["flag"]
        argv = [flag, text] if text is not None else [flag if not spec.default else "--no-" + flag[2:]]
        config = _config(parser.parse_args(["run", *argv]))
        assert getattr(config, spec.name) == value, flag
    shared = _config(parser.parse_args(["run", "--size", "320x240", "--fps", "15"]))
    assert shared.capture_size == (320, 240) and shared.vcam_size == (1280, 720)  # the output keeps its own size
    assert shared.capture_fps == shared.vcam_fps == 15.0
    assert _config(parser.parse_args(["run", "--no-stabilize"])).stabilize == 0.0
    assert parser.parse_args(["run", "--no-vcam"]).vcam is False
