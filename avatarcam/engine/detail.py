"""Detail transfer: the avatar's own fine detail, moved by the model's dense motion, added to the
model's (model-size) picture upscaled to the crop's full resolution.

FOMM's dense motion network already says, every frame, where each output pixel comes from in the
source (``MotionField.deformation``, backward flow at 1/4 of the model's size) and which source
pixels are visible (``occlusion_map``). The generator can only draw detail up to its 256-px
resolution; the avatar picture has more. Per avatar (once): the crop's high-frequency layer, i.e.
the full-resolution crop minus its model-size version upscaled again. Per frame: upsample the flow
and the occlusion to the crop's resolution, warp that layer along the flow (one ``grid_sample``)
and add it, weighted by visibility, to the upscaled prediction. Plain upscaling is the same minus
the added layer. Runs on the model's device (torch).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .dense_motion import MotionField


def _tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx3 (uint8, or float in [0,1]) -> (1,3,H,W) float32 on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(image))
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    return t.permute(2, 0, 1)[None].contiguous().to(device)


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    shrink = x.shape[-1] > side
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=shrink)


def upscale(prediction: np.ndarray, side: int) -> np.ndarray:
    """Plain upscaling (bilinear) of an SxSx3 float picture to side x side: the reference detail
    transfer is measured against (``scripts/hd_quality.py``)."""
    return _resize(_tensor(prediction, torch.device("cpu")), side)[0].permute(1, 2, 0).clamp(0, 1).numpy()


class DetailTransfer:
    """One avatar crop at full resolution (``crop``: DxDx3, the same square the model sees at SxS).

    ``apply(prediction, motion)``: the model's SxS picture and its frame's motion field -> DxDx3
    float32 in [0, 1]: the prediction upscaled plus the crop's warped high-frequency layer where
    the source is visible.
    """

    def __init__(self, crop: np.ndarray, model_size: int, device: torch.device | str = "cpu",
                 strength: float = 1.0) -> None:
        self.device = torch.device(device)
        self.side = int(crop.shape[0])
        self.model_size = int(model_size)
        self.strength = float(strength)
        full = _tensor(crop, self.device)
        self.detail = full - _resize(_resize(full, self.model_size), self.side)  # (1,3,D,D), computed once

    @torch.inference_mode()
    def apply(self, prediction: np.ndarray | torch.Tensor, motion: MotionField) -> np.ndarray:
        pred = prediction if isinstance(prediction, torch.Tensor) else _tensor(prediction, self.device)
        up = _resize(pred.to(self.device).float(), self.side)
        d = self.side
        flow = F.interpolate(motion.deformation[:1].to(self.device).float().permute(0, 3, 1, 2), size=(d, d),
                             mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        # zeros padding: where the flow points outside the source, nothing is added
        moved = F.grid_sample(self.detail, flow, mode="bilinear", padding_mode="zeros", align_corners=False)
        if motion.occlusion_map is not None:  # only where the source is visible
            moved = moved * F.interpolate(motion.occlusion_map[:1].to(self.device).float(), size=(d, d),
                                          mode="bilinear", align_corners=False)
        out = torch.add(up, moved, alpha=self.strength).clamp_(0, 1)
        return out[0].permute(1, 2, 0).cpu().numpy()
