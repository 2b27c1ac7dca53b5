"""Unsupervised keypoint detector: an hourglass that predicts K heatmaps and local jacobians."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasDownsample, Hourglass, make_coordinate_grid
from .config import FOMMConfig
from .motion import Keypoints


class KeypointDetector(nn.Module):
    """image (B,3,H,W) in [0,1] -> Keypoints(value (B,K,2) in [-1,1], jacobian (B,K,2,2) | None)."""

    def __init__(self, config: FOMMConfig) -> None:
        super().__init__()
        cfg = config.kp_detector
        self.num_kp = config.num_kp
        self.temperature = cfg.temperature
        self.predictor = Hourglass(cfg.block_expansion, config.num_channels, cfg.num_blocks, cfg.max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, config.num_kp, kernel_size=7, padding=cfg.pad)
        if config.estimate_jacobian:
            self.num_jacobian_maps = 1 if cfg.single_jacobian_map else config.num_kp
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps,
                                      kernel_size=7, padding=cfg.pad)
            # Identity jacobians until trained; a loaded checkpoint overwrites this.
            self.jacobian.weight.data.zero_()
            self.jacobian.bias.data.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        else:
            self.jacobian = None
        self.down = AntiAliasDownsample(config.num_channels, cfg.scale_factor) if cfg.scale_factor != 1 else None

    def forward(self, x: torch.Tensor) -> Keypoints:
        if self.down is not None:
            x = self.down(x)
        features = self.predictor(x)
        # Softmax and the expectations run in fp32 whatever the convolutions run in: they decide
        # where the keypoints are, and 16-bit rounding there shows up as jitter.
        logits = self.kp(features).float()
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.reshape(b, k, h * w) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid(h, w, torch.float32, x.device)
        value = (heatmap[..., None] * grid).sum(dim=(2, 3))
        if self.jacobian is None:
            return Keypoints(value)
        maps = self.jacobian(features).float().reshape(b, self.num_jacobian_maps, 4, h, w)
        jac = (heatmap[:, :, None] * maps).reshape(b, k, 4, h * w).sum(dim=-1)
        return Keypoints(value, jac.view(b, k, 2, 2))
