"""Unsupervised keypoint detector: an hourglass that predicts K heatmaps and local jacobians."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasDownsample, Hourglass, make_coordinate_grid
from .config import FOMMConfig


class KeypointDetector(nn.Module):
    """image (B,3,H,W) in [0,1] -> {"value": (B,K,2) in [-1,1], "jacobian": (B,K,2,2)}."""

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

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.down is not None:
            x = self.down(x)
        features = self.predictor(x)
        logits = self.kp(features)
        b, k, h, w = logits.shape
        # Softmax and the expectations run in fp32 even under autocast: they decide where
        # the keypoints are, and fp16 rounding there shows up as jitter.
        heatmap = F.softmax(logits.float().view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid(h, w, torch.float32, x.device)
        out = {"value": (heatmap[..., None] * grid).sum(dim=(2, 3))}
        if self.jacobian is not None:
            maps = self.jacobian(features).float().view(b, self.num_jacobian_maps, 4, h, w)
            jac = (heatmap[:, :, None] * maps).view(b, k, 4, -1).sum(dim=-1)
            out["jacobian"] = jac.view(b, k, 2, 2)
        return out
