"""How far a driving pose is from the avatar's pose.

Relative motion looks right only when the neutral driving frame has the avatar's pose, so both the
live match meter and ``animate --find-best-frame`` rank frames by a pose distance. Two measures:

- ``pose_distance``: the model's own 10 keypoints (+ jacobians), already computed for every frame;
  free, offline, camera rate.
- ``LandmarkPose``: face-alignment's 68 landmarks, as the authors' demo and Avatarify do; only when
  its weights are already cached (it never downloads from here).

Both normalise points the way the authors' ``find_best_frame`` does: centroid removed, divided by the
square root of the convex-hull area, so position and size in the picture do not count; rotation does.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import AvatarcamError
from .motion import Keypoints, face_size, hull_area

# Weight of the jacobian term against the position term in ``pose_distance``: a jacobian difference
# of one canonical unit (after dividing by the face size) counts as much as 0.1 face-widths of
# keypoint displacement; the jacobians carry the local rotation/squash the 10 points alone miss.
JACOBIAN_WEIGHT = 0.1
# ``match_percent`` = 100 * exp(-distance / MATCH_SCALE): 100 % for the same pose, 37 % at
# distance = MATCH_SCALE, ~5 % at 3 * MATCH_SCALE (see docs/pose.md for measured values).
MATCH_SCALE = 0.25


def normalise_points(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Points (N, 2) with the centroid removed and divided by their size; returns (points, size).

    The size is the square root of the convex-hull area (the authors' normalisation); for
    collinear points the RMS radius, and 1 for coincident ones, so the distance stays finite.
    """
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    size = face_size(pts)[0] or 1.0
    return (pts - pts.mean(axis=0, keepdims=True)) / size, size


def _rms(diff: np.ndarray) -> float:
    """Root-mean-square over the first axis of the per-row Euclidean norms."""
    return float(np.sqrt((diff.reshape(len(diff), -1) ** 2).sum(axis=1).mean()))


def landmark_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance between two normalised point sets of the same length (0 = same pose)."""
    pa, _ = normalise_points(a)
    pb, _ = normalise_points(b)
    return _rms(pa - pb)


def pose_distance(a: Keypoints, b: Keypoints) -> float:
    """Pose distance between the first batch rows of two keypoint sets (0 = same pose).

    RMS of the normalised keypoint positions plus ``JACOBIAN_WEIGHT`` times the RMS of the
    jacobians divided by the face size (a face twice as large has jacobians twice as large).
    """
    va = a.value[0].detach().float().cpu().numpy()
    vb = b.value[0].detach().float().cpu().numpy()
    pa, size_a = normalise_points(va)
    pb, size_b = normalise_points(vb)
    distance = _rms(pa - pb)
    if a.jacobian is not None and b.jacobian is not None:
        ja = a.jacobian[0].detach().double().cpu().numpy() / size_a
        jb = b.jacobian[0].detach().double().cpu().numpy() / size_b
        distance += JACOBIAN_WEIGHT * _rms(ja - jb)
    return distance if math.isfinite(distance) else math.inf


def match_percent(distance: float) -> float:
    """0..100, monotone decreasing in the distance: 100 * exp(-distance / MATCH_SCALE); 0 for inf/NaN."""
    if not math.isfinite(distance):
        return 0.0
    return 100.0 * math.exp(-max(0.0, float(distance)) / MATCH_SCALE)


class LandmarkPoseUnavailable(AvatarcamError):
    """face-alignment or its weights are not on this machine."""


class LandmarkPose:
    """Pose distance from face-alignment's 68 2-D landmarks (the authors' find_best_frame measure).

    Usable only when the package is installed and its weights (face detector + 2DFAN-4) are already
    in torch's hub cache; avatarcam never downloads them implicitly.
    """

    def __init__(self, device: str = "cpu") -> None:
        if not self.available():
            missing = ", ".join(str(p) for p in self.weight_files() if not p.exists()) or "face-alignment"
            raise LandmarkPoseUnavailable(
                f"Landmark pose needs face-alignment and its weights ({missing}); "
                "install face-alignment and run it once online, or use the keypoint pose distance.")
        import face_alignment

        self._fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=device, flip_input=False, compile=False)

    @staticmethod
    def weight_files() -> list[Path]:
        """Where face-alignment looks for its weights (torch hub cache, file name = URL basename)."""
        if importlib.util.find_spec("face_alignment") is None:
            return []
        from face_alignment.api import models_urls as fan_urls
        from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls

        folder = Path(torch.hub.get_dir()) / "checkpoints"
        return [folder / url.rsplit("/", 1)[-1] for url in (sfd_urls["s3fd"], fan_urls["2DFAN-4"])]

    @classmethod
    def available(cls) -> bool:
        """True when face-alignment is installed and its weights are cached (no download needed)."""
        files = cls.weight_files()
        return bool(files) and all(p.is_file() for p in files)

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(68, 2) landmarks of the largest face in an HxWx3 RGB image, or None when no face is found."""
        faces = self._fa.get_landmarks_from_image(np.ascontiguousarray(image))
        if not faces:
            return None
        return max(faces, key=lambda pts: hull_area(pts[:, :2]))[:, :2]

    def distance(self, image_a: np.ndarray, image_b: np.ndarray) -> float:
        """Landmark pose distance between the faces in two images (inf when either has no face)."""
        la, lb = self.landmarks(image_a), self.landmarks(image_b)
        if la is None or lb is None:
            return math.inf
        return landmark_distance(la, lb)
