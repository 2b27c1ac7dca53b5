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

    @classmethod
    def cat(cls, items: list[Keypoints]) -> Keypoints:
        """One batch from several (each item's batch rows in order)."""
        if len(items) == 1:
            return items[0]
        jac = None if items[0].jacobian is None else torch.cat([k.jacobian for k in items])
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
        if not self.adapt_scale:
            return 1.0
        src = hull_area(kp_source.value[0].detach().float().cpu().numpy())
        drv = hull_area(kp_neutral.value[0].detach().float().cpu().numpy())
        if src <= 0.0 or drv <= 0.0:  # degenerate keypoints: fall back to no adaptation
            return 1.0
        return float(np.sqrt(src) / np.sqrt(drv))

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
