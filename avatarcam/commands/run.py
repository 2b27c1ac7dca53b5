"""`avatarcam run`: the real-time pipeline without a window."""

from __future__ import annotations

import argparse
import sys
import threading
import time

from ..errors import OutputError
from ..interrupts import stop_signals_ignored, stop_signals_interrupt
from ..remote.cli import add_client_arguments, await_worker, connect_from_args

HELP = "Animate an avatar with your webcam into a virtual camera (no window)."
RECORD_HELP = ("also record the output to this mp4: every output frame exactly once, played back at --fps "
               "(not padded to real time, so when the model makes fewer frames a second than --fps the "
               "recording plays faster than it happened); tagged as synthetic video")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..pipeline.config import BACKENDS, DETECTORS, DEVICES, FRAMINGS, PRECISIONS, arg_type

    parser.add_argument("--avatar", metavar="PATH", help="portrait to animate (default: the first bundled avatar)")
    parser.add_argument("--camera", default="0", metavar="0|PATH|URL",
                        help="camera index, video file or stream URL (default: 0)")
    parser.add_argument("--checkpoint", metavar="PATH", help="model weights (default: found automatically)")
    parser.add_argument("--vcam", action=argparse.BooleanOptionalAction, default=True,
                        help="send the avatar to the virtual camera (default: on)")
    parser.add_argument("--record", metavar="OUT.mp4", help=RECORD_HELP)
    parser.add_argument("--max-frames", type=arg_type("max_frames"), default=0, metavar="N",
                        help="stop after exactly N output frames (a recording then holds exactly N frames)")
    add_ai_label_argument(parser)
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="model precision (default: auto)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="model runtime (default: auto)")
    parser.add_argument("--size", type=arg_type("vcam_size"), default=(640, 480), metavar="WxH",
                        help="camera and virtual camera size (default: 640x480)")
    parser.add_argument("--fps", type=arg_type("vcam_fps"), default=30.0,
                        help="camera and virtual camera fps (default: 30)")
    parser.add_argument("--detector", default="auto", choices=DETECTORS,
                        help="face detector for framing (default: auto = face-alignment if its weights "
                             "are cached, else lbp)")
    parser.add_argument("--framing", default="auto", choices=FRAMINGS,
                        help="auto: follow the face; manual: fixed centred crop")
    parser.add_argument("--no-stabilize", action="store_true", help="turn off keypoint smoothing")
    parser.add_argument("--mirror", action="store_true", help="mirror the output left-right")
    parser.add_argument("--passthrough", action="store_true", help="send the real camera picture (no avatar)")
    parser.add_argument("--no-loop", action="store_true", help="a video file as camera stops at its end")
    add_client_arguments(parser)  # --remote URL --token T ...: the model step on an `avatarcam serve` worker


def add_ai_label_argument(parser: argparse.ArgumentParser) -> None:
    """``--ai-label/--no-ai-label``, shared by ``run`` and ``animate``."""
    parser.add_argument("--ai-label", action=argparse.BooleanOptionalAction, default=True,
                        help="draw a small 'AI' label in the corner of every animated frame sent out or recorded, "
                             "so viewers can tell the picture is generated (default: on)")


def _status_line(stats) -> str:
    return (f"{stats.fps:5.1f} fps | latency {stats.latency_ms:6.1f} ms | model {stats.model_ms:6.1f} ms | "
            f"dropped {stats.dropped} | frames {stats.frames_out} | camera {stats.camera_state} | "
            f"vcam {stats.vcam_state}")


def _config(args: argparse.Namespace):
    from ..pipeline import PipelineConfig

    return PipelineConfig(camera=args.camera, capture_size=args.size, capture_fps=args.fps,
                          loop_video=not args.no_loop, checkpoint=args.checkpoint, device=args.device,
                          precision=args.precision, backend=args.backend, avatar=args.avatar,
                          framing=args.framing, detector=args.detector,
                          stabilize=0.0 if args.no_stabilize else PipelineConfig.stabilize, vcam=False,
                          vcam_size=args.size, vcam_fps=args.fps, mirror_output=args.mirror, record=args.record,
                          passthrough=args.passthrough, max_frames=args.max_frames, ai_label=args.ai_label)


def _open_vcam(pipeline, args: argparse.Namespace, say) -> bool:
    """Turn the virtual camera on if asked (before the model loads: a cheap check); False when it
    was asked for and is missing."""
    if not args.vcam:
        if not args.record:
            raise OutputError("--no-vcam without --record would output nothing; add --record OUT.mp4 "
                              "or leave the virtual camera on.")
        return True
    message = pipeline.set_vcam_enabled(True)
    if not message:
        say(f"virtual camera: {pipeline.vcam_device}")
        return True
    if not args.record:
        pipeline.stop()
        raise OutputError(f"{message} (nothing else to output: add --record OUT.mp4 or fix the virtual camera)")
    say(f"{message} Continuing with the recording only.")
    return False


def _watch(pipeline, done: threading.Event, tty: bool, say, lock: threading.Lock) -> None:
    """Print the status line until ``done``, or the camera ends or fails."""
    last_print = 0.0
    while not done.is_set():
        done.wait(0.1)
        stats = pipeline.stats()
        if stats.camera_state in ("ended", "failed"):
            return
        now = time.monotonic()
        if tty and now - last_print >= 0.25:
            with lock:
                print("\r\033[K" + _status_line(stats), end="", file=sys.stderr, flush=True)
            last_print = now
        elif not tty and now - last_print >= 2.0:
            say(_status_line(stats))
            last_print = now


def _exit_code(args: argparse.Namespace, stats, path: str | None, interrupted: bool, vcam_ok: bool) -> int:
    if stats.camera_state == "failed" or stats.frames_out == 0 and not interrupted:
        return 1
    if args.record and not path:
        return 1
    return 0 if (vcam_ok or args.record) else 1


def _start(args: argparse.Namespace, say, animator=None) -> tuple[object, threading.Event, bool]:
    """The pipeline, started (the cheap checks before the model loads); an event set after the
    last of ``--max-frames`` frames; whether the virtual camera is fine."""
    from ..pipeline import Pipeline

    pipeline = Pipeline(_config(args), animator)
    pipeline.on_notice = say
    pipeline.on_progress = say
    vcam_ok = _open_vcam(pipeline, args, say)
    done = threading.Event()
    published = [0]

    def count(_bundle) -> None:
        published[0] += 1
        if published[0] >= args.max_frames > 0:
            done.set()

    pipeline.add_listener(count)
    try:
        pipeline.start()  # AvatarcamError (camera, avatar, record path, checkpoint) -> one line, exit 2
    except BaseException:
        pipeline.stop()
        raise
    return pipeline, done, vcam_ok


def check_outputs(args: argparse.Namespace) -> None:
    """The output path, checked before any work (camera, avatar, model): OutputError, one line."""
    from ..video import check_video_path

    if args.record:
        check_video_path(args.record)


def _stop(pipeline, remote) -> tuple[str | None, object]:
    """Finish the recording and stop everything; (the saved file or None, the last stats)."""
    with stop_signals_ignored():  # a second Ctrl+C or SIGTERM must not break the clean stop
        path = pipeline.stop_recording() if pipeline.recording else None
        stats = pipeline.stats()
        pipeline.stop()
        if remote is not None:
            remote.close()
    return path, stats


def main(args: argparse.Namespace) -> int:
    check_outputs(args)
    tty = sys.stderr.isatty()
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            try:
                print(("\r\033[K" if tty else "") + f"avatarcam: {message}", file=sys.stderr, flush=True)
            except OSError:  # the terminal is gone (SIGHUP): the recording still gets finished
                pass

    with stop_signals_interrupt():  # SIGTERM / SIGHUP stop like Ctrl+C: the recording is finished
        remote = connect_from_args(args)  # None unless --remote
        pipeline, done, vcam_ok = _start(args, say, remote)
        interrupted = False
        try:
            await_worker(remote, pipeline, say)
            _watch(pipeline, done, tty, say, lock)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            path, stats = _stop(pipeline, remote)
    say(("stopped: " if interrupted else "done: ") + _status_line(stats))
    if args.record:
        say(f"recorded {stats.recorded_frames} frames to {path}" if path
            else f"no recording was saved to {args.record}")
    return _exit_code(args, stats, path, interrupted, vcam_ok)
