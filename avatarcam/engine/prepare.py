"""The inference-preparation pass: same networks, same forward, fewer FLOPs, explicit precision.

:func:`prepare_for_inference` returns a deep copy of a reference network (left untouched) with
module surgery; the networks' own ``forward`` then runs on it unchanged:

* eval-mode BatchNorm is folded into the convolution before it: ``SameBlock2d``/``DownBlock2d``
  become :class:`ConvBlock` (conv + ReLU (+ 2x2 average pool)); in ``ResBlock2d`` ``norm2`` goes
  into ``conv1`` and ``norm1`` becomes a per-channel scale and shift;
* ``UpBlock2d`` (nearest 2x upsample, then 3x3 conv) becomes one stride-2 transposed 4x4
  convolution (the sub-pixel identity: each output phase sees a 2x2 window of the low-resolution
  input), 2.25x fewer multiply-adds and no upsampled intermediate, except for the hourglasses'
  wide bottom layers (>= SUBPIXEL_MAX_WEIGHTS), which are bound by weight traffic and measured
  slower that way;
* convolution weights move to the compute dtype (fp32, bf16 or fp16) and optionally
  channels_last. Everything that decides *where* pixels go stays fp32 because the forwards cast
  back at the conv-stack boundaries: keypoint softmax and expectations, jacobians, Gaussian
  heatmaps, sparse motions, the mask softmax, the flow, every ``grid_sample``, the occlusion map
  and the anti-alias downsample. So bf16/fp16 cost accuracy in texture, never in geometry.

In fp32 the prepared networks equal the reference ones up to float summation order (~1e-6).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasDownsample, DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d

SUBPIXEL_MAX_WEIGHTS = 1 << 19


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = x * scale + shift (float64 for the folding arithmetic)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.double() - bn.running_mean.double() * scale


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> nn.Conv2d:
    """A copy of ``conv`` with ``bn`` applied to its output folded into its weights and bias."""
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        scale, shift = _bn_affine(bn)
        w, b = w * scale[:, None, None, None], b * scale + shift
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
    out.weight.data, out.bias.data = w.float(), b.float()
    return out


def subpixel_transposed(w: torch.Tensor) -> torch.Tensor:
    """(O,I,3,3) conv weight applied after nearest 2x upsampling -> (I,O,4,4) weight of the
    equivalent ``conv_transpose2d(stride=2, padding=1)`` on the low-resolution input.

    Output row 2i+a reads upsampled rows 2i+a-1..2i+a+1, i.e. input rows i-1+a+t (t in {0,1})
    with merged taps: a=0 -> (w0, w1+w2), a=1 -> (w0+w1, w2). The transposed kernel index of
    input row i-1+a+t for output row 2i+a is 3-a-2t.
    """
    def merge(k: torch.Tensor, dim: int, a: int) -> torch.Tensor:
        k0, k1, k2 = k.unbind(dim)
        return torch.stack([k0, k1 + k2] if a == 0 else [k0 + k1, k2], dim)

    out = torch.zeros(w.shape[1], w.shape[0], 4, 4, dtype=w.dtype)
    for a in (0, 1):
        wa = merge(w, 2, a)
        for b in (0, 1):
            k = merge(wa, 3, b)  # (O,I,2,2): taps (t, s)
            for t in (0, 1):
                for s in (0, 1):
                    out[:, :, 3 - a - 2 * t, 3 - b - 2 * s] = k[:, :, t, s].t()
    return out


class ConvBlock(nn.Module):
    """Prepared Same/Down/UpBlock2d: (nearest 2x upsample) -> conv with folded BN -> ReLU (-> 2x2 avg pool)."""

    def __init__(self, conv: nn.Module, pool: bool = False, upsample: bool = False) -> None:
        super().__init__()
        self.conv, self.pool, self.upsample = conv, pool, upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.relu(self.conv(x))
        return F.avg_pool2d(x, kernel_size=(2, 2)) if self.pool else x


class FoldedResBlock(nn.Module):
    """Prepared ResBlock2d: norm1 as scale + shift, norm2 folded into conv1."""

    def __init__(self, block: ResBlock2d) -> None:
        super().__init__()
        scale, shift = _bn_affine(block.norm1)
        self.register_buffer("scale1", scale.float().view(1, -1, 1, 1))
        self.register_buffer("shift1", shift.float().view(1, -1, 1, 1))
        self.conv1, self.conv2 = _folded(block.conv1, block.norm2), _folded(block.conv2, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(F.relu(x * self.scale1 + self.shift1)))
        return self.conv2(out) + x


def _up_block(block: UpBlock2d) -> ConvBlock:
    assert block.conv.kernel_size == (3, 3) and block.conv.padding == (1, 1)
    folded = _folded(block.conv, block.norm)
    if folded.in_channels * folded.out_channels >= SUBPIXEL_MAX_WEIGHTS:
        return ConvBlock(folded, upsample=True)
    conv = nn.ConvTranspose2d(folded.in_channels, folded.out_channels, 4, stride=2, padding=1)
    conv.weight.data = subpixel_transposed(folded.weight.data.double()).float()
    conv.bias.data = folded.bias.data
    return ConvBlock(conv)


def _replacement(module: nn.Module) -> nn.Module | None:
    if isinstance(module, UpBlock2d):
        return _up_block(module)
    if isinstance(module, SameBlock2d):  # and DownBlock2d
        return ConvBlock(_folded(module.conv, module.norm), pool=isinstance(module, DownBlock2d))
    if isinstance(module, ResBlock2d):
        return FoldedResBlock(module)
    return None


def _swap_blocks(parent: nn.Module) -> None:
    for name, child in parent.named_children():
        new = _replacement(child)
        if new is None:
            _swap_blocks(child)
        else:
            setattr(parent, name, new)


@torch.no_grad()
def prepare_for_inference(module: nn.Module, dtype: torch.dtype = torch.float32, channels_last: bool = False,
                          device: torch.device | str = "cpu") -> nn.Module:
    """An inference copy of a reference network (see the module docstring); ``module`` is untouched."""
    prepared = copy.deepcopy(module).float().eval()
    _swap_blocks(prepared)
    prepared.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for m in prepared.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, FoldedResBlock)):
            for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)):
                t.data = t.data.to(dtype).contiguous(memory_format=fmt) if t.dim() == 4 else t.data.to(dtype)
        elif isinstance(m, AntiAliasDownsample):
            m.weight = m.weight.float()  # the geometry input stays fp32
    return prepared.requires_grad_(False)
