"""First Order Motion Model inference engine."""

from .animator import Animator, PreparedSource
from .checkpoint import load_module_weights, read_checkpoint
from .config import DenseMotionConfig, FOMMConfig, GeneratorConfig, KeypointDetectorConfig
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector
from .motion import RelativeMotion, normalize_kp
from .synthetic import synthetic_state_dicts, write_synthetic_checkpoint

__all__ = [
    "Animator", "PreparedSource", "DenseMotionConfig", "FOMMConfig", "GeneratorConfig",
    "KeypointDetectorConfig", "KeypointDetector", "OcclusionAwareGenerator", "RelativeMotion",
    "normalize_kp", "read_checkpoint", "load_module_weights", "synthetic_state_dicts",
    "write_synthetic_checkpoint",
]
