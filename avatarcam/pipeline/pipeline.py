"""The real-time pipeline: camera -> face framing -> model -> virtual camera / recording / preview.

Threads: capture (newest frame only), face detection (newest frame only), inference (framing,
model and outputs for the newest frame), short-lived avatar preparation, and the recorder.
``Pipeline`` composes them and is what the CLI (``avatarcam run``) and the window drive.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine import EngineOptions, RelativeMotion
from ..errors import AvatarcamError, OutputError
from ..imaging import IMAGE_SUFFIXES, load_image
from ..paths import bundled_avatars_dir
from .capture import FAILED, OPENING, CaptureThread, Opener
from .config import PipelineConfig
from .framing import CROP_SIZE, FaceDetector, FaceFramer, crop_portrait, make_detector
from .loading import load_animator
from .outputs import FileSink, VirtualCameraSink, to_uint8
from .stabilizer import KeypointStabilizer
from .worker import FrameBundle, InferenceWorker, Timings

Listener = Callable[[FrameBundle], None]


@dataclass
class PipelineStats:
    fps: float = 0.0  # output frames per second
    model_ms: float = 0.0
    framing_ms: float = 0.0
    capture_age_ms: float = 0.0
    output_ms: float = 0.0
    latency_ms: float = 0.0  # camera frame captured -> every output done
    dropped: int = 0  # camera frames never processed (the model was busy)
    frames_out: int = 0
    camera_state: str = OPENING  # opening | running | retrying | failed | ended
    vcam_state: str = "off"  # off | on | unavailable | error
    device: str = ""
    precision: str = ""
    calibrated: bool = False
    passthrough: bool = False


def default_avatar() -> str | np.ndarray:
    """The first bundled avatar in ``avatars/``, else the astronaut portrait."""
    folder = bundled_avatars_dir()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                return str(path)
    from ..demo import astronaut_face

    return astronaut_face(CROP_SIZE)


def prepare_avatar_image(image: str | os.PathLike | np.ndarray) -> np.ndarray:
    """A path or an array -> the 256x256 uint8 avatar. A picture of exactly 256x256 is taken as
    already framed; anything else is cropped around its face (``crop_portrait``)."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[:2] == (CROP_SIZE, CROP_SIZE):
        from ..imaging import to_rgb_float

        return to_uint8(to_rgb_float(arr))
    return crop_portrait(arr)


def _avatar_key(image: str | os.PathLike | np.ndarray) -> str:
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser().resolve()
        try:
            stat = path.stat()
            return f"file:{path}:{stat.st_mtime_ns}:{stat.st_size}"
        except OSError:
            return f"file:{path}"
    arr = np.ascontiguousarray(image)
    return f"array:{arr.shape}:{arr.dtype}:{hashlib.sha1(arr.tobytes()).hexdigest()}"


class Pipeline:
    """See ``docs/pipeline.md``. Typical use::

        p = Pipeline(PipelineConfig(camera="0", avatar="me.png"))
        p.add_listener(show); p.start(); ...; p.stop()

    ``start()`` raises ``AvatarcamError`` (one line with the fix) when the checkpoint, the avatar
    or the camera cannot be opened at all; later problems become ``on_notice`` messages.
    """

    def __init__(self, config: PipelineConfig | None = None, animator=None, *, opener: Opener | None = None,
                 detector: FaceDetector | None = None) -> None:
        self.config = cfg = config or PipelineConfig()
        self.animator = animator
        self.on_notice: Callable[[str], None] | None = None
        self.notices: list[str] = []
        self._opener = opener
        self._detector = detector
        self.framing = FaceFramer(detector, mode=cfg.framing, zoom=cfg.zoom, offset=cfg.offset)
        self.stabilizer = KeypointStabilizer(cfg.stabilize)
        self.capture: CaptureThread | None = None
        self.worker: InferenceWorker | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._vcam: VirtualCameraSink | None = None
        self._vcam_state = "off"
        self._recorder: FileSink | None = None
        self._passthrough = bool(cfg.passthrough)
        self._mirror = bool(cfg.mirror_output)
        self._avatar_cache: dict[str, tuple[object, np.ndarray]] = {}
        self._avatar_image = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
        self._avatar_request = 0
        self._avatar_threads: list[threading.Thread] = []
        self._started = False
        self._stopped = False
        self.last_bundle: FrameBundle | None = None

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

    def _on_camera_state(self, state: str, message: str) -> None:
        if message:
            self._notice(message)

    # lifecycle -----------------------------------------------------------------------------------
    def _load_animator(self):
        cfg = self.config
        return load_animator(cfg.checkpoint, EngineOptions(device=cfg.device, precision=cfg.precision),
                             motion=RelativeMotion(cfg.relative, cfg.adapt_scale), notice=self._notice)

    def start(self) -> None:
        if self._started:
            return
        cfg = self.config
        if self.animator is None:
            self.animator = self._load_animator()
        if self.framing._detector is None:
            self.framing._detector = make_detector(cfg.detector, notice=self._notice)
        # the first avatar is prepared here so the first output frame already shows it
        self._use_avatar(cfg.avatar if cfg.avatar is not None else default_avatar())
        capture = CaptureThread(cfg.camera, tuple(cfg.capture_size), cfg.capture_fps, loop=cfg.loop_video,
                                opener=self._opener, on_state=self._on_camera_state)
        capture.open()  # CameraError now, with its fix, if the camera cannot be opened at all
        self.capture = capture
        try:
            if cfg.record:
                self.start_recording(cfg.record)
            if cfg.vcam:
                message = self.set_vcam_enabled(True)
                if message:
                    self._notice(message)
        except AvatarcamError:
            capture.stop()
            self.stop_recording()
            raise
        self.worker = InferenceWorker(capture, self.framing, self.animator, publish=self._publish,
                                      get_avatar=lambda: self._avatar_image, out_size=tuple(cfg.vcam_size),
                                      stabilizer=self.stabilizer if self.stabilizer.enabled else None,
                                      notice=self._notice)
        self.worker.passthrough = self._passthrough
        self.worker.mirror = self._mirror
        self._started = True
        self.framing.start_async()
        self.worker.start()
        capture.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop every thread (joined within ~timeout) and close the outputs."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        left = lambda: max(0.01, deadline - time.monotonic())  # noqa: E731
        if self.capture is not None:
            self.capture.stop(timeout=0)
        if self.worker is not None:
            self.worker.stop(timeout=0)
        self.framing.stop(timeout=0)
        for thread in (self.capture, self.worker, self.framing._thread):
            if thread is not None and thread.is_alive():
                thread.join(left())
        self.framing.stop(timeout=left())
        for thread in list(self._avatar_threads):
            thread.join(left())
        self.stop_recording()
        with self._lock:
            if self._vcam is not None:
                self._vcam.close()
                self._vcam = None
                self._vcam_state = "off"

    def threads(self) -> list[threading.Thread]:
        """Every thread this pipeline started (for tests: all must be dead after stop())."""
        out = [t for t in (self.capture, self.worker, self.framing._thread) if t is not None]
        out += list(self._avatar_threads)
        if self._recorder is not None:
            out.append(self._recorder._thread)
        return out

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # output stage --------------------------------------------------------------------------------
    def _publish(self, bundle: FrameBundle, timings: Timings) -> None:
        with self._lock:
            vcam, recorder = self._vcam, self._recorder
        if vcam is not None:
            try:
                vcam.send(bundle.output)
            except Exception as err:  # noqa: BLE001
                with self._lock:
                    if self._vcam is vcam:
                        self._vcam = None
                        self._vcam_state = "error"
                vcam.close()
                self._notice(f"virtual camera stopped ({type(err).__name__}: {err}); turn it on again to retry.")
        if recorder is not None:
            recorder.write(bundle.output, bundle.t_capture)
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
        """Take the next framed face as the neutral pose."""
        if self.worker is not None:
            self.worker.request_calibration()
        elif self.animator is not None:
            self.animator.reset_calibration()

    def set_passthrough(self, enabled: bool) -> None:
        self._passthrough = bool(enabled)
        if self.worker is not None:
            self.worker.passthrough = self._passthrough

    def set_mirror_output(self, enabled: bool) -> None:
        self._mirror = bool(enabled)
        if self.worker is not None:
            self.worker.mirror = self._mirror

    def set_vcam_enabled(self, enabled: bool) -> str | None:
        """Turn the virtual camera on or off; None on success, else the one-line fix."""
        with self._lock:
            if not enabled:
                if self._vcam is not None:
                    self._vcam.close()
                self._vcam, self._vcam_state = None, "off"
                return None
            if self._vcam is not None:
                return None
            cfg = self.config
            sink = VirtualCameraSink(tuple(cfg.vcam_size), cfg.vcam_fps, cfg.vcam_backend)
            try:
                sink.open()
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
        sink = FileSink(os.fspath(path), self.config.vcam_fps, on_error=self._notice)
        with self._lock:
            self._recorder = sink

    def stop_recording(self) -> str | None:
        """Finish the recording; returns the saved file's path (None if nothing was saved)."""
        with self._lock:
            sink, self._recorder = self._recorder, None
        return sink.close() if sink is not None else None

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    # avatars -------------------------------------------------------------------------------------
    def _prepare(self, image) -> tuple[object, np.ndarray]:
        key = _avatar_key(image)
        cached = self._avatar_cache.get(key)
        if cached is not None:
            return cached
        picture = prepare_avatar_image(image)
        prepared = self.animator.prepare_source(picture)
        self._avatar_cache[key] = (prepared, picture)
        return prepared, picture

    def _apply(self, prepared, picture: np.ndarray) -> None:
        self.animator.use_source(prepared)
        self._avatar_image = picture
        if self.worker is not None:
            self.worker.avatar_changed()

    def _use_avatar(self, image) -> None:
        self._apply(*self._prepare(image))

    @property
    def avatar_image(self) -> np.ndarray:
        return self._avatar_image

    def set_avatar(self, image: str | os.PathLike | np.ndarray) -> None:
        """Switch avatar (a path or an RGB array); returns at once. The avatar is prepared on a
        short-lived thread and cached, so switching back to it is instant. Failures -> on_notice."""
        self._avatar_request += 1
        request = self._avatar_request
        if self.animator is None:  # not started: remember it for start()
            self.config.avatar = image
            return
        key = _avatar_key(image)
        cached = self._avatar_cache.get(key)
        if cached is None and key.startswith("file:") and key.count(":") == 1:
            # the file is gone (deleted or on an unplugged drive): reuse what was prepared from it
            versions = [v for k, v in self._avatar_cache.items() if k.startswith(key + ":")]
            cached = versions[-1] if versions else None
        if cached is not None:
            self._apply(*cached)
            return

        def work() -> None:
            try:
                prepared, picture = self._prepare(image)
                if request == self._avatar_request and not self._stopped:
                    self._apply(prepared, picture)
            except Exception as err:  # noqa: BLE001
                name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "the picture"
                detail = str(err) if isinstance(err, AvatarcamError) else f"{type(err).__name__}: {err}"
                self._notice(f"avatar {name} failed to load: {detail}")
            finally:
                self._avatar_threads[:] = [t for t in self._avatar_threads if t is not threading.current_thread()]

        thread = threading.Thread(target=work, name="avatarcam-avatar", daemon=True)
        self._avatar_threads.append(thread)
        thread.start()

    # stats ---------------------------------------------------------------------------------------
    def stats(self) -> PipelineStats:
        w, cap, anim = self.worker, self.capture, self.animator
        t = w.timings if w is not None else Timings()
        return PipelineStats(
            fps=w.fps if w is not None else 0.0, model_ms=t.model_ms, framing_ms=t.framing_ms,
            capture_age_ms=t.capture_age_ms, output_ms=t.output_ms, latency_ms=t.latency_ms,
            dropped=w.dropped if w is not None else 0, frames_out=w.frames_out if w is not None else 0,
            camera_state=cap.state if cap is not None else (FAILED if self._stopped else OPENING),
            vcam_state=self._vcam_state,
            device=anim.options.device if anim is not None else "",
            precision=anim.options.precision if anim is not None else "",
            calibrated=bool(anim is not None and anim.is_calibrated),
            passthrough=self._passthrough,
        )
