"""Settings of the real-time pipeline (camera in, avatar out)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PipelineConfig:
    """Everything :class:`~avatarcam.pipeline.Pipeline` needs; defaults suit a 640x480 webcam.

    ``camera``: a camera index as digits ("0"), a video file path or a stream URL.
    ``stabilize``: keypoint smoothing strength in [0, 1]; 0 turns it off.
    ``record``: an .mp4 path to record the output to while streaming, or None.
    """

    camera: str = "0"
    capture_size: tuple[int, int] = (640, 480)
    capture_fps: float = 30.0
    loop_video: bool = True
    checkpoint: str | None = None
    device: str = "auto"
    precision: str = "auto"
    avatar: str | None = None
    framing: str = "auto"  # "auto" (follow the face) | "manual" (fixed centred crop)
    detector: str = "auto"  # "auto" | "face-alignment" | "lbp"
    zoom: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)
    relative: bool = True
    adapt_scale: bool = True
    stabilize: float = 0.5
    vcam: bool = True
    vcam_size: tuple[int, int] = (640, 480)
    vcam_fps: float = 30.0
    vcam_backend: str | None = None
    mirror_output: bool = False
    record: str | None = None
    passthrough: bool = False
