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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..pipeline.config import add_config_arguments

    add_config_arguments(parser)  # every field of PipelineConfig declared with a flag (pipeline/config.py)
    parser.add_argument("--no-stabilize", dest="stabilize", action="store_const", const=0.0,
                        help="turn off keypoint smoothing (--stabilize 0)")
    add_client_arguments(parser)  # --remote URL --token T ...: the model step on an `avatarcam serve` worker


OUTPUT_FIELDS = ("vcam_size", "output_layout", "avatar_detail", "ai_label")  # what `animate` shares with `run`


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--output-size``, ``--output-layout``, ``--avatar-detail``, ``--ai-label``: the output options
    ``animate`` shares with ``run``, from their declarations (pipeline/config.py)."""
    from ..pipeline.config import add_config_arguments

    add_config_arguments(parser, names=OUTPUT_FIELDS)


def _status_line(stats) -> str:
    return (f"{stats.fps:5.1f} fps | latency {stats.latency_ms:6.1f} ms | model {stats.model_ms:6.1f} ms | "
            f"dropped {stats.dropped} | frames {stats.frames_out} | camera {stats.camera_state} | "
            f"vcam {stats.vcam_state}")


def _config(args: argparse.Namespace):
    """The pipeline's config from the declared options; the virtual camera is opened by ``_open_vcam``."""
    from ..pipeline.config import config_from_args

    return config_from_args(args, vcam=False)


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
