"""# facade: the parts of the redesigned Pipeline facade (team BRIEF.md) that today's pipeline lacks.

The GUI calls only the facade. Each name here is marked with what replaces it; after the pipeline
branch is merged this module is deleted. Imported lazily (off the GUI thread): it pulls in torch.
"""

from __future__ import annotations

import os
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..paths import file_identity
from ..pipeline import Pipeline as _Pipeline
from ..pipeline import PipelineConfig
from ..pipeline.loading import load_animator as _load_animator
from ..settings import Settings


class Pipeline(_Pipeline):  # facade -> avatarcam.pipeline.Pipeline
    def zoom_crop(self, factor: float) -> None:  # facade -> Pipeline.zoom_crop
        self.framing.zoom_by(factor)

    def move_crop(self, dx: float, dy: float) -> None:  # facade -> Pipeline.move_crop
        self.framing.move(dx, dy)

    def reset_crop(self) -> None:  # facade -> Pipeline.reset_crop
        self.framing.reset()

    @property
    def crop_zoom(self) -> float:  # facade -> Pipeline.crop_zoom
        return self.framing.zoom

    @property
    def crop_offset(self) -> tuple[float, float]:  # facade -> Pipeline.crop_offset
        return self.framing.offset

    def set_relative(self, enabled: bool) -> None:  # facade -> Pipeline.set_relative
        self.animator.relative = bool(enabled)

    def set_adapt_scale(self, enabled: bool) -> None:  # facade -> Pipeline.set_adapt_scale
        self.animator.adapt_scale = bool(enabled)


def pipeline_config(settings: Settings, **changes: Any) -> PipelineConfig:
    """facade -> ``dataclasses.replace(settings.pipeline_config(), **changes)``."""
    shared = {f.name for f in fields(PipelineConfig)} & {f.name for f in fields(settings)}
    return replace(PipelineConfig(**{name: getattr(settings, name) for name in shared}), **changes)


def engine_key(path: Path, settings: Settings) -> tuple:
    """What a loaded model depends on. facade -> ``(file_identity(path), settings.engine_options())``."""
    return file_identity(path), settings.device, settings.precision


def load_animator(path: Path, settings: Settings, notice):
    """The model for live use (GPU failure -> CPU with a notice).
    facade -> ``pipeline.loading.load_animator(path, settings.engine_options(), notice=notice)``."""
    return _load_animator(path, settings.device, settings.precision, notice=notice)


def list_cameras(count: int = 5) -> list[int]:
    """facade -> ``avatarcam.pipeline.list_cameras(count)``: the camera indices that give a frame."""
    import cv2

    found = []
    for index in range(count):
        if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index}"):
            continue
        cap = cv2.VideoCapture(index)
        try:
            if cap.isOpened() and cap.read()[0]:
                found.append(index)
        finally:
            cap.release()
    return found
