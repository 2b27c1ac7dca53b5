"""Dense motion network: turns K sparse keypoint motions into a dense flow and occlusion map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasDownsample, Hourglass, make_coordinate_grid
from .config import FOMMConfig
from .motion import Keypoints, inverse_2x2, kp_to_gaussian


@dataclass(frozen=True)
class MotionField:
    """The dense motion network's output, all fp32 at 1/4 resolution."""

    deformation: torch.Tensor  # (B,h,w,2) backward flow in grid_sample coordinates
    mask: torch.Tensor  # (B,K+1,h,w) soft assignment of pixels to the local motions
    sparse_deformed: torch.Tensor  # (B,K+1,3,h,w) the source warped by each local motion
    occlusion_map: torch.Tensor | None  # (B,1,h,w)


def sparse_motions(h: int, w: int, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
    """(B, K+1, H, W, 2) fp32: where each driving pixel comes from in the source, per motion
    (background identity first). The 2x2 products are written out: they export to ONNX as
    plain element-wise ops."""
    value_s, value_d = kp_source.value.float(), kp_driving.value.float()
    identity = make_coordinate_grid(h, w, torch.float32, value_s.device)[None, None]
    grid = identity - value_d[:, :, None, None, :]
    if kp_driving.jacobian is not None:
        jac = torch.matmul(kp_source.jacobian.float(), inverse_2x2(kp_driving.jacobian.float()))
        gx, gy, j = grid[..., 0], grid[..., 1], jac[:, :, None, None]
        grid = torch.stack([j[..., 0, 0] * gx + j[..., 0, 1] * gy, j[..., 1, 0] * gx + j[..., 1, 1] * gy], dim=-1)
    to_source = grid + value_s[:, :, None, None, :]
    return torch.cat([identity.expand(value_s.shape[0], 1, h, w, 2), to_source], dim=1)


class DenseMotionNetwork(nn.Module):
    """Predicts, at 1/4 resolution, a soft assignment of pixels to the K+1 local motions
    (background first), the resulting backward flow and an occlusion map."""

    def __init__(self, config: FOMMConfig) -> None:
        super().__init__()
        cfg = config.generator.dense_motion
        self.num_kp = config.num_kp
        self.kp_variance = cfg.kp_variance
        in_features = (config.num_kp + 1) * (config.num_channels + 1)
        self.hourglass = Hourglass(cfg.block_expansion, in_features, cfg.num_blocks, cfg.max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, config.num_kp + 1, kernel_size=7, padding=3)
        if config.generator.estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        else:
            self.occlusion = None
        self.down = AntiAliasDownsample(config.num_channels, cfg.scale_factor) if cfg.scale_factor != 1 else None

    def downsample(self, source: torch.Tensor) -> torch.Tensor:
        return self.down(source) if self.down is not None else source.float()

    def forward(self, small: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> MotionField:
        """``small``: the downsampled source (:meth:`downsample`), fp32. Everything that decides
        where pixels go stays fp32; only the hourglass runs in the prepared compute dtype."""
        b, c, h, w = small.shape
        k1 = self.num_kp + 1
        heat = kp_to_gaussian(kp_driving.value.float(), h, w, self.kp_variance) - \
            kp_to_gaussian(kp_source.value.float(), h, w, self.kp_variance)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)
        motions = sparse_motions(h, w, kp_driving, kp_source)
        repeated = small.unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
        warped = F.grid_sample(repeated, motions.reshape(b * k1, h, w, 2), align_corners=False)
        warped = warped.view(b, k1, c, h, w)
        prediction = self.hourglass(torch.cat([heat, warped], dim=2).view(b, -1, h, w))
        mask = F.softmax(self.mask(prediction).float(), dim=1)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)
        occlusion = torch.sigmoid(self.occlusion(prediction).float()) if self.occlusion is not None else None
        return MotionField(deformation, mask, warped, occlusion)
