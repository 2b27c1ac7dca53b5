#!/usr/bin/env python
"""Detail from the avatar: does it beat plain upscaling? One command, with the real weights:

    python scripts/hd_quality.py --checkpoint vox-adv-cpk.pth.tar [--avatar PICTURE] [--warps 12] [--side PX]

The avatar drives itself: each driving frame is a known warp (rotation, zoom, shift) of the avatar's
model-size crop, so the true output is that same warp applied to the avatar's FULL-resolution crop
(the picture's own resolution, or ``--side`` pixels). Per warp, both HD pictures are compared with it:

* ``plain``: the model's picture upscaled (bilinear), what the compositor pastes without detail;
* ``detail``: ``engine.detail.DetailTransfer`` (the crop's high-frequency layer moved along the
  model's own dense motion field, weighted by its occlusion map).

Reported: PSNR (dB) against the truth and sharpness = mean gradient magnitude relative to the
truth's (1.0 = as sharp as the real picture), median over the warps, on the inner 80% of the crop.
Without --checkpoint a full-size synthetic checkpoint is used (random weights: the numbers then
say nothing about quality; the run only checks the script works). Decide the default of the
``detail`` setting from the real-weights numbers (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data

from avatarcam.engine import Animator, EngineOptions  # noqa: E402
from avatarcam.engine.detail import DetailTransfer, upscale  # noqa: E402
from avatarcam.pipeline.avatar_picture import frame_avatar  # noqa: E402
from avatarcam.pipeline.avatars import default_avatar  # noqa: E402
from avatarcam.pipeline.crop import extract_crop  # noqa: E402


def warp_matrix(side: int, angle: float, zoom: float, shift: tuple[float, float]) -> np.ndarray:
    """The same geometric warp at any resolution (shift in fractions of the side)."""
    c = (side - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), angle, zoom)
    m[:, 2] += np.array(shift) * side
    return m


def warp(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    side = image.shape[0]
    return cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def sharpness(image: np.ndarray) -> float:
    grey = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2GRAY)
    return float(np.mean(np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))))


def measure(anim: Animator, picture_path: str, warps: int, side: int | None, seed: int = 0) -> dict:
    avatar = frame_avatar(picture_path, anim.size)
    side = side or int(np.clip(round(avatar.crop_square[2]), anim.size, 1024))  # the picture's own resolution
    full = extract_crop(avatar.picture, *avatar.crop_square, side).astype(np.float32) / 255
    source = avatar.model_input
    anim.set_source(source)
    anim.calibrate(source)
    detail = DetailTransfer(full, anim.size, anim.backend.device)
    reason = anim.set_motion_output(True)
    if reason:
        raise SystemExit(reason)
    rng = np.random.default_rng(seed)
    inner = slice(side // 10, side - side // 10)
    rows = []
    for _ in range(warps):
        angle, zoom = rng.uniform(-12, 12), rng.uniform(0.92, 1.08)
        shift = tuple(rng.uniform(-0.05, 0.05, 2))
        prediction = anim.animate(warp(source, warp_matrix(anim.size, angle, zoom, shift)))
        truth = warp(full, warp_matrix(side, angle, zoom, shift))[inner, inner]
        plain = upscale(prediction, side)[inner, inner]
        hd = detail.apply(prediction, anim.last_motion())[inner, inner]
        rows.append({"plain_psnr": psnr(plain, truth), "detail_psnr": psnr(hd, truth),
                     "plain_sharpness": sharpness(plain) / sharpness(truth),
                     "detail_sharpness": sharpness(hd) / sharpness(truth)})
    return {key: float(np.median([r[key] for r in rows])) for key in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="vox-adv-cpk.pth.tar (default: a synthetic full-size one)")
    ap.add_argument("--avatar", help="a portrait picture (default: the first bundled avatar)")
    ap.add_argument("--warps", type=int, default=12)
    ap.add_argument("--side", type=int, help="the full-resolution crop's side in pixels (default: as in the "
                    "picture, at most 1024)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    checkpoint = args.checkpoint
    if checkpoint is None:
        from synthetic import write_synthetic_checkpoint

        checkpoint = write_synthetic_checkpoint(Path(tempfile.mkdtemp()) / "synthetic.pth.tar")
        print("no --checkpoint: synthetic random weights; the numbers say nothing about quality")
    anim = Animator.from_checkpoint(checkpoint, EngineOptions(device=args.device, precision="fp32", backend="torch"))
    result = measure(anim, args.avatar or default_avatar(), args.warps, args.side)
    print(f"{'':8} {'PSNR dB':>8} {'sharpness':>10}")
    for name in ("plain", "detail"):
        print(f"{name:8} {result[name + '_psnr']:8.2f} {result[name + '_sharpness']:10.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(checkpoint), **result}, indent=1))


if __name__ == "__main__":
    main()
