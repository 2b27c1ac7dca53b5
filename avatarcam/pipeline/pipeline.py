"""The real-time pipeline: camera -> face framing -> model -> virtual camera / recording / preview.

Threads: capture (newest frame only), face detection (newest frame only), inference (framing,
model and outputs for the newest frame), short-lived avatar preparation, and the recorder.
``Pipeline`` composes them and is the only thing the CLI (``avatarcam run``) and the window drive.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..engine import AnimatorProtocol, RelativeMotion
from ..engine.neutral import AUTO, FIND_BEST, MatchReading
from ..errors import AvatarcamError, OutputError
from ..imaging import load_image
from ..paths import FileIdentity, file_identity
from .avatar_picture import AvatarPicture, frame_avatar
from .avatars import default_avatar
from .capture import FAILED, OPENING, CaptureThread, Opener
from .config import OUTPUT_LAYOUTS, PipelineConfig, check_choice
from .detectors import FaceDetector, make_detector
from .framing import FaceFramer
from .loading import load_animator
from .outputs import FileSink, VirtualCameraSink
from .sinks import Sink, make_sink
from .stabilizer import KeypointStabilizer
from .worker import FrameBundle, InferenceWorker, Timings

Listener = Callable[[FrameBundle], None]


@dataclass
class PipelineStats(Timings):  # the last frame's timings, and:
    fps: float = 0.0  # output frames per second
    dropped: int = 0  # camera frames never processed (the model was busy)
    frames_out: int = 0
    frames_captured: int = 0
    recorded_frames: int = 0  # frames written by the current (or last) recording
    camera_state: str = OPENING  # opening | running | retrying | failed | ended
    vcam_state: str = "off"  # off | on | unavailable | error
    device: str = ""
    precision: str = ""
    calibrated: bool = False
    passthrough: bool = False
    face_found: bool = False  # in the last output frame
    match: float | None = None  # the last animated frame's pose match with the avatar, 0-100 %
    best_match: float | None = None  # the neutral pose's match, 0-100 %
    calibration: str = AUTO  # how the neutral pose is chosen: auto | find-best | manual (engine/neutral.py)


def _avatar_key(image: str | os.PathLike | np.ndarray) -> Hashable | None:
    """A path's file identity (None when the file cannot be read), or an array's content hash."""
    if isinstance(image, (str, os.PathLike)):
        return file_identity(image)
    arr = np.ascontiguousarray(image)
    return ("array", arr.shape, str(arr.dtype), hashlib.sha1(arr.tobytes()).hexdigest())


class Pipeline:
    """See ``docs/pipeline.md``. Typical use::

        p = Pipeline(PipelineConfig(camera="0", avatar="me.png"))
        p.add_listener(show); p.start(); ...; p.stop()

    ``start()`` raises ``AvatarcamError`` (one line with the fix) when the checkpoint, the avatar
    or the camera cannot be opened at all; later problems become ``on_notice`` messages.
    """

    def __init__(self, config: PipelineConfig | None = None, animator: AnimatorProtocol | None = None, *,
                 opener: Opener | None = None, detector: FaceDetector | None = None) -> None:
        self.config = cfg = config or PipelineConfig()
        self.animator = animator
        self.on_notice: Callable[[str], None] | None = None
        self.on_progress: Callable[[str], None] | None = None  # "loading the model ..." while start() waits
        self.notices: list[str] = []
        self.last_bundle: FrameBundle | None = None
        self._opener = opener
        self._framing = FaceFramer(detector, mode=cfg.framing, zoom=cfg.zoom, offset=cfg.offset)
        self._stabilizer = KeypointStabilizer(cfg.stabilize)
        self._capture: CaptureThread | None = None
        self._worker: InferenceWorker | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._sinks: list[Sink] = []  # every output; the virtual camera and the recording among them
        self._vcam: VirtualCameraSink | None = None
        self._vcam_state = "off"
        self._recorder: FileSink | None = None
        self._recorded_frames = 0
        self._avatar_cache: dict[Hashable, AvatarPicture] = {}
        self._avatar_by_path: dict[str, AvatarPicture] = {}  # the latest version prepared from each file
        self._avatar: AvatarPicture | None = None
        self._avatar_request = 0
        self._avatar_threads: list[threading.Thread] = []
        self._started = False
        self._stopped = False
        if animator is not None:
            self._wire_animator(animator)

    # notices -------------------------------------------------------------------------------------
    def _notice(self, message: str) -> None:
        self.notices.append(message)
        del self.notices[:-50]
        callback = self.on_notice
        if callback is not None:
            try:
                callback(message)
            except Exception:  # noqa: BLE001 - a UI callback must never break the stream
                pass

    # lifecycle -----------------------------------------------------------------------------------
    def _load_animator(self):
        cfg = self.config
        return load_animator(cfg.checkpoint, cfg.engine_options(), motion=RelativeMotion(cfg.relative, cfg.adapt_scale),
                             notice=self._notice, progress=self.on_progress)

    def _open_camera(self) -> CaptureThread:
        cfg = self.config
        capture = CaptureThread(cfg.camera, tuple(cfg.capture_size), cfg.capture_fps, loop=cfg.loop_video,
                                opener=self._opener,
                                on_state=lambda _state, message: message and self._notice(message))
        capture.open()  # CameraError now, with its fix, if the camera cannot be opened at all
        return capture

    def _get_ready(self) -> None:
        """Cheap checks first (avatar file, recording folder), then the slow model load."""
        cfg = self.config
        avatar = cfg.avatar if cfg.avatar is not None else default_avatar()
        picture = None
        if self._cached(avatar) is None and isinstance(avatar, (str, os.PathLike)):
            picture = load_image(avatar)  # MediaError, before the model loads
        if cfg.record:
            self.start_recording(cfg.record)  # OutputError for a folder that cannot be written
        if self.animator is None:
            if self.on_progress is not None:
                self.on_progress("loading the model ...")
            self.animator = self._load_animator()
            self._wire_animator(self.animator)
        if self._framing.detector is None:
            self._framing.detector = make_detector(cfg.detector, notice=self._notice)
        # the first avatar is prepared here so the first output frame already shows it
        self._apply(self._prepare(avatar, picture))
        self._framing.size = self.animator.size  # the driving crop at the model's size
        if cfg.vcam:
            message = self.set_vcam_enabled(True)
            if message:
                self._notice(message)

    def _wire_animator(self, animator: AnimatorProtocol) -> None:
        """The animator's notices (a repaired neutral pose, a lost worker) reach ``on_notice``; its
        neutral pose starts over with this stream's auto-calibration window."""
        animator.on_notice = self._notice
        animator.reset_calibration()
        animator.set_auto_window(self.config.auto_calibrate_seconds)

    def start(self) -> None:
        """Open the camera, check the avatar and the recording path, load what is missing, open
        the outputs and start the threads; the cheap checks fail before the model loads."""
        if self._started:
            return
        cfg = self.config
        capture = self._open_camera()
        self._capture = capture
        try:
            self._get_ready()
        except BaseException:
            capture.stop()
            self.stop_recording()
            raise
        self._worker = InferenceWorker(capture, self._framing, self.animator, cfg, publish=self._publish,
                                       get_avatar=lambda: self._avatar, stabilizer=self._stabilizer,
                                       notice=self._notice)
        self._started = True
        self._framing.start_async()
        self._worker.start()
        capture.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop every thread (joined within ~timeout) and close the outputs."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        for part in (self._capture, self._worker, self._framing):
            if part is not None:
                part.stop(timeout=0)
        for thread in self._stream_threads():  # the recorder ends in stop_recording()
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(max(0.01, deadline - time.monotonic()))
        self._framing.stop(timeout=max(0.01, deadline - time.monotonic()))
        self.stop_recording()
        self.set_vcam_enabled(False)
        for sink in list(self._sinks):
            self.remove_sink(sink)

    def _stream_threads(self) -> list[threading.Thread]:
        out = [t for t in (self._capture, self._worker, self._framing.thread) if t is not None]
        return out + list(self._avatar_threads)

    def threads(self) -> list[threading.Thread]:
        """Every thread this pipeline started (all dead after stop())."""
        out = self._stream_threads()
        if self._recorder is not None:
            out.append(self._recorder.thread)
        return out

    # output stage --------------------------------------------------------------------------------
    def add_sink(self, sink: Sink) -> None:
        """Open ``sink`` (``OutputError`` with the fix if it cannot) and send it every output frame
        from now on (``sinks.py``: the protocol and the registry of sink kinds)."""
        sink.open()
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: Sink):
        """Stop sending to ``sink`` and close it; returns what its ``close`` returns."""
        with self._lock:
            if sink not in self._sinks:
                return None
            self._sinks.remove(sink)
        return sink.close()

    def _sink_failed(self, sink: Sink, err: Exception) -> None:
        with self._lock:
            if self._vcam is sink:
                self._vcam, self._vcam_state = None, "error"
        self.remove_sink(sink)
        if isinstance(sink, VirtualCameraSink):
            self._notice(f"virtual camera stopped ({type(err).__name__}: {err}); turn it on again to retry.")
        else:
            self._notice(f"output {type(sink).__name__} stopped ({type(err).__name__}: {err})")

    def _publish(self, bundle: FrameBundle, timings: Timings) -> None:
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink.send(bundle.output)
            except Exception as err:  # noqa: BLE001 - one failing output never stops the others
                self._sink_failed(sink, err)
        self.last_bundle = bundle
        for listener in list(self._listeners):
            try:
                listener(bundle)
            except Exception as err:  # noqa: BLE001
                self._notice(f"a preview listener failed ({type(err).__name__}: {err})")

    # controls ------------------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def calibrate(self) -> None:
        """Take the next framed face as the neutral pose (X); ends auto-calibration and find-best."""
        if self.animator is not None:
            self.animator.calibrate_next()

    def set_find_best(self, enabled: bool) -> None:
        """F: while on, the best-matching frame seen so far is the neutral pose (``match_reading()``
        counts the improvements); off keeps the best one found."""
        if self.animator is not None:
            self.animator.set_find_best(enabled)

    @property
    def find_best(self) -> bool:
        return self.match_reading().mode == FIND_BEST

    def match_reading(self) -> MatchReading:
        """The live pose match (0-100 %), the neutral pose's match and how the neutral was chosen."""
        if self.animator is None:
            return MatchReading(None, None)
        return self.animator.match_reading(time.monotonic())

    @property
    def best_match(self) -> float | None:
        return self.match_reading().best

    def set_auto_calibrate_seconds(self, seconds: float) -> None:
        """The auto-calibration window (the stream's first seconds searched for the best neutral pose)."""
        self.config.auto_calibrate_seconds = float(seconds)
        if self.animator is not None:
            self.animator.set_auto_window(seconds)

    def set_passthrough(self, enabled: bool) -> None:
        self.config.passthrough = bool(enabled)  # the worker reads the config on every frame

    def set_mirror_output(self, enabled: bool) -> None:
        self.config.mirror_output = bool(enabled)

    def set_ai_label(self, enabled: bool) -> None:
        """The "AI" label on outgoing animated frames (virtual camera and recordings)."""
        self.config.ai_label = bool(enabled)

    def set_output_layout(self, layout: str) -> None:
        """picture | fit | face (``config.OUTPUT_LAYOUTS``); the next frame uses it."""
        self.config.output_layout = check_choice("output_layout", layout, OUTPUT_LAYOUTS)

    def set_avatar_detail(self, enabled: bool) -> None:
        """Detail from the avatar picture (``engine/detail.py``); unavailable backends say so once."""
        self.config.avatar_detail = bool(enabled)

    def set_relative(self, enabled: bool) -> None:
        self.config.relative = bool(enabled)
        if self.animator is not None:
            self.animator.motion = RelativeMotion(self.config.relative, self.config.adapt_scale)

    def set_adapt_scale(self, enabled: bool) -> None:
        self.config.adapt_scale = bool(enabled)
        if self.animator is not None:
            self.animator.motion = RelativeMotion(self.config.relative, self.config.adapt_scale)

    def set_stabilize(self, strength: float) -> None:
        """Keypoint smoothing strength in [0, 1]; 0 turns it off."""
        self.config.stabilize = float(strength)
        self._stabilizer = KeypointStabilizer(strength)
        if self._worker is not None:
            self._worker.stabilizer = self._stabilizer

    # crop controls -------------------------------------------------------------------------------
    def zoom_crop(self, factor: float) -> None:
        """factor > 1 zooms in (the face gets bigger)."""
        self._framing.zoom_by(factor)

    def move_crop(self, dx: float, dy: float) -> None:
        """Shift the crop by fractions of its side (+x right, +y down)."""
        self._framing.move(dx, dy)

    def reset_crop(self) -> None:
        """Zoom 1, no offset, and forget the tracked face."""
        self._framing.reset()

    @property
    def crop_zoom(self) -> float:
        return self._framing.zoom

    @property
    def crop_offset(self) -> tuple[float, float]:
        return self._framing.offset

    def set_framing_mode(self, mode: str) -> None:
        """"auto" follows the face; "manual" is a fixed centred crop."""
        self._framing.mode = mode
        self.config.framing = mode

    # outputs -------------------------------------------------------------------------------------
    def set_vcam_enabled(self, enabled: bool) -> str | None:
        """Turn the virtual camera on or off; None on success, else the one-line fix."""
        with self._lock:
            if not enabled:
                if self._vcam is not None:
                    self.remove_sink(self._vcam)
                self._vcam, self._vcam_state = None, "off"
                return None
            if self._vcam is not None:
                return None
            cfg = self.config
            sink = make_sink("virtual-camera", size=tuple(cfg.vcam_size), fps=cfg.vcam_fps, backend=cfg.vcam_backend)
            try:
                self.add_sink(sink)
            except OutputError as err:
                self._vcam_state = "unavailable"
                return str(err)
            self._vcam, self._vcam_state = sink, "on"
            return None

    @property
    def vcam_device(self) -> str:
        with self._lock:
            return self._vcam.device if self._vcam is not None else ""

    def start_recording(self, path: str | os.PathLike) -> None:
        """Record the output to an mp4 while streaming; raises OutputError for an unusable path."""
        self.stop_recording()
        sink = make_sink("file", path=os.fspath(path), fps=self.config.vcam_fps, on_error=self._notice)
        self.add_sink(sink)
        with self._lock:
            self._recorder = sink

    def stop_recording(self) -> str | None:
        """Finish the recording; returns the saved file's path (None if nothing was saved)."""
        with self._lock:
            sink, self._recorder = self._recorder, None
        if sink is None:
            return None
        saved = self.remove_sink(sink)
        self._recorded_frames = sink.frames
        return saved

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    # avatars -------------------------------------------------------------------------------------
    def _cached(self, image) -> AvatarPicture | None:
        key = _avatar_key(image)
        if key is not None:
            return self._avatar_cache.get(key)
        # the file is gone (deleted or on an unplugged drive): reuse what was prepared from it
        return self._avatar_by_path.get(str(Path(image).expanduser().resolve()))

    def _prepare(self, image, picture: np.ndarray | None = None) -> AvatarPicture:
        """The avatar record (the picture framed for the model's size, the animator's source), cached."""
        cached = self._cached(image)
        if cached is not None:
            return cached
        key = _avatar_key(image)
        framed = frame_avatar(image if picture is None else picture, self.animator.size)
        prepared = replace(framed, source=self.animator.prepare_source(framed.model_input))
        self._avatar_cache[key] = prepared
        if isinstance(key, FileIdentity):
            self._avatar_by_path[key.path] = prepared
        return prepared

    def _apply(self, avatar: AvatarPicture) -> None:
        self.animator.use_source(avatar.source)
        self._avatar = avatar
        if self._worker is not None:
            self._worker.avatar_changed()

    @property
    def avatar(self) -> AvatarPicture | None:
        """The current avatar: its whole picture, the model's crop in it, the model's input."""
        return self._avatar

    @property
    def avatar_image(self) -> np.ndarray | None:
        """The current avatar as the model sees it (model size, uint8)."""
        return self._avatar.model_input if self._avatar is not None else None

    def _load_avatar(self, image, request: int) -> None:
        try:
            prepared = self._prepare(image)
            worker, cfg = self._worker, self.config
            if worker is not None:  # the placement too, so the switch costs the stream nothing
                worker.stage.prepare(prepared, layout=cfg.output_layout, size=tuple(cfg.vcam_size))
            if request == self._avatar_request and not self._stopped:
                self._apply(prepared)
        except Exception as err:  # noqa: BLE001
            name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "the picture"
            detail = str(err) if isinstance(err, AvatarcamError) else f"{type(err).__name__}: {err}"
            self._notice(f"avatar {name} failed to load: {detail}")
        finally:
            self._avatar_threads[:] = [t for t in self._avatar_threads if t is not threading.current_thread()]

    def set_avatar(self, image: str | os.PathLike | np.ndarray) -> None:
        """Switch avatar (a path or an RGB array); returns at once. The avatar is prepared on a
        short-lived thread and cached, so switching back to it is instant. Failures -> on_notice."""
        self._avatar_request += 1
        if self.animator is None:  # not started: remember it for start()
            self.config.avatar = image
            return
        cached = self._cached(image)
        if cached is not None:
            self._apply(cached)
            return
        thread = threading.Thread(target=self._load_avatar, args=(image, self._avatar_request),
                                  name="avatarcam-avatar", daemon=True)
        self._avatar_threads.append(thread)
        thread.start()

    # stats ---------------------------------------------------------------------------------------
    def stats(self) -> PipelineStats:
        w, cap, anim, recorder, bundle = self._worker, self._capture, self.animator, self._recorder, self.last_bundle
        t = w.timings if w is not None else Timings()
        return PipelineStats(
            **asdict(t), fps=w.fps if w is not None else 0.0,
            dropped=w.dropped if w is not None else 0, frames_out=w.frames_out if w is not None else 0,
            frames_captured=cap.frames_read if cap is not None else 0,
            recorded_frames=recorder.frames if recorder is not None else self._recorded_frames,
            camera_state=cap.state if cap is not None else (FAILED if self._stopped else OPENING),
            vcam_state=self._vcam_state,
            device=anim.options.device if anim is not None else "",
            precision=anim.options.precision if anim is not None else "",
            calibrated=bool(anim is not None and anim.is_calibrated),  # remote image mode: the worker's word
            passthrough=self.config.passthrough, face_found=bool(bundle is not None and bundle.face_found),
            **self._match_stats(),
        )

    def _match_stats(self) -> dict:
        reading = self.match_reading()
        return {"match": reading.match, "best_match": reading.best, "calibration": reading.mode}
