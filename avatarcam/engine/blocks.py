"""Building blocks shared by the keypoint detector, dense motion network and generator.

Module and attribute names follow the authors' code so that ``state_dict()`` keys match the
published checkpoint exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """(H, W, 2) grid of (x, y) in [-1, 1], with -1 and 1 at the first and last pixel centres.

    This is *not* the convention of ``grid_sample(align_corners=False)``; the checkpoint was
    trained with the mismatch, so it is kept on purpose.
    """
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    xx = x.view(1, -1).expand(height, width)
    yy = y.view(-1, 1).expand(height, width)
    return torch.stack([xx, yy], dim=2)


def cast_like(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Activations entering a convolution stack take its weights' dtype and memory layout.

    The reference modules are fp32 and contiguous (a no-op); the prepared ones
    (:func:`.prepare.prepare_for_inference`) may run bf16/fp16 and channels_last.
    """
    x = x.to(weight.dtype)
    if weight.dim() == 4 and x.dim() == 4 and not weight.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


class AntiAliasDownsample(nn.Module):
    """Gaussian blur then keep every (1/scale)-th pixel, as the authors downsample inputs."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.pad_before = size // 2
        self.pad_after = self.pad_before - 1 if size % 2 == 0 else self.pad_before
        coords = torch.arange(size, dtype=torch.float32)
        gauss = torch.exp(-((coords - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = gauss[:, None] * gauss[None, :]
        kernel = kernel / kernel.sum()
        # The kernel is a buffer named `weight` because the checkpoint stores it as `down.weight`.
        self.register_buffer("weight", kernel.expand(channels, 1, size, size).contiguous())
        self.groups = channels
        self.step = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Always fp32 (cheap, and it feeds the motion estimate); the blur is computed only at the
        pixels that are kept (stride), which equals blurring everything and then subsampling."""
        p0, p1 = self.pad_before, self.pad_after
        out = F.pad(x.float(), (p0, p1, p0, p1))
        return F.conv2d(out, self.weight.float(), groups=self.groups, stride=self.step)


class SameBlock2d(nn.Module):
    """conv -> BatchNorm -> ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(SameBlock2d):
    """conv -> BatchNorm -> ReLU -> 2x2 average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(super().forward(x), kernel_size=(2, 2))


class UpBlock2d(SameBlock2d):
    """nearest 2x upsample -> conv -> BatchNorm -> ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: BN -> ReLU -> conv -> BN -> ReLU -> conv, plus input."""

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.norm2 = nn.BatchNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class Encoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * 2**i)
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(DownBlock2d(cin, cout))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [cast_like(x, self.down_blocks[0].conv.weight)]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            widen = 1 if i == num_blocks - 1 else 2  # later blocks also take the skip connection
            cin = widen * min(max_features, block_expansion * 2 ** (i + 1))
            cout = min(max_features, block_expansion * 2**i)
            blocks.append(UpBlock2d(cin, cout))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net: encoder of DownBlocks, decoder of UpBlocks with concatenated skips."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
