"""`avatarcam animate`: animate a portrait with a driving video, offline, into an mp4."""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

from .run import add_output_arguments

HELP = "animate a portrait with a driving video and write an mp4 (offline, no camera needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..engine.options import BACKENDS, DEVICES, PRECISIONS
    from ..video import VIDEO_SUFFIXES

    parser.add_argument("source", help="the portrait to animate (any image: PNG, JPEG, grey, RGBA, 16-bit)")
    parser.add_argument("driving", help="driving video (anything OpenCV reads); its first frame is the neutral pose "
                                           "unless --find-best-frame or --best-frame says otherwise")
    parser.add_argument("-o", "--output", required=True,
                        help=f"output video ({', '.join(VIDEO_SUFFIXES)}; written atomically)")
    parser.add_argument("--checkpoint", help="model weights (default: vox-adv-cpk.pth.tar in the models folder)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="model precision (default: auto)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="model runtime (default: auto)")
    parser.add_argument("--no-relative", action="store_true", help="copy absolute driving keypoints")
    parser.add_argument("--no-adapt-scale", action="store_true", help="do not adapt movement to the face sizes")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    parser.add_argument("--side-by-side", action="store_true",
                        help="write source | driving | result side by side, each at --output-size (the whole "
                             "driving frame, letterboxed to keep its aspect)")
    add_output_arguments(parser)  # --output-size, --output-layout, --avatar-detail, --ai-label (as for `run`)
    neutral = parser.add_mutually_exclusive_group()
    neutral.add_argument("--find-best-frame", action="store_true",
                         help="use the driving frame whose pose best matches the avatar as the neutral pose "
                              "(prints 'best frame: N', 0-based)")
    neutral.add_argument("--best-frame", type=int, default=None, metavar="N",
                         help="use driving frame N (0-based) as the neutral pose")


def _load_animator(args: argparse.Namespace):
    from ..engine import Animator, EngineOptions, RelativeMotion
    from ..paths import find_checkpoint

    def say(message: str) -> None:
        print(f"avatarcam: {message}", file=sys.stderr, flush=True)

    options = EngineOptions(device=args.device, precision=args.precision, backend=args.backend)
    say("loading the model ...")
    animator = Animator.from_checkpoint(find_checkpoint(args.checkpoint), options, progress=say,
                                        motion=RelativeMotion(not args.no_relative, not args.no_adapt_scale))
    animator.on_notice = say  # e.g. a degenerate neutral pose repaired
    return animator


def _frames(reader, limit: int | None):
    for i, frame in enumerate(reader):
        if limit is not None and i >= limit:
            return
        yield frame


def _output_stage(args: argparse.Namespace, animator):
    """The compositor for ``--output-layout``/``--output-size`` (``pipeline/compositor.py``), with
    detail transfer asked of the animator if ``--avatar-detail`` (one notice when unavailable)."""
    from ..pipeline.compositor import OutputStage

    if args.avatar_detail:
        reason = animator.set_motion_output(True)
        if reason:
            print(f"avatarcam: {reason}", file=sys.stderr)
    return OutputStage()


def _output_frame(args: argparse.Namespace, stage, avatar, result: np.ndarray, frame: np.ndarray,
                  animator) -> np.ndarray:
    """The animated frame at the output size (source | driving | result with --side-by-side)."""
    from ..imaging import to_uint8
    from ..pipeline.pictures import letterbox

    size, layout = args.output_size, args.output_layout
    pasted = stage.picture(avatar, to_uint8(result), animator.last_motion(), layout=layout, size=size)
    out = stage.compose(avatar, pasted, layout=layout, size=size, ai_label=args.ai_label)
    if not args.side_by_side:
        return out
    still = stage.compose(avatar, None, layout=layout, size=size, ai_label=False)
    return np.concatenate([still, letterbox(frame, size), out], axis=1)


def _animate_all(args: argparse.Namespace, animator, source: np.ndarray, reader, writer) -> None:
    from tqdm import tqdm

    from ..imaging import to_rgb_float
    from ..pipeline.avatar_picture import frame_avatar

    avatar = frame_avatar(source, animator.size, whole=animator.domain != "face")
    prepared = animator.set_source(avatar.model_input)
    neutral = choose_neutral(args, animator, prepared)
    stage = _output_stage(args, animator)
    total = reader.frame_count or None
    if args.max_frames is not None:
        total = min(total, args.max_frames) if total else args.max_frames
    # disable=None: no bar (and no carriage-return updates) when stderr is not a terminal
    with tqdm(total=total, unit="frame", desc="animating", dynamic_ncols=True, file=sys.stderr, disable=None) as bar:
        for i, frame in enumerate(_frames(reader, args.max_frames)):
            if neutral is None:  # the first frame becomes the neutral pose (auto window 0 s, frame time i)
                result = animator.animate(model_input(to_rgb_float(frame), animator), t=float(i))
            else:
                result = animator.animate_keypoints(neutral[i])  # detected in choose_neutral
            writer.write(_output_frame(args, stage, avatar, result, frame, animator))
            bar.update(1)


def _write_video(args: argparse.Namespace, source: np.ndarray, reader) -> tuple[int, object]:
    """Animate into ``args.output``; (frames, path). Ctrl-C, SIGTERM or SIGHUP keeps the frames made
    so far as a finished, playable file and then goes on as an interrupt (exit 130 / 128+n)."""
    from ..interrupts import stop_signals_ignored
    from ..video import AtomicVideoWriter

    writer = AtomicVideoWriter(args.output, fps=reader.fps)  # the output path: checked before the model loads
    try:
        _animate_all(args, _load_animator(args), source, reader, writer)
    except KeyboardInterrupt:
        with stop_signals_ignored():
            if writer.frames:
                path = writer.close()
                print(f"avatarcam: stopped; wrote the first {writer.frames} frames to {path}", file=sys.stderr)
            else:
                writer.abort()
        raise
    except BaseException:
        writer.abort()
        raise
    with stop_signals_ignored():  # a signal now must not leave the file half-published
        return writer.frames, writer.close()


def main(args: argparse.Namespace) -> int:
    from ..errors import AvatarcamError
    from ..imaging import load_image
    from ..interrupts import stop_signals_interrupt
    from ..video import VideoReader, check_video_path

    if args.max_frames is not None and args.max_frames < 1:
        raise AvatarcamError(f"--max-frames {args.max_frames}: give a positive number of frames.")
    check_video_path(args.output)  # the cheap checks (output, inputs) before the model loads
    source = load_image(args.source)
    with stop_signals_interrupt(), VideoReader(args.driving) as reader:
        check_best_frame(args.best_frame, reader.frame_count, args.max_frames, args.driving)
        frames, path = _write_video(args, source, reader)
    print(f"wrote {frames} frames to {path}")
    return 0


def check_best_frame(index: int | None, frame_count: int, max_frames: int | None, driving: str) -> None:
    """--best-frame N must name a frame that will be animated; checked before the model loads."""
    from ..errors import AvatarcamError

    if index is None:
        return
    limits = [n for n in (frame_count, max_frames) if n]
    available = min(limits) if limits else None
    if index < 0 or (available is not None and index >= available):
        limit = f"0..{available - 1}" if available else "0 or more"
        raise AvatarcamError(f"--best-frame {index}: {driving} has frames {limit}; pick one of those "
                             "or use --find-best-frame.")


def model_input(image: np.ndarray, animator) -> np.ndarray:
    """The picture the model sees: the centre square for face models, the whole frame (as the
    authors' demo resizes it) for full-frame domains such as taichi or mgif."""
    from ..imaging import center_square, resize_square

    return resize_square(center_square(image) if animator.domain == "face" else image, animator.size)


def choose_neutral(args: argparse.Namespace, animator, prepared) -> list | None:
    """With --find-best-frame / --best-frame: every driving frame's keypoints (first pass over the
    clip), the animator calibrated on the chosen frame; None otherwise (first frame is neutral).

    Calibrating on frame N and animating in driving order gives the same frames as the authors'
    demo, which animates forward from N and backward from N to the start with N as neutral."""
    from ..engine import best_frame
    from ..errors import AvatarcamError
    from ..imaging import to_rgb_float
    from ..video import VideoReader

    if not args.find_best_frame and args.best_frame is None:
        return None
    with VideoReader(args.driving) as reader:
        keypoints = [animator.detect(model_input(to_rgb_float(frame), animator))
                     for frame in itertools.islice(reader, args.max_frames)]
    if args.best_frame is not None and args.best_frame >= len(keypoints):
        raise AvatarcamError(f"--best-frame {args.best_frame}: {args.driving} has only {len(keypoints)} "
                             "frames; pick a smaller N or use --find-best-frame.")
    best = args.best_frame
    if best is None:
        best = best_frame(prepared.keypoints, keypoints)
        print(f"best frame: {best}")
    animator.calibrate(keypoints=keypoints[best])
    return keypoints
