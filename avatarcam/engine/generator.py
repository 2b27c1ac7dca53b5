"""Occlusion-aware generator: encode the source, warp its features by the dense motion,
mask occluded parts, decode."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from .config import FOMMConfig
from .dense_motion import DenseMotionNetwork
from .motion import Keypoints


@dataclass
class EncodedSource:
    """Everything the generator computes from the source image alone.

    It depends only on the avatar, so the Animator computes it once per avatar instead of
    once per frame (about a fifth of the generator's work).
    """

    image: torch.Tensor  # (B,3,H,W)
    small: torch.Tensor  # (B,3,H/4,W/4), the dense motion network's input
    features: torch.Tensor  # (B,C,H/4,W/4), output of `first` + down blocks


def warp(x: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Backward-warp x by a (B,h,w,2) flow in grid_sample coordinates, resizing the flow if needed."""
    _, h_flow, w_flow, _ = deformation.shape
    _, _, h, w = x.shape
    if (h_flow, w_flow) != (h, w):
        deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                    align_corners=False).permute(0, 2, 3, 1)
    # Sampling positions must not be rounded to 16 bits (bf16 spacing near 1.0 is 1/128 of the
    # image): under autocast the flow and the sampling stay fp32, the result takes x's dtype.
    return F.grid_sample(x.float(), deformation.float(), align_corners=False).to(x.dtype)


class OcclusionAwareGenerator(nn.Module):
    """``generator(source, kp_source=..., kp_driving=...)`` -> {"prediction", "mask",
    "occlusion_map", "deformation", "sparse_deformed", "deformed"}."""

    def __init__(self, config: FOMMConfig) -> None:
        super().__init__()
        cfg = config.generator
        be, mf, n_down = cfg.block_expansion, cfg.max_features, cfg.num_down_blocks
        self.dense_motion_network = DenseMotionNetwork(config)
        self.first = SameBlock2d(config.num_channels, be, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(mf, be * 2**i), min(mf, be * 2 ** (i + 1))) for i in range(n_down)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(min(mf, be * 2 ** (n_down - i)), min(mf, be * 2 ** (n_down - i - 1))) for i in range(n_down)
        )
        width = min(mf, be * 2**n_down)
        self.bottleneck = nn.Sequential()
        for i in range(cfg.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width))
        self.final = nn.Conv2d(be, config.num_channels, kernel_size=7, padding=3)

    def encode_source(self, source: torch.Tensor) -> EncodedSource:
        features = self.first(source)
        for block in self.down_blocks:
            features = block(features)
        return EncodedSource(source, self.dense_motion_network.downsample(source), features)

    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints,
               with_deformed: bool = True) -> dict[str, torch.Tensor]:
        """Everything that depends on the driving keypoints. ``with_deformed=False`` skips the
        full-resolution warped source, a diagnostic the prediction does not need."""
        motion = self.dense_motion_network(encoded.image, kp_driving, kp_source, source_small=encoded.small)
        out = warp(encoded.features, motion["deformation"])
        result = dict(motion)
        if "occlusion_map" in motion:
            occlusion = motion["occlusion_map"]
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion.to(out.dtype)
        if with_deformed:
            result["deformed"] = warp(encoded.image, motion["deformation"])
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        result["prediction"] = torch.sigmoid(self.final(out).float())
        return result

    def forward(self, source: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> dict[str, torch.Tensor]:
        return self.decode(self.encode_source(source), kp_source, kp_driving)
