"""Real-time pipeline: webcam frames in, animated avatar out (virtual camera, recording, preview)."""

from .avatars import Avatar, add_avatar, crop_face, default_avatar, list_avatars, load_avatar, prepare_avatar_image
from .capture import CaptureThread, Frame, OpenCVSource, list_cameras, open_source, probe_camera
from .config import PipelineConfig
from .crop import crop_portrait
from .detectors import (
    FaceAlignmentDetector,
    LBPDetector,
    face_alignment_weights_cached,
    face_alignment_weights_dir,
    make_detector,
)
from .filters import OneEuroFilter
from .framing import FaceFramer, FramingResult
from .outputs import FileSink, VirtualCameraSink, letterbox, vcam_fix_message
from .pipeline import Pipeline, PipelineStats
from .stabilizer import KeypointStabilizer
from .worker import FrameBundle, InferenceWorker, Timings

__all__ = [
    "Avatar", "add_avatar", "crop_face", "default_avatar", "list_avatars", "load_avatar", "prepare_avatar_image",
    "CaptureThread", "Frame", "OpenCVSource", "list_cameras", "open_source", "probe_camera", "PipelineConfig",
    "crop_portrait", "FaceAlignmentDetector", "LBPDetector", "face_alignment_weights_cached",
    "face_alignment_weights_dir", "make_detector", "OneEuroFilter", "FaceFramer", "FramingResult", "FileSink",
    "VirtualCameraSink", "letterbox", "vcam_fix_message", "Pipeline", "PipelineStats", "KeypointStabilizer",
    "FrameBundle", "InferenceWorker", "Timings",
]
