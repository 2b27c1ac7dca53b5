"""Keypoints and their motion math: Gaussian heatmaps, 2x2 inverses and relative motion transfer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError

from .blocks import make_coordinate_grid


@dataclass(frozen=True)
class Keypoints:
    """K keypoints per image: positions in [-1, 1] and, when the model estimates them, local jacobians."""

    value: torch.Tensor  # (B,K,2) fp32
    jacobian: torch.Tensor | None = None  # (B,K,2,2) fp32

    def to(self, device: torch.device | str) -> Keypoints:
        jac = self.jacobian.to(device) if self.jacobian is not None else None
        return Keypoints(self.value.to(device), jac)

    def numpy(self) -> dict[str, np.ndarray]:
        out = {"value": self.value.detach().float().cpu().numpy()}
        if self.jacobian is not None:
            out["jacobian"] = self.jacobian.detach().float().cpu().numpy()
        return out

    @classmethod
    def from_numpy(cls, value: np.ndarray, jacobian: np.ndarray | None = None,
                   device: torch.device | str = "cpu") -> Keypoints:
        jac = torch.as_tensor(np.asarray(jacobian, np.float32), device=device) if jacobian is not None else None
        return cls(torch.as_tensor(np.asarray(value, np.float32), device=device), jac)

    @property
    def has_jacobian(self) -> bool:
        return self.jacobian is not None

    @classmethod
    def cat(cls, items: list[Keypoints]) -> Keypoints:
        """One batch from several (each item's batch rows in order). All items must agree on having
        jacobians: a batch cannot hold both kinds (ValueError), since dropping or inventing one item's
        jacobians would change that item's picture."""
        if len(items) == 1:
            return items[0]
        kinds = {k.has_jacobian for k in items}
        if len(kinds) > 1:
            raise ValueError("Keypoints.cat: some items have jacobians and some do not; batch them separately")
        jac = torch.cat([k.jacobian for k in items]) if kinds == {True} else None
        return cls(torch.cat([k.value for k in items]), jac)


def inverse_2x2(m: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of (..., 2, 2) matrices.

    Replaces ``torch.inverse``: it exports to ONNX, runs in any dtype and avoids the batched
    LU kernels that fail on some CUDA setups.
    """
    a, b = m[..., 0, 0], m[..., 0, 1]
    c, d = m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    row0 = torch.stack([d, -b], dim=-1)
    row1 = torch.stack([-c, a], dim=-1)
    return torch.stack([row0, row1], dim=-2) / det[..., None, None]


def kp_to_gaussian(values: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Isotropic Gaussians (B, K, H, W) centred on keypoints (B, K, 2)."""
    grid = make_coordinate_grid(height, width, values.dtype, values.device)
    diff = grid[None, None] - values[:, :, None, None, :]
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (0 for degenerate sets)."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        return 0.0
    try:
        return float(ConvexHull(pts).volume)  # in 2-D "volume" is the area
    except QhullError:  # collinear or coincident points
        return 0.0


# A neutral jacobian whose singular values differ by more than this factor is treated as singular:
# relative motion multiplies by its inverse, which would blow the driving jacobians up (or to inf).
MAX_NEUTRAL_CONDITION = 1e3
# Keypoints whose hull area is below this fraction of their mean squared radius are collinear:
# the area cannot measure the face size.
MIN_HULL_FRACTION = 1e-3


def rms_radius(points: np.ndarray) -> float:
    """Root-mean-square distance of 2-D points from their centroid (a size for collinear sets)."""
    pts = np.asarray(points, dtype=np.float64)
    return float(np.sqrt(((pts - pts.mean(axis=0)) ** 2).sum(axis=1).mean()))


def face_size(points: np.ndarray) -> tuple[float, bool]:
    """(size, from_hull): sqrt of the convex-hull area, or the RMS radius when the points are collinear."""
    radius = rms_radius(points)
    area = hull_area(points)
    if area > MIN_HULL_FRACTION * radius**2 and area > 0.0:
        return float(np.sqrt(area)), True
    return radius, False


def singular_jacobians(jacobian: torch.Tensor) -> list[int]:
    """Indices of the (K,2,2) jacobians that cannot be inverted reliably (or are not finite)."""
    jac = jacobian.detach().double().cpu()
    finite = torch.isfinite(jac).flatten(1).all(dim=1)
    sv = torch.linalg.svdvals(torch.where(finite[:, None, None], jac, torch.zeros_like(jac)))
    bad = ~finite | (sv[:, 1] * MAX_NEUTRAL_CONDITION <= sv[:, 0]) | (sv[:, 0] == 0)
    return [int(i) for i in torch.nonzero(bad).flatten()]


@dataclass
class RelativeMotion:
    """Transfers driving motion onto the source relative to a neutral driving pose.

    The avatar follows how the face *moved* since calibration rather than copying the
    driving face's absolute keypoints, so a face of another shape still animates well.
    """

    relative: bool = True
    adapt_scale: bool = True
    relative_jacobian: bool = True

    def movement_scale(self, kp_source: Keypoints, kp_neutral: Keypoints) -> float:
        return self.scale_with_notice(kp_source, kp_neutral)[0]

    def scale_with_notice(self, kp_source: Keypoints, kp_neutral: Keypoints) -> tuple[float, str | None]:
        """sqrt(hull area source / hull area neutral), the authors' adaptation; collinear keypoints
        use the ratio of RMS radii instead, and say so."""
        if not self.adapt_scale:
            return 1.0, None
        src, src_hull = face_size(kp_source.value[0].detach().float().cpu().numpy())
        drv, drv_hull = face_size(kp_neutral.value[0].detach().float().cpu().numpy())
        if src <= 0.0 or drv <= 0.0:
            return 1.0, "calibration: the avatar's or neutral pose's keypoints coincide; scale not adapted (1.0)"
        if src_hull and drv_hull:
            return src / drv, None
        return src / drv, ("calibration: the avatar's or neutral pose's keypoints are collinear; movement scale "
                           "taken from their spread instead of their area")

    def calibration(self, kp_source: Keypoints, kp_neutral: Keypoints) -> tuple[Keypoints, float, list[str]]:
        """(neutral, scale, notices): the neutral pose and movement scale that relative motion will
        use, repaired where they cannot be used as they are; each repair adds a one-line notice.
        A singular neutral jacobian is replaced by the source's own, so that keypoint follows the
        driving jacobian directly (as with ``relative_jacobian=False``) instead of turning into inf/NaN."""
        notices = []
        neutral = kp_neutral
        if self.relative and self.relative_jacobian and neutral.jacobian is not None:
            bad = singular_jacobians(neutral.jacobian[0])
            if bad:
                jac = neutral.jacobian.clone()
                jac[:, bad] = kp_source.jacobian[:1, bad].to(jac.device, jac.dtype)
                neutral = Keypoints(neutral.value, jac)
                notices.append(f"neutral pose: keypoint jacobian(s) {', '.join(map(str, bad))} are singular; "
                               "those keypoints follow the driving jacobian directly")
        scale, notice = self.scale_with_notice(kp_source, neutral) if self.relative else (1.0, None)
        return neutral, scale, notices + ([notice] if notice else [])

    def apply(self, kp_source: Keypoints, kp_driving: Keypoints, kp_neutral: Keypoints,
              scale: float) -> Keypoints:
        if not self.relative:
            return kp_driving
        value = (kp_driving.value - kp_neutral.value) * scale + kp_source.value
        jacobian = kp_driving.jacobian
        if self.relative_jacobian and jacobian is not None:
            change = torch.matmul(jacobian, inverse_2x2(kp_neutral.jacobian))
            jacobian = torch.matmul(change, kp_source.jacobian)
        return Keypoints(value, jacobian)


def normalize_kp(kp_source: Keypoints, kp_driving: Keypoints, kp_driving_initial: Keypoints,
                 adapt_movement_scale: bool = False, use_relative_movement: bool = False,
                 use_relative_jacobian: bool = False) -> Keypoints:
    """The authors' ``normalize_kp`` signature, for code written against their demo."""
    motion = RelativeMotion(use_relative_movement, adapt_movement_scale, use_relative_jacobian)
    scale = motion.movement_scale(kp_source, kp_driving_initial)
    return motion.apply(kp_source, kp_driving, kp_driving_initial, scale)
