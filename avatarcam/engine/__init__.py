"""First Order Motion Model inference engine."""

from .animator import AnimateJob, Animator, Calibration, PreparedSource
from .checkpoint import Networks, load_networks, read_checkpoint, sniff_header
from .config import DenseMotionConfig, FOMMConfig, GeneratorConfig, KeypointDetectorConfig
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector
from .motion import Keypoints, RelativeMotion, normalize_kp
from .options import BACKENDS, DEVICES, PRECISIONS, PSNR_BAR_DB, EngineOptions

__all__ = [
    "AnimateJob", "Animator", "Calibration", "PreparedSource", "Networks", "load_networks", "read_checkpoint",
    "sniff_header", "DenseMotionConfig", "FOMMConfig", "GeneratorConfig", "KeypointDetectorConfig",
    "OcclusionAwareGenerator", "KeypointDetector", "Keypoints", "RelativeMotion", "normalize_kp", "BACKENDS",
    "DEVICES", "PRECISIONS", "PSNR_BAR_DB", "EngineOptions",
]
