"""Occlusion-aware generator: encode the source, warp its features by the dense motion,
mask occluded parts, decode."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, cast_like
from .config import FOMMConfig
from .dense_motion import DenseMotionNetwork, MotionField
from .motion import Keypoints


@dataclass(frozen=True)
class EncodedSource:
    """Everything the generator computes from the source image alone (fp32).

    It depends only on the avatar, so the Animator computes it once per avatar instead of
    once per frame (about a fifth of the generator's work).
    """

    small: torch.Tensor  # (B,3,H/4,W/4), the dense motion network's input
    features: torch.Tensor  # (B,C,H/4,W/4), output of `first` + down blocks
    image: torch.Tensor | None = None  # (B,3,H,W), only for the diagnostic `deformed` output

    @staticmethod
    def cat(items: list[EncodedSource]) -> EncodedSource:
        if len(items) == 1:
            return items[0]
        return EncodedSource(torch.cat([e.small for e in items]), torch.cat([e.features for e in items]))


@dataclass(frozen=True)
class GeneratorOutput:
    prediction: torch.Tensor  # (B,3,H,W) fp32 in [0,1]
    motion: MotionField
    deformed: torch.Tensor | None = None  # (B,3,H,W) the source warped by the flow (diagnostic)


def warp(x: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Backward-warp x by a (B,h,w,2) flow in grid_sample coordinates, resizing the flow if needed.
    fp32: sampling positions must not be rounded to 16 bits (bf16 spacing near 1.0 is 1/128)."""
    _, h_flow, w_flow, _ = deformation.shape
    _, _, h, w = x.shape
    if (h_flow, w_flow) != (h, w):
        deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                    align_corners=False).permute(0, 2, 3, 1)
    return F.grid_sample(x.float(), deformation.float(), align_corners=False)


class OcclusionAwareGenerator(nn.Module):
    """``generator(source, kp_source=..., kp_driving=...)`` -> GeneratorOutput (the authors' forward)."""

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

    def encode_source(self, source: torch.Tensor, keep_image: bool = False) -> EncodedSource:
        features = self.first(cast_like(source, self.first.conv.weight))
        for block in self.down_blocks:
            features = block(features)
        small = self.dense_motion_network.downsample(source)
        return EncodedSource(small, features.float().contiguous(), source.float() if keep_image else None)

    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> GeneratorOutput:
        """Everything that depends on the driving keypoints: dense motion, warp, occlusion, decoder."""
        motion = self.dense_motion_network(encoded.small, kp_driving, kp_source)
        out = warp(encoded.features, motion.deformation)
        if motion.occlusion_map is not None:
            occlusion = motion.occlusion_map
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion
        out = self.bottleneck(cast_like(out, self.final.weight))
        for block in self.up_blocks:
            out = block(out)
        prediction = torch.sigmoid(self.final(out).float())
        deformed = warp(encoded.image, motion.deformation) if encoded.image is not None else None
        return GeneratorOutput(prediction, motion, deformed)

    def decode_tensors(self, features: torch.Tensor, small: torch.Tensor, value_source: torch.Tensor,
                       value_driving: torch.Tensor, jacobian_source: torch.Tensor | None = None,
                       jacobian_driving: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`decode` with plain tensors in and the prediction out: what ONNX exports,
        ``torch.compile`` compiles and CUDA graphs capture."""
        encoded = EncodedSource(small, features)
        kp_s, kp_d = Keypoints(value_source, jacobian_source), Keypoints(value_driving, jacobian_driving)
        return self.decode(encoded, kp_s, kp_d).prediction

    def forward(self, source: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> GeneratorOutput:
        return self.decode(self.encode_source(source, keep_image=True), kp_source, kp_driving)
