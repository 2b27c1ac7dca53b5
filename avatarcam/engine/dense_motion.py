"""Dense motion network: turns K sparse keypoint motions into a dense flow and occlusion map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasDownsample, Hourglass, make_coordinate_grid
from .config import FOMMConfig
from .motion import Keypoints, inverse_2x2, kp_to_gaussian


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
        return self.down(source) if self.down is not None else source

    def sparse_motions(self, h: int, w: int, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
        """(B, K+1, H, W, 2): where each driving pixel comes from in the source, per motion."""
        value_s, value_d = kp_source["value"].float(), kp_driving["value"].float()
        b = value_s.shape[0]
        # fp32 even under autocast, where matmul/einsum would otherwise run in 16 bits
        with torch.autocast(value_s.device.type, enabled=False):
            identity = make_coordinate_grid(h, w, value_s.dtype, value_s.device)[None, None]
            grid = identity - value_d[:, :, None, None, :]
            if "jacobian" in kp_driving:
                jac = torch.matmul(kp_source["jacobian"].float(), inverse_2x2(kp_driving["jacobian"].float()))
                grid = torch.einsum("bkij,bkhwj->bkhwi", jac, grid)
            to_source = grid + value_s[:, :, None, None, :]
            return torch.cat([identity.expand(b, 1, h, w, 2), to_source], dim=1)

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints,
                source_small: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``source_small`` is the downsampled source, when the caller has cached it."""
        small = self.downsample(source) if source_small is None else source_small
        b, c, h, w = small.shape
        k1 = self.num_kp + 1
        heat = kp_to_gaussian(kp_driving["value"], h, w, self.kp_variance) - \
            kp_to_gaussian(kp_source["value"], h, w, self.kp_variance)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)
        motions = self.sparse_motions(h, w, kp_driving, kp_source)
        repeated = small.unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
        warped = F.grid_sample(repeated.float(), motions.reshape(b * k1, h, w, 2), align_corners=False)
        warped = warped.view(b, k1, c, h, w)
        features = torch.cat([heat.to(warped.dtype), warped], dim=2).view(b, -1, h, w)
        prediction = self.hourglass(features)
        mask = F.softmax(self.mask(prediction).float(), dim=1)
        deformation = (motions.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        out = {"sparse_deformed": warped, "mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction).float())
        return out
