"""Inference-only rewrites of the three networks: same function, fewer FLOPs, explicit precision.

The reference modules (:mod:`.keypoint_detector`, :mod:`.generator`) keep the authors' layout so
the checkpoint loads unchanged; the backends run these derived copies instead:

* eval-mode BatchNorm is folded into the convolution before it (and into the following
  convolution's weights for the residual blocks' second norm);
* "nearest 2x upsample, then 3x3 conv" becomes one stride-2 transposed 4x4 convolution
  (the sub-pixel identity: each output phase sees a 2x2 window of the low-resolution input),
  2.25x fewer multiply-adds for the up blocks and no upsampled intermediate (except for the
  hourglasses' widest, lowest-resolution layers, where it measured slower);
* the anti-alias downsample convolves only at the pixels it keeps (stride 4);
* weights live in the compute dtype (fp32, bf16 or fp16) and optionally channels_last, while
  everything that decides *where* pixels go stays fp32: keypoint softmax and expectations,
  jacobians and their inverses, Gaussian heatmaps, sparse motions, the mask softmax, the dense
  flow, every ``grid_sample`` and the occlusion map. Only the convolution stacks run in the
  low precision, so bf16/fp16 cost accuracy in texture, never in geometry.

In fp32 the outputs equal the reference modules' up to float summation order (~1e-6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (
    AntiAliasDownsample,
    DownBlock2d,
    Hourglass,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
    make_coordinate_grid,
)
from .generator import EncodedSource, OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector
from .motion import Keypoints, inverse_2x2, kp_to_gaussian


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = x * scale + shift (float64 for the folding arithmetic)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    return scale, shift


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        scale, shift = _bn_affine(bn)
        w = w * scale[:, None, None, None]
        b = b * scale + shift
    return w, b


def _subpixel_transposed(w: torch.Tensor) -> torch.Tensor:
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


class _Precision(nn.Module):
    """Weights in ``dtype`` (and ``channels_last``) after :meth:`configure`."""

    dtype: torch.dtype = torch.float32
    channels_last: bool = False

    def configure(self, dtype: torch.dtype, channels_last: bool) -> _Precision:
        for m in self.modules():
            m.dtype, m.channels_last = dtype, channels_last
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for m in self.modules():
            for name, buf in list(m._buffers.items()):
                if buf is None or name.endswith("_fp32"):  # buffers that must stay fp32
                    continue
                buf = buf.to(dtype)
                m._buffers[name] = buf.contiguous(memory_format=fmt) if buf.dim() == 4 else buf
        return self

    def low(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x


class FConv(_Precision):
    """conv (+ folded BN) -> ReLU (optional) -> 2x2 average pool (optional)."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None, relu: bool = True,
                 pool: bool = False) -> None:
        super().__init__()
        w, b = _fold(conv, bn)
        self.register_buffer("weight", w.float())
        self.register_buffer("bias", b.float())
        self.padding, self.relu, self.pool = conv.padding, relu, pool

    @classmethod
    def block(cls, block: SameBlock2d) -> FConv:
        return cls(block.conv, block.norm, relu=True, pool=isinstance(block, DownBlock2d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        if self.relu:
            x = F.relu(x)
        return F.avg_pool2d(x, kernel_size=(2, 2)) if self.pool else x


class FUp(_Precision):
    """UpBlock2d (nearest 2x -> conv3x3 -> BN -> ReLU), BN folded, as one stride-2 transposed
    convolution where that pays: the high-resolution, narrow layers. The hourglasses' wide
    bottom layers (>= 2^19 weights, at 2x2..4x4 pixels) are bound by weight traffic, which the
    4x4 transposed kernel would raise by 16/9, so they keep upsample + 3x3 conv."""

    SUBPIXEL_MAX_WEIGHTS = 1 << 19

    def __init__(self, block: UpBlock2d) -> None:
        super().__init__()
        assert block.conv.kernel_size == (3, 3) and block.conv.padding == (1, 1)
        w, b = _fold(block.conv, block.norm)
        self.subpixel = w.shape[0] * w.shape[1] < self.SUBPIXEL_MAX_WEIGHTS
        self.register_buffer("weight", (_subpixel_transposed(w) if self.subpixel else w).float())
        self.register_buffer("bias", b.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subpixel:
            return F.relu(F.conv_transpose2d(x, self.weight, self.bias, stride=2, padding=1))
        return F.relu(F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), self.weight, self.bias, padding=1))


class FRes(_Precision):
    """Pre-activation residual block with norm2 folded into conv1."""

    def __init__(self, block: ResBlock2d) -> None:
        super().__init__()
        scale, shift = _bn_affine(block.norm1)
        self.register_buffer("scale1", scale.float().view(1, -1, 1, 1))
        self.register_buffer("shift1", shift.float().view(1, -1, 1, 1))
        self.conv1 = FConv(block.conv1, block.norm2, relu=True)
        self.conv2 = FConv(block.conv2, None, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(x * self.scale1 + self.shift1)
        return self.conv2(self.conv1(out)) + x


class FHourglass(_Precision):
    def __init__(self, hourglass: Hourglass) -> None:
        super().__init__()
        self.down = nn.ModuleList(FConv.block(b) for b in hourglass.encoder.down_blocks)
        self.up = nn.ModuleList(FUp(b) for b in hourglass.decoder.up_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.up:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class FDownsample(_Precision):
    """AntiAliasDownsample computed only at the kept pixels (always fp32: it is cheap)."""

    def __init__(self, down: AntiAliasDownsample) -> None:
        super().__init__()
        self.register_buffer("weight_fp32", down.weight.detach().float().clone())
        self.pads = (down.pad_before, down.pad_after) * 2
        self.groups, self.step = down.groups, down.step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.float(), self.pads)
        return F.conv2d(x, self.weight_fp32, groups=self.groups, stride=self.step)


class FastKeypointDetector(_Precision):
    """Same outputs as :class:`KeypointDetector`; softmax, expectations and jacobians in fp32."""

    def __init__(self, ref: KeypointDetector) -> None:
        super().__init__()
        self.num_kp, self.temperature = ref.num_kp, ref.temperature
        self.down = FDownsample(ref.down) if ref.down is not None else None
        self.predictor = FHourglass(ref.predictor)
        self.kp = FConv(ref.kp, relu=False)
        self.jacobian = FConv(ref.jacobian, relu=False) if ref.jacobian is not None else None
        self.num_jacobian_maps = getattr(ref, "num_jacobian_maps", 0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.down is not None:
            x = self.down(x)
        features = self.predictor(self.low(x))
        logits = self.kp(features).float()
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.reshape(b, k, h * w) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid(h, w, torch.float32, x.device)
        out = {"value": (heatmap[..., None] * grid).sum(dim=(2, 3))}
        if self.jacobian is not None:
            maps = self.jacobian(features).float().reshape(b, self.num_jacobian_maps, 4, h, w)
            jac = (heatmap[:, :, None] * maps).reshape(b, k, 4, h * w).sum(dim=-1)
            out["jacobian"] = jac.view(b, k, 2, 2)
        return out


def sparse_motions(h: int, w: int, value_s: torch.Tensor, value_d: torch.Tensor,
                   jac_s: torch.Tensor | None, jac_d: torch.Tensor | None) -> torch.Tensor:
    """(B, K+1, H, W, 2) in fp32, as DenseMotionNetwork.sparse_motions (explicit 2x2 algebra)."""
    b = value_s.shape[0]
    identity = make_coordinate_grid(h, w, torch.float32, value_s.device)[None, None]
    grid = identity - value_d[:, :, None, None, :]
    if jac_d is not None:
        jac = torch.matmul(jac_s, inverse_2x2(jac_d))  # (B,K,2,2)
        gx, gy = grid[..., 0], grid[..., 1]
        j = jac[:, :, None, None]
        grid = torch.stack([j[..., 0, 0] * gx + j[..., 0, 1] * gy, j[..., 1, 0] * gx + j[..., 1, 1] * gy], dim=-1)
    to_source = grid + value_s[:, :, None, None, :]
    return torch.cat([identity.expand(b, 1, h, w, 2), to_source], dim=1)


class FastDenseMotion(_Precision):
    def __init__(self, ref) -> None:
        super().__init__()
        self.num_kp, self.kp_variance = ref.num_kp, ref.kp_variance
        self.hourglass = FHourglass(ref.hourglass)
        self.mask = FConv(ref.mask, relu=False)
        self.occlusion = FConv(ref.occlusion, relu=False) if ref.occlusion is not None else None

    def forward(self, small: torch.Tensor, value_s: torch.Tensor, value_d: torch.Tensor,
                jac_s: torch.Tensor | None, jac_d: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """small: fp32 (B,3,h,w) downsampled source -> (deformation (B,h,w,2), occlusion | None), fp32."""
        b, c, h, w = small.shape
        k1 = self.num_kp + 1
        heat = kp_to_gaussian(value_d, h, w, self.kp_variance) - kp_to_gaussian(value_s, h, w, self.kp_variance)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1).unsqueeze(2)
        motions = sparse_motions(h, w, value_s, value_d, jac_s, jac_d)
        repeated = small.unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
        warped = F.grid_sample(repeated, motions.reshape(b * k1, h, w, 2), align_corners=False).view(b, k1, c, h, w)
        features = torch.cat([heat, warped], dim=2).view(b, -1, h, w)
        prediction = self.hourglass(self.low(features))
        mask = F.softmax(self.mask(prediction).float(), dim=1)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)
        occlusion = torch.sigmoid(self.occlusion(prediction).float()) if self.occlusion is not None else None
        return deformation, occlusion


class FastGenerator(_Precision):
    """encode(source) once per avatar, decode(...) -> prediction per frame."""

    def __init__(self, ref: OcclusionAwareGenerator) -> None:
        super().__init__()
        dm = ref.dense_motion_network
        self.down = FDownsample(dm.down) if dm.down is not None else None
        self.dense_motion = FastDenseMotion(dm)
        self.first = FConv.block(ref.first)
        self.down_blocks = nn.ModuleList(FConv.block(b) for b in ref.down_blocks)
        self.bottleneck = nn.ModuleList(FRes(b) for b in ref.bottleneck)
        self.up_blocks = nn.ModuleList(FUp(b) for b in ref.up_blocks)
        self.final = FConv(ref.final, relu=False)

    def encode(self, source: torch.Tensor) -> EncodedSource:
        source = source.float()
        features = self.low(source)
        features = self.first(features)
        for block in self.down_blocks:
            features = block(features)
        small = self.down(source) if self.down is not None else source
        return EncodedSource(source, small, features.float().contiguous())

    def decode_tensors(self, features: torch.Tensor, small: torch.Tensor, value_s: torch.Tensor,
                       value_d: torch.Tensor, jac_s: torch.Tensor | None = None,
                       jac_d: torch.Tensor | None = None) -> torch.Tensor:
        """Plain-tensor signature (fp32 in, fp32 prediction out): what ONNX exports and CUDA graphs capture."""
        deformation, occlusion = self.dense_motion(small, value_s, value_d, jac_s, jac_d)
        _, _, h, w = features.shape
        if deformation.shape[1:3] != (h, w):
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                        align_corners=False).permute(0, 2, 3, 1)
        out = F.grid_sample(features, deformation, align_corners=False)
        if occlusion is not None:
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion
        out = self.low(out)
        for block in self.bottleneck:
            out = block(out)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out).float())

    def decode(self, encoded: EncodedSource, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        return self.decode_tensors(encoded.features.float(), encoded.small.float(), kp_source["value"].float(),
                                   kp_driving["value"].float(), _jac(kp_source), _jac(kp_driving))


def _jac(kp: Keypoints) -> torch.Tensor | None:
    j = kp.get("jacobian")
    return j.float() if j is not None else None


def build_fast(kp_detector: KeypointDetector, generator: OcclusionAwareGenerator, *, dtype: torch.dtype,
               channels_last: bool, detector_dtype: torch.dtype | None = None,
               device: torch.device | str = "cpu") -> tuple[FastKeypointDetector, FastGenerator]:
    """Derived inference copies of the two reference modules (which are left untouched)."""
    with torch.no_grad():
        det = FastKeypointDetector(kp_detector.float().eval()).to(device)
        gen = FastGenerator(generator.float().eval()).to(device)
    det.configure(detector_dtype or dtype, channels_last)
    gen.configure(dtype, channels_last)
    return det.eval(), gen.eval()
