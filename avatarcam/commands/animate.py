"""`avatarcam animate`: animate a portrait with a driving video, offline, into an mp4."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .run import add_ai_label_argument

HELP = "animate a portrait with a driving video and write an mp4 (offline, no camera needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..engine.options import BACKENDS, DEVICES, PRECISIONS

    parser.add_argument("source", help="the portrait to animate (any image: PNG, JPEG, grey, RGBA, 16-bit)")
    parser.add_argument("driving", help="driving video (anything OpenCV reads); its first frame is the neutral pose")
    parser.add_argument("-o", "--output", required=True, help="output .mp4 (written atomically)")
    parser.add_argument("--checkpoint", help="model weights (default: vox-adv-cpk.pth.tar in the models folder)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="model precision (default: auto)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="model runtime (default: auto)")
    parser.add_argument("--no-relative", action="store_true", help="copy absolute driving keypoints")
    parser.add_argument("--no-adapt-scale", action="store_true", help="do not adapt movement to the face sizes")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    parser.add_argument("--side-by-side", action="store_true",
                        help="write source | driving | result side by side (the whole driving frame, "
                             "letterboxed to keep its aspect)")
    add_ai_label_argument(parser)


def _panel(frame: np.ndarray, size: int) -> np.ndarray:
    """The whole driving frame for the side-by-side view, letterboxed (a 4:3 frame is not squashed)."""
    from ..pipeline.outputs import letterbox

    return letterbox(frame, (size, size)).astype(np.float32) / 255.0


def _load_animator(args: argparse.Namespace):
    from ..engine import Animator, EngineOptions, RelativeMotion
    from ..paths import find_checkpoint

    def say(message: str) -> None:
        print(f"avatarcam: {message}", file=sys.stderr, flush=True)

    options = EngineOptions(device=args.device, precision=args.precision, backend=args.backend)
    say("loading the model ...")
    return Animator.from_checkpoint(find_checkpoint(args.checkpoint), options, progress=say,
                                    motion=RelativeMotion(not args.no_relative, not args.no_adapt_scale))


def _frames(reader, limit: int | None):
    for i, frame in enumerate(reader):
        if limit is not None and i >= limit:
            return
        yield frame


def _animate_all(args: argparse.Namespace, animator, source: np.ndarray, reader, writer) -> None:
    from tqdm import tqdm

    from ..imaging import center_square, resize_square, to_rgb_float, to_uint8
    from ..pipeline.outputs import draw_ai_label

    size = animator.size
    source_sq = resize_square(center_square(source), size)
    animator.set_source(source_sq)
    total = reader.frame_count or None
    if args.max_frames is not None:
        total = min(total, args.max_frames) if total else args.max_frames
    # disable=None: no bar (and no carriage-return updates) when stderr is not a terminal
    with tqdm(total=total, unit="frame", desc="animating", dynamic_ncols=True, file=sys.stderr, disable=None) as bar:
        for frame in _frames(reader, args.max_frames):
            driving = resize_square(to_rgb_float(center_square(frame)), size)
            result = animator.animate(driving)  # the first frame becomes the neutral pose
            if args.side_by_side:
                result = np.concatenate([source_sq, _panel(frame, size), result], axis=1)
            writer.write(draw_ai_label(to_uint8(result)) if args.ai_label else result)
            bar.update(1)


def main(args: argparse.Namespace) -> int:
    from ..errors import AvatarcamError
    from ..imaging import load_image
    from ..video import AtomicVideoWriter, VideoReader

    if args.max_frames is not None and args.max_frames < 1:
        raise AvatarcamError(f"--max-frames {args.max_frames}: give a positive number of frames.")
    source = load_image(args.source)  # the cheap checks (inputs, output folder) before the model loads
    reader = VideoReader(args.driving)
    try:
        writer = AtomicVideoWriter(args.output, fps=reader.fps)
        try:
            _animate_all(args, _load_animator(args), source, reader, writer)
            path = writer.close()
        except BaseException:
            writer.abort()
            raise
    finally:
        reader.close()
    print(f"wrote {writer.frames} frames to {path}")
    return 0
