"""Keypoint motion math: Gaussian heatmaps, 2x2 inverses and relative motion transfer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .blocks import make_coordinate_grid

Keypoints = dict[str, torch.Tensor]  # {"value": (B,K,2), "jacobian": (B,K,2,2)}


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
    """Area of the convex hull of 2-D points, in float64 (monotone chain + shoelace)."""
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1])
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


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
        src = hull_area(kp_source["value"][0].detach().float().cpu().numpy())
        drv = hull_area(kp_neutral["value"][0].detach().float().cpu().numpy())
        if src <= 0.0 or drv <= 0.0:  # degenerate keypoints: fall back to no adaptation
            return 1.0
        return float(np.sqrt(src) / np.sqrt(drv))

    def apply(self, kp_source: Keypoints, kp_driving: Keypoints, kp_neutral: Keypoints,
              scale: float) -> Keypoints:
        if not self.relative:
            return dict(kp_driving)
        out = dict(kp_driving)
        out["value"] = (kp_driving["value"] - kp_neutral["value"]) * scale + kp_source["value"]
        if self.relative_jacobian and "jacobian" in kp_driving:
            change = torch.matmul(kp_driving["jacobian"], inverse_2x2(kp_neutral["jacobian"]))
            out["jacobian"] = torch.matmul(change, kp_source["jacobian"])
        return out


def normalize_kp(kp_source: Keypoints, kp_driving: Keypoints, kp_driving_initial: Keypoints,
                 adapt_movement_scale: bool = False, use_relative_movement: bool = False,
                 use_relative_jacobian: bool = False) -> Keypoints:
    """The authors' ``normalize_kp`` signature, for code written against their demo."""
    motion = RelativeMotion(use_relative_movement, adapt_movement_scale, use_relative_jacobian)
    scale = motion.movement_scale(kp_source, kp_driving_initial)
    return motion.apply(kp_source, kp_driving, kp_driving_initial, scale)
