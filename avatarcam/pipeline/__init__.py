"""Real-time pipeline: webcam frames in, animated avatar out (virtual camera, recording, preview).

The GUI and the CLI use ``Pipeline`` and the names below; the modules' other names are internals."""

from .avatars import Avatar, add_avatar, default_avatar, list_avatars, load_avatar, prepare_avatar_image
from .capture import list_cameras, probe_camera
from .config import PipelineConfig
from .crop import crop_portrait
from .detectors import LBPDetector, face_alignment_weights_cached, face_alignment_weights_dir, make_detector
from .outputs import FileSink, vcam_fix_message
from .pictures import letterbox
from .pipeline import Pipeline, PipelineStats
from .worker import FrameBundle

__all__ = [
    "Avatar", "add_avatar", "default_avatar", "list_avatars", "load_avatar", "prepare_avatar_image", "list_cameras",
    "probe_camera", "PipelineConfig", "crop_portrait", "LBPDetector", "face_alignment_weights_cached",
    "face_alignment_weights_dir", "make_detector", "FileSink", "letterbox", "vcam_fix_message", "Pipeline",
    "PipelineStats", "FrameBundle",
]
