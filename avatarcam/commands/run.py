"""`avatarcam run`: the real-time pipeline without a window."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from ..errors import AvatarcamError, OutputError

HELP = "Animate an avatar with your webcam into a virtual camera (no window)."


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w < 16 or h < 16 or w > 7680 or h > 4320:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 640x480") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--avatar", metavar="PATH", help="portrait to animate (default: the first bundled avatar)")
    parser.add_argument("--camera", default="0", metavar="0|PATH|URL",
                        help="camera index, video file or stream URL (default: 0)")
    parser.add_argument("--checkpoint", metavar="PATH", help="model weights (default: found automatically)")
    parser.add_argument("--vcam", action=argparse.BooleanOptionalAction, default=True,
                        help="send the avatar to the virtual camera (default: on)")
    parser.add_argument("--record", metavar="OUT.mp4", help="also record the output to this mp4")
    parser.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop after N output frames")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16 (default: auto)")
    parser.add_argument("--size", type=_size, default=(640, 480), metavar="WxH",
                        help="camera and virtual camera size (default: 640x480)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera and virtual camera fps (default: 30)")
    parser.add_argument("--detector", default="auto", choices=("auto", "face-alignment", "lbp"),
                        help="face detector for framing (default: auto = face-alignment if its weights "
                             "are cached, else lbp)")
    parser.add_argument("--framing", default="auto", choices=("auto", "manual"),
                        help="auto: follow the face; manual: fixed centred crop")
    parser.add_argument("--no-stabilize", action="store_true", help="turn off keypoint smoothing")
    parser.add_argument("--mirror", action="store_true", help="mirror the output left-right")
    parser.add_argument("--passthrough", action="store_true", help="send the real camera picture (no avatar)")
    parser.add_argument("--no-loop", action="store_true", help="a video file as camera stops at its end")


def _status_line(stats) -> str:
    return (f"{stats.fps:5.1f} fps | latency {stats.latency_ms:6.1f} ms | model {stats.model_ms:6.1f} ms | "
            f"dropped {stats.dropped} | frames {stats.frames_out} | camera {stats.camera_state} | "
            f"vcam {stats.vcam_state}")


def main(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline, PipelineConfig

    if args.fps <= 0 or args.fps > 240:
        raise AvatarcamError(f"--fps {args.fps:g} is out of range; use a value between 1 and 240.")
    cfg = PipelineConfig(camera=args.camera, capture_size=args.size, capture_fps=args.fps, loop_video=not args.no_loop,
                         checkpoint=args.checkpoint, device=args.device, precision=args.precision,
                         avatar=args.avatar, framing=args.framing, detector=args.detector,
                         stabilize=0.0 if args.no_stabilize else 0.5, vcam=False, vcam_size=args.size,
                         vcam_fps=args.fps, mirror_output=args.mirror, record=args.record,
                         passthrough=args.passthrough)
    tty = sys.stderr.isatty()
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            print(("\r\033[K" if tty else "") + f"avatarcam: {message}", file=sys.stderr, flush=True)

    pipeline = Pipeline(cfg)
    pipeline.on_notice = say
    done = threading.Event()
    target = max(0, args.max_frames)

    def count(bundle) -> None:
        if target and pipeline.worker is not None and pipeline.worker.frames_out + 1 >= target:
            done.set()

    pipeline.add_listener(count)
    pipeline.start()  # AvatarcamError (camera, checkpoint, avatar, record path) -> one line, exit 2
    vcam_ok = True
    if args.vcam:
        message = pipeline.set_vcam_enabled(True)
        if message:
            vcam_ok = False
            if not args.record:
                pipeline.stop()
                raise OutputError(f"{message} (nothing else to output: add --record OUT.mp4 or fix the "
                                  f"virtual camera)")
            say(f"{message} Continuing with the recording only.")
        else:
            say(f"virtual camera: {pipeline.vcam_device}")
    interrupted = False
    previous = signal.getsignal(signal.SIGINT)
    try:
        last_print = 0.0
        while not done.is_set():
            done.wait(0.1)
            stats = pipeline.stats()
            if stats.camera_state in ("ended", "failed"):
                break
            now = time.monotonic()
            if tty and now - last_print >= 0.25:
                with lock:
                    print("\r\033[K" + _status_line(stats), end="", file=sys.stderr, flush=True)
                last_print = now
            elif not tty and now - last_print >= 2.0:
                say(_status_line(stats))
                last_print = now
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not break the clean stop
        try:
            stats = pipeline.stats()
            path = pipeline.stop_recording() if pipeline.recording else None
            pipeline.stop()
        finally:
            signal.signal(signal.SIGINT, previous)
    if tty:
        print(file=sys.stderr)
    say(("stopped: " if interrupted else "done: ") + _status_line(stats))
    if args.record:
        if path:
            say(f"recorded {path}")
        else:
            say(f"no recording was saved to {args.record}")
    camera_failed = stats.camera_state == "failed"
    produced = stats.frames_out > 0
    if camera_failed or not produced and not interrupted:
        return 1
    if args.record and not path:
        return 1
    return 0 if (vcam_ok or args.record) else 1
