"""Real-time pipeline: webcam frames in, animated avatar out (virtual camera, recording, preview)."""

from .capture import CaptureThread, Frame, OpenCVSource, open_source
from .config import PipelineConfig
from .framing import (
                      FaceAlignmentDetector,
                      FaceFramer,
                      FramingResult,
                      LBPDetector,
                      OneEuroFilter,
                      crop_portrait,
                      face_alignment_weights_cached,
                      make_detector,
)
from .outputs import FileSink, VirtualCameraSink, letterbox, vcam_fix_message
from .pipeline import Pipeline, PipelineStats, default_avatar, prepare_avatar_image
from .stabilizer import KeypointStabilizer
from .worker import FrameBundle, InferenceWorker, Timings

__all__ = [
    "CaptureThread", "Frame", "OpenCVSource", "open_source", "PipelineConfig", "FaceAlignmentDetector",
    "FaceFramer", "FramingResult", "LBPDetector", "OneEuroFilter", "crop_portrait",
    "face_alignment_weights_cached", "make_detector", "FileSink", "VirtualCameraSink", "letterbox",
    "vcam_fix_message", "Pipeline", "PipelineStats", "default_avatar", "prepare_avatar_image",
    "KeypointStabilizer", "FrameBundle", "InferenceWorker", "Timings",
]
