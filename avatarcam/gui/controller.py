"""Owns the headless pipeline for the window; all slow work runs on one worker thread.

Loading the checkpoint, opening the camera and stopping a pipeline happen on the worker thread
``avatarcam-gui-worker``, one job at a time. Results come back as Qt signals (queued onto the GUI
thread). Frames arrive from a pipeline thread; only the newest is kept, and the GUI is told
once (``frameReady``) until it takes it, so a slow GUI drops frames instead of queueing them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

from ..errors import AvatarcamError, CameraError, CheckpointError
from ..paths import file_identity
from ..settings import Settings, checkpoint_path

WORKER_PREFIX = "avatarcam-gui-worker"


class RateMeter:
    """Events per second over the last ``span_s`` seconds; 0 when fewer than two fall in it.
    Thread-safe: ticks come from a pipeline thread, reads from the GUI thread."""

    def __init__(self, span_s: float = 2.0) -> None:
        self.span_s = span_s
        self._times: deque[float] = deque(maxlen=2048)
        self._lock = threading.Lock()

    def tick(self, t: float | None = None) -> None:
        with self._lock:
            self._times.append(time.monotonic() if t is None else t)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._times if 0.0 <= now - t <= self.span_s]
        span = recent[-1] - recent[0] if len(recent) >= 2 else 0.0
        return (len(recent) - 1) / span if span > 0 else 0.0


class PipelineController(QObject):
    frameReady = pyqtSignal()  # noqa: N815 - a new bundle is waiting in take_frame()
    notice = pyqtSignal(str)  # a one-line message from the pipeline (e.g. the virtual-camera fix)
    busy = pyqtSignal(str)  # what the worker is doing ("Loading the model...")
    started = pyqtSignal(object, int)  # (pipeline, generation)
    failed = pyqtSignal(str, str, int)  # (kind: "checkpoint" | "camera" | "other", message, generation)
    checkpointChecked = pyqtSignal(str, str)  # noqa: N815 - (path, error or "")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=WORKER_PREFIX)
        self._generation = 0
        self._closing = False
        self._lock = threading.Lock()
        self._latest: Any = None
        self._pending = False
        # worker-thread state
        self._running = None  # the pipeline the worker started last
        self._animator = None
        self._animator_key: tuple | None = None
        self._remote = None  # the RemoteAnimator of the running pipeline when the model runs on a worker
        self.vcam_backend: str | None = None  # a pyvirtualcam backend name (tests); None = the OS default
        self.animated = RateMeter()  # frames the model animated (frames without a face are held, not counted)

    @property
    def generation(self) -> int:
        return self._generation

    # frames (any thread -> GUI) -----------------------------------------------------------
    def _on_bundle(self, bundle, generation: int) -> None:
        if generation != self._generation or self._closing:
            return
        if bundle.face_found:
            self.animated.tick()
        with self._lock:
            self._latest = bundle
            if self._pending:
                return
            self._pending = True
        self._emit(self.frameReady)

    def animated_fps(self) -> float:
        return self.animated.rate()

    def take_frame(self):
        """The newest bundle (or None); called on the GUI thread after ``frameReady``."""
        with self._lock:
            bundle, self._latest, self._pending = self._latest, None, False
        return bundle

    def _on_notice(self, text: str, generation: int) -> None:
        if generation == self._generation and not self._closing:
            self._emit(self.notice, str(text))

    # jobs (GUI thread submits) ------------------------------------------------------------
    def start(self, settings: Settings, avatar: str | None) -> int:
        """(Re)start the pipeline with these settings; returns the job's generation."""
        self._generation += 1
        gen = self._generation
        self.animated = RateMeter()
        if not self._closing:
            self._executor.submit(self._job_start, settings.copy(), avatar, gen)
        return gen

    def check_checkpoint(self, path: str, settings: Settings) -> None:
        """Validate a checkpoint by loading it; ``checkpointChecked`` says how it went."""
        if not self._closing:
            self._executor.submit(self._job_check, path, settings.copy())

    def shutdown(self) -> None:
        """Stop everything and wait for the worker; called when the window closes."""
        if self._closing:
            return
        self._closing = True
        self._generation += 1
        self._executor.submit(self._stop_running)
        self._executor.shutdown(wait=True, cancel_futures=False)
        with self._lock:
            self._latest = None

    # worker thread ------------------------------------------------------------------------
    def _emit(self, signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the controller or the window was deleted
            pass

    def _stop_running(self) -> None:
        p, self._running = self._running, None
        remote, self._remote = self._remote, None
        if p is not None:
            try:
                p.stop(timeout=2.0)
            except Exception:  # noqa: BLE001 - stopping must never raise into the GUI
                pass
        if remote is not None:
            remote.close()

    def _load_animator(self, path: Path, settings: Settings):
        from ..pipeline.loading import load_animator

        options = settings.engine_options()
        key = (file_identity(path), options)
        if key != self._animator_key or self._animator is None:
            self._emit(self.busy, f"Loading the model {path.name}...")
            self._animator, self._animator_key = None, None
            self._animator = load_animator(path, options, notice=lambda text: self._emit(self.notice, text))
            self._animator_key = key
        return self._animator

    def _job_check(self, path: str, settings: Settings) -> None:
        if self._closing:
            return
        try:
            self._load_animator(Path(path).expanduser(), settings)
        except AvatarcamError as err:
            self._emit(self.checkpointChecked, path, str(err))
        except Exception as err:  # noqa: BLE001 - show it, never crash the window
            self._emit(self.checkpointChecked, path, f"{path}: could not be loaded ({type(err).__name__}: {err}).")
        else:
            self._emit(self.checkpointChecked, path, "")

    def _job_start(self, settings: Settings, avatar: str | None, gen: int) -> None:
        self._stop_running()
        if self._closing or gen != self._generation:
            return
        animator = self._job_load(settings, gen)
        if animator is None or self._closing or gen != self._generation:
            return
        self._emit(self.busy, "Opening the camera...")
        try:
            self._running = self._open_pipeline(settings, avatar, animator, gen)
        except Exception as err:  # noqa: BLE001 - every failure is shown in the window
            self._stop_running()
            if isinstance(err, CameraError):
                self._emit(self.failed, "camera", str(err), gen)
            elif isinstance(err, AvatarcamError):
                self._emit(self.failed, "other", str(err), gen)
            else:
                self._emit(self.failed, "other", f"The pipeline could not start ({type(err).__name__}: {err}).", gen)
            return
        if self._closing or gen != self._generation:
            self._stop_running()
            return
        self._emit(self.started, self._running, gen)

    def _job_load(self, settings: Settings, gen: int):
        """The animator for these settings, or None after emitting ``failed``."""
        if settings.model_on == "remote":
            return self._connect_remote(settings, gen)
        path = checkpoint_path(settings)
        if not path.is_file():
            from ..engine.checkpoint import where_to_get

            self._emit(self.failed, "checkpoint", f"{path}: checkpoint not found; {where_to_get()}.", gen)
            return None
        try:
            return self._load_animator(path, settings)
        except CheckpointError as err:
            self._emit(self.failed, "checkpoint", str(err), gen)
        except Exception as err:  # noqa: BLE001
            self._emit(self.failed, "checkpoint", f"{path}: could not be loaded ({type(err).__name__}: {err}).", gen)
        return None

    def _connect_remote(self, settings: Settings, gen: int):
        """The model step on an `avatarcam serve` worker (docs/remote.md); link changes become notices."""
        from ..remote.cli import connect_remote

        self._emit(self.busy, f"Connecting to the worker {settings.remote_url or ''}...")
        try:
            self._remote = connect_remote(settings.remote_url, settings.remote_token, checkpoint_path(settings))
        except AvatarcamError as err:
            self._emit(self.failed, "other", str(err), gen)
            return None
        return self._remote  # its notices reach the window through the pipeline (Pipeline._wire_animator)

    def _open_pipeline(self, settings: Settings, avatar: str | None, animator, gen: int):
        from ..pipeline import Pipeline

        config = replace(settings.pipeline_config(), avatar=avatar, checkpoint=str(checkpoint_path(settings)),
                         vcam_backend=self.vcam_backend)
        p = Pipeline(config, animator=animator)
        self._running = p  # stopped by the caller if start() raises
        p.set_relative(settings.relative)  # the animator is cached across restarts
        p.set_adapt_scale(settings.adapt_scale)
        p.on_notice = lambda text, g=gen: self._on_notice(text, g)
        p.add_listener(lambda bundle, g=gen: self._on_bundle(bundle, g))
        p.start()
        return p
