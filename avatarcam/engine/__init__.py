"""First Order Motion Model inference engine.

Names are imported on first use, so that light parts (``engine.options``, ``engine.sniff``) can be
used by settings, the CLI and the downloader without importing torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "AnimateJob": "animator", "Animator": "animator", "PreparedSource": "animator",
    "AnimatorProtocol": "protocols", "Calibration": "neutral", "MatchReading": "neutral", "NeutralPose": "neutral",
    "best_frame": "neutral", "make_calibration": "neutral",
    "Networks": "checkpoint", "load_networks": "checkpoint", "read_checkpoint": "checkpoint",
    "sniff_header": "sniff", "DenseMotionConfig": "config", "FOMMConfig": "config", "GeneratorConfig": "config",
    "KeypointDetectorConfig": "config", "OcclusionAwareGenerator": "generator", "KeypointDetector": "keypoint_detector",
    "Keypoints": "motion", "RelativeMotion": "motion", "normalize_kp": "motion", "BACKENDS": "options",
    "DEVICES": "options", "PRECISIONS": "options", "PSNR_BAR_DB": "options", "EngineOptions": "options",
    "pose_distance": "pose", "match_percent": "pose", "landmark_distance": "pose", "LandmarkPose": "pose",
    "LandmarkPoseUnavailable": "pose",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
