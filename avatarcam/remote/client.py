"""RemoteAnimator: the per-frame model step on a remote worker, in place of the local Animator.

It satisfies the engine's animator contract (:class:`~avatarcam.engine.protocols.AnimatorProtocol`),
but the decoder runs on an ``avatarcam serve`` worker. In ``keypoints`` mode (the default when a
checkpoint is at hand) the keypoint detector, the stabiliser and the neutral pose
(:class:`~avatarcam.engine.neutral.NeutralPose`) stay here and only ~270 bytes of keypoints go up per
frame; in ``image`` mode a JPEG crop goes up, the worker's session keeps the neutral pose, the user's
X / F / auto window reach it (``Flag.CALIBRATE``, "neutral" messages) and its reading comes back
("pose" messages).

A background thread runs one asyncio loop with the WebSocket: at most ``max_in_flight`` frames
travel at once and a newer frame replaces one still waiting to be sent (newest wins); a heartbeat
measures the round trip and notices a dead link; a lost worker is re-dialled with backoff (state
"reconnecting"). ``animate`` returns a picture only when one arrived since the last call, else None
(the pipeline then publishes and counts nothing): no held copy is ever passed off as a new frame.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..engine import Animator, EngineOptions, Keypoints, RelativeMotion
from ..engine.neutral import MatchReading, NeutralPose
from ..engine.options import check_choice
from ..errors import AvatarcamError
from ..imaging import load_image, resize_square, to_rgb_float, to_uint8
from .protocol import (
    DEFAULT_QUALITY,
    DOWNLINKS,
    MAX_MESSAGE_BYTES,
    MODES,
    MULTIPLEX_HEADER,
    QUALITY_RANGE,
    Flag,
    Frame,
    Kind,
    ProtocolError,
    avatar_id,
    control,
    decode_picture,
    encode_picture,
    hello,
    keypoints_from_json,
    pack_keypoints,
    parse_control,
    unpack_frame,
)

UPLINK_JPEG_QUALITY = 90  # image mode: the face crop
REFUSAL_CODES = (4400, 4401, 1009)  # close codes the worker uses for a fatal ProtocolError
DIRECT_DIAL_S = 2.0  # a replica port that does not answer by then is firewalled: stay on the proxy
CLOSE_WAIT_S = 0.5  # a closing handshake the worker does not answer (it hung) is not waited for longer
NOT_RUNNING_HINT = "is `avatarcam serve` running there?"


class Refused(Exception):
    """The worker said no (wrong token, bad avatar): retrying the same thing will not help."""


def describe_failure(err: BaseException, timeout_s: float) -> str:
    """One line for a failed or lost link, without Python's exception text."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

    if isinstance(err, (Refused, ConnectionError)) and not isinstance(err, OSError):
        return str(err)
    if isinstance(err, ProtocolError):
        return err.message
    if isinstance(err, ConnectionRefusedError):
        return f"connection refused; {NOT_RUNNING_HINT}"
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout_s:g} s; {NOT_RUNNING_HINT}"
    if isinstance(err, InvalidStatus):
        return f"HTTP {err.response.status_code} instead of a WebSocket session; {NOT_RUNNING_HINT}"
    if isinstance(err, ConnectionClosed):
        return "the worker closed the connection"
    if isinstance(err, InvalidHandshake):
        return f"not an avatarcam worker (the WebSocket handshake failed); {NOT_RUNNING_HINT}"
    if isinstance(err, OSError):
        return f"cannot reach it ({(err.strerror or type(err).__name__).lower()}); {NOT_RUNNING_HINT}"
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'failed'}"


@dataclass(frozen=True)
class RemoteOptions:
    """How to reach and use a worker. Validated on construction (one-line AvatarcamError)."""

    url: str  # ws://host:port or wss://host:port
    token: str
    mode: str = "keypoints"
    downlink: str = "jpeg"
    quality: int = DEFAULT_QUALITY
    max_in_flight: int = 2
    heartbeat_s: float = 1.0
    timeout_s: float = 5.0  # no word from the worker for this long: the link is dead
    backoff_s: tuple[float, float] = (0.25, 5.0)  # first and longest wait between reconnects
    frame_wait_s: float = 0.05  # animate() waits this long for a fresh picture before returning None
    direct: bool = True  # move the stream to the replica's own port when the worker offers one (ws:// only)

    def __post_init__(self) -> None:
        check_choice("uplink mode", self.mode, MODES)
        check_choice("downlink", self.downlink, DOWNLINKS)
        if not self.url.startswith(("ws://", "wss://")):
            raise AvatarcamError(f"remote worker address {self.url!r} must start with ws:// or wss://")
        if not QUALITY_RANGE[0] <= self.quality <= QUALITY_RANGE[1]:
            raise AvatarcamError(f"JPEG quality {self.quality} is out of range; use {QUALITY_RANGE[0]} to "
                                 f"{QUALITY_RANGE[1]}.")
        if self.max_in_flight not in (1, 2):
            raise AvatarcamError("max_in_flight must be 1 or 2")

    @property
    def session_url(self) -> str:
        return self.url.rstrip("/") + "/session"


@dataclass
class RemoteStats:
    state: str = "connecting"  # connecting | connected | reconnecting | refused | closed
    rtt_ms: float = 0.0  # median of the last round trips
    model_ms: float = 0.0  # the model step of the last picture on the worker (the rest of rtt is transport)
    in_flight: int = 0
    sent: int = 0
    received: int = 0
    dropped: int = 0  # replaced before sending, answered by a newer picture, or lost with the link
    reconnects: int = 0
    ready_count: int = 0  # sessions the worker accepted (the first, then one per reconnect)
    replica: str = ""
    engine: str = ""  # what runs the model on the worker, e.g. "torch-cuda fp16"
    path: str = ""  # "direct" (straight to the replica) or "proxy" (through the Serve proxy)
    error: str = ""


@dataclass(frozen=True)
class RemoteEngine:
    device: str
    precision: str
    backend: str


@dataclass(frozen=True)
class RemoteSource:
    """An avatar as the worker gets it: a PNG at the model's size and its content address."""

    image: np.ndarray  # SxSx3 float32: the avatar at the model's size
    data: bytes
    key: str
    keypoints: Keypoints | None  # the avatar's pose from the local detector (pose match); None in image mode


class RemoteAnimator:
    def __init__(self, options: RemoteOptions, detector: Animator | None = None,
                 motion: RelativeMotion | None = None, size: int = 256) -> None:
        if options.mode == "keypoints" and detector is None:
            raise AvatarcamError("keypoints mode needs the keypoint detector: pass --checkpoint, or use image mode")
        self.remote = options
        self._detector = detector
        self.size = detector.size if detector is not None else size
        self._stats = RemoteStats()
        self.on_notice: Callable[[str], None] | None = None  # one line: link lost / refused / back, a repair
        # keypoints mode: the neutral pose is kept here; image mode: by the worker's session, whose
        # reading is mirrored in _reading and whose controls are _find_best / _window_s
        self.neutral = NeutralPose(motion, on_notice=self._tell)
        self._reading = MatchReading(None, None)
        self._find_best, self._window_s = False, 0.0
        self._neutral_changed = True  # image mode: send the "neutral" controls at the next chance
        self._lock = threading.Condition()  # guards everything below, shared with the loop thread
        self._source: RemoteSource | None = None
        self._source_kp: Keypoints | None = None  # the avatar's keypoints, from the worker's ready
        self._calibrate_next = False  # image mode: X rides on the next frame
        self._seq = 0
        self._pending: Frame | None = None
        self._in_flight: dict[int, float] = {}
        self._picture: np.ndarray | None = None
        self._picture_seq = self._returned_seq = 0
        self._recent_rtts: deque[float] = deque(maxlen=30)  # pictures and heartbeats: the rtt shown
        self._trips: deque[tuple[float, float]] = deque(maxlen=1000)  # pictures: (round trip, model) ms
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()  # loop side: something to send
        self._restart = asyncio.Event()  # loop side: the avatar changed, dial again
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._connection_loop(),),
                                        name="avatarcam-remote", daemon=True)
        self._closed = False
        self._thread.start()

    @classmethod
    def connect(cls, url: str, token: str, *, checkpoint: str | None = None, avatar=None, wait_s: float = 30.0,
                **options) -> RemoteAnimator:
        """Dial a worker; with a ``checkpoint`` the keypoint detector runs here (keypoints mode).
        With ``avatar`` (path or image), waits until the worker is ready; raises a one-line AvatarcamError."""
        detector = Animator.from_checkpoint(checkpoint, EngineOptions(device="cpu")) if checkpoint else None
        options.setdefault("mode", "keypoints" if detector is not None else "image")
        anim = cls(RemoteOptions(url, token, **options), detector)
        if avatar is not None:
            try:
                anim.set_source(load_image(avatar) if isinstance(avatar, (str, Path)) else avatar)
                anim.wait_ready(wait_s)
            except BaseException:
                anim.close()
                raise
        return anim

    # state ----------------------------------------------------------------------------------
    def stats(self) -> RemoteStats:
        with self._lock:
            return replace(self._stats, in_flight=len(self._in_flight))

    def link_stats(self) -> RemoteStats:
        """The link's figures for the stats overlay (the animator contract)."""
        return self.stats()

    def round_trips(self) -> list[tuple[float, float]]:
        """(round trip, model step on the worker) in ms for the last (up to 1000) pictures, oldest first."""
        with self._lock:
            return list(self._trips)

    def describe(self) -> str:
        """One line for status bars, e.g. "remote torch-cuda fp16 @ ws://gpu:8000 connected, rtt 12 ms"."""
        s = self.stats()
        text = f"remote {s.engine + ' @ ' if s.engine else ''}{self.remote.url} {s.state}"
        return text + (f" ({s.path}), rtt {s.rtt_ms:.0f} ms, {s.in_flight} in flight" if s.state == "connected"
                       else "")

    @property
    def device(self) -> str:
        return "remote"

    @property
    def precision(self) -> str:
        """The worker's precision (from its engine line, e.g. "torch-cuda fp16" -> "fp16"), "" until connected."""
        return self.stats().engine.split(" ")[-1] if self.stats().engine else ""

    @property
    def options(self) -> RemoteEngine:
        """What runs the model, as the pipeline's stats read it from an Animator's ``options``."""
        return RemoteEngine("remote", self.precision, "remote")

    @property
    def has_source(self) -> bool:
        return self._source is not None

    @property
    def ready(self) -> bool:
        """The worker has confirmed the avatar: pictures can come. Until then (or after a refusal) the
        pipeline publishes nothing, so a refused start records nothing."""
        return self._source_kp is not None

    def wait_ready(self, timeout: float) -> None:
        """Block until the worker has the avatar ready; one-line AvatarcamError if refused or unreachable
        (at start-up a failed attempt is reported at once; later, lost links are re-dialled)."""
        with self._lock:
            failed = ("refused", "reconnecting")
            self._lock.wait_for(lambda: self._source_kp is not None or self._stats.state in failed, timeout)
            if self._source_kp is None:
                why = self._stats.error or "no answer"
                raise AvatarcamError(f"remote worker {self.remote.url}: {why}")

    def close(self) -> None:
        self._closed = True
        self._loop.call_soon_threadsafe(self._restart.set)
        self._thread.join(timeout=self.remote.timeout_s)
        with self._lock:
            self._stats.state = "closed"

    # avatar and neutral pose -----------------------------------------------------------------
    def set_motion_output(self, enabled: bool) -> str | None:
        """Detail transfer needs the dense motion field; the worker sends the picture only."""
        return ("detail from the avatar is not available with a remote worker (it sends the picture "
                "only); it stays off.") if enabled else None

    def last_motion(self) -> None:
        return None

    def prepare_source(self, image: np.ndarray) -> RemoteSource:
        rgb = to_uint8(resize_square(to_rgb_float(image), self.size))
        data = encode_picture(rgb, "png")  # lossless: the worker prepares exactly this picture
        keypoints = self._detector.detect(rgb) if self._detector is not None else None
        return RemoteSource(rgb.astype(np.float32) / 255.0, data, avatar_id(data), keypoints)

    def use_source(self, source: RemoteSource) -> None:
        with self._lock:
            self._source, self._source_kp = source, None
            self._picture, self._in_flight = None, {}
        self.neutral.set_avatar(None)  # until the worker sends the new avatar's keypoints
        self._loop.call_soon_threadsafe(self._restart.set)

    def set_source(self, image: np.ndarray) -> RemoteSource:
        source = self.prepare_source(image)
        self.use_source(source)
        return source

    def detect(self, frame: np.ndarray) -> Keypoints:
        if self._detector is None:
            raise AvatarcamError("image mode has no local keypoint detector; use animate(frame)")
        return self._detector.detect(frame)

    @property
    def motion(self) -> RelativeMotion:
        return self.neutral.motion

    @motion.setter
    def motion(self, motion: RelativeMotion) -> None:
        self.neutral.motion = motion  # keypoints mode; applies to the next frame

    @property
    def _image_mode(self) -> bool:
        return self.remote.mode == "image"

    def calibrate(self, frame: np.ndarray | None = None, keypoints: Keypoints | None = None) -> None:
        """This frame (keypoints) is the neutral pose; in image mode the worker takes the next frame."""
        if self._image_mode:
            self.calibrate_next()
            return
        self.neutral.set_neutral(keypoints if keypoints is not None else self.detect(frame))

    def calibrate_next(self) -> None:
        """X: the next frame is the neutral pose (image mode: flagged on the next frame sent)."""
        if self._image_mode:
            self._calibrate_next = True
            return
        self.neutral.calibrate_next()

    def set_find_best(self, enabled: bool) -> None:
        self.neutral.set_find_best(enabled)
        with self._lock:
            self._find_best, self._neutral_changed = bool(enabled), True
        self._loop.call_soon_threadsafe(self._wake.set)

    def set_auto_window(self, seconds: float) -> None:
        self.neutral.window_s = seconds
        with self._lock:
            self._window_s, self._neutral_changed = float(seconds), True
        self._loop.call_soon_threadsafe(self._wake.set)

    def match_reading(self, t: float | None = None) -> MatchReading:
        """Keypoints mode: this client's neutral pose; image mode: the worker's last reading."""
        if self._image_mode:
            with self._lock:
                return self._reading
        return self.neutral.reading(t)

    @property
    def is_calibrated(self) -> bool:
        """A neutral pose is set for the current avatar (image mode: as the worker last said)."""
        return self.match_reading().calibrated

    def reset_calibration(self) -> None:
        self.neutral.reset()
        with self._lock:
            self._reading, self._find_best, self._neutral_changed = MatchReading(None, None), False, True

    def _driving(self, kp: Keypoints, t: float | None) -> Keypoints | None:
        """The keypoints to send: relative to the neutral pose (repaired where degenerate), as
        Animator.animate_keypoints does; None until the worker has confirmed the avatar."""
        with self._lock:
            source = self._source_kp
        if source is None:
            return None
        calibration = self.neutral.observe(kp, time.monotonic() if t is None else t)
        if calibration is None:
            return kp
        return self.motion.apply(source, kp, calibration.neutral, calibration.scale)

    # the per-frame step ----------------------------------------------------------------------
    def animate(self, frame: np.ndarray, *, keypoint_filter=None, t: float | None = None,
                exact: bool = False) -> np.ndarray | None:
        """Animator.animate's contract: a new picture, or None when none arrived since the last call. In
        image mode the filter does not apply (no keypoints here)."""
        if self.remote.mode == "keypoints":
            kp = self.detect(frame)
            return self.animate_keypoints(keypoint_filter(kp) if keypoint_filter is not None else kp, t=t,
                                          exact=exact)
        crop = encode_picture(to_uint8(resize_square(to_rgb_float(frame), self.size)), "jpeg", UPLINK_JPEG_QUALITY)
        flags = Flag.CALIBRATE if self._calibrate_next else 0  # X: this frame is the neutral pose
        self._calibrate_next = False
        return self._picture_for(self._submit(Kind.IMAGE, crop, flags), exact)

    def animate_keypoints(self, kp: Keypoints, *, t: float | None = None, exact: bool = False) -> np.ndarray | None:
        """SxSx3 float32 in [0,1]: the newest picture the worker sent if not returned before, else None
        (``exact``: the one for ``kp``, waited for)."""
        driving = self._driving(kp, t)
        if driving is None:  # the worker has not confirmed the avatar yet
            return self._picture_for(None, False)
        arrays = driving.numpy()
        return self._picture_for(self._submit(Kind.KEYPOINTS, pack_keypoints(arrays["value"],
                                                                              arrays.get("jacobian"))), exact)

    def _submit(self, kind: Kind, payload: bytes, flags: int = 0) -> int:
        with self._lock:
            self._seq += 1
            if self._pending is not None:
                self._stats.dropped += 1
            self._pending = Frame(kind, self._seq, payload, flags)
        self._loop.call_soon_threadsafe(self._wake.set)
        return self._seq

    def _picture_for(self, seq: int | None, exact: bool) -> np.ndarray | None:
        """Wait briefly for a picture not returned before (``exact``: for frame ``seq``); None if none came."""
        with self._lock:
            if exact and seq is not None:
                if not self._lock.wait_for(lambda: self._picture_seq >= seq, self.remote.timeout_s):
                    raise AvatarcamError(f"remote worker {self.remote.url}: no picture for frame {seq} within "
                                         f"{self.remote.timeout_s:g} s ({self._stats.state})")
            elif seq is not None:
                self._lock.wait_for(lambda: self._picture_seq > self._returned_seq, self.remote.frame_wait_s)
            if self._picture is None or (self._picture_seq == self._returned_seq and not exact):
                return None
            self._returned_seq = self._picture_seq
            return self._picture.astype(np.float32) / 255.0

    # the connection (loop thread) ------------------------------------------------------------
    async def _connection_loop(self) -> None:
        delay = self.remote.backoff_s[0]
        while not self._closed:
            self._restart.clear()
            source = self._source
            if source is None:
                await self._restart.wait()
                continue
            readied = self._stats.ready_count
            session = asyncio.ensure_future(self._session(source))
            restart = asyncio.ensure_future(self._restart.wait())
            await asyncio.wait({session, restart}, return_when=asyncio.FIRST_COMPLETED)
            restart.cancel()
            failed = session.done() and not session.cancelled() and session.exception() is not None
            session.cancel()
            await asyncio.gather(session, return_exceptions=True)
            self._link_lost(session.exception() if failed else None)
            if self._stats.ready_count != readied:  # the link worked for a while: start the backoff over
                delay = self.remote.backoff_s[0]
            if self._restart.is_set() or not failed:
                continue
            with self._lock:
                refused = self._stats.state == "refused"
            # +-20% jitter: callers of a restarted worker do not all dial again in the same instant
            await self._sleep_or_restart(None if refused else delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.remote.backoff_s[1])

    async def _sleep_or_restart(self, delay: float | None) -> None:
        try:  # a refusal waits for a new avatar (or close) instead of hammering the worker
            await asyncio.wait_for(self._restart.wait(), delay)
        except TimeoutError:
            pass

    def _link_lost(self, err: BaseException | None) -> None:
        with self._lock:
            self._stats.dropped += len(self._in_flight)
            self._in_flight.clear()
            if isinstance(err, Refused):
                self._stats.state, self._stats.error = "refused", str(err)
            elif err is not None and not self._closed:
                was = self._stats.state
                self._stats.state = "reconnecting"
                self._stats.error = describe_failure(err, self.remote.timeout_s)
                self._stats.model_ms = 0.0  # no model step is running for this caller now
                self._stats.reconnects += 1
                err = err if was != "reconnecting" else None  # tell once per outage, not per attempt
            self._lock.notify_all()
        if err is not None and not self._closed:
            self._tell(f"remote worker {self.remote.url}: {self._stats.state} ({self._stats.error})")

    def _tell(self, message: str) -> None:
        callback = self.on_notice
        if callback is not None:
            with suppress(Exception):  # a UI callback must never break the link
                callback(message)

    async def _session(self, source: RemoteSource) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._talk(source)
        except ConnectionClosed as err:
            if err.rcvd is not None and err.rcvd.code in REFUSAL_CODES:  # the worker closed with a reason
                raise Refused(err.rcvd.reason or f"refused (close code {err.rcvd.code})") from None
            raise

    async def _talk(self, source: RemoteSource) -> None:
        ws, ready = await self._handshake(self.remote.session_url, source)
        path = "proxy"
        try:
            direct = await self._go_direct(ready, source)
            if direct is not None:
                await ws.close()
                (ws, ready), path = direct, "direct"
            self._on_ready(ready, path)
            tasks = [asyncio.ensure_future(t) for t in (self._send_loop(ws), self._receive_loop(ws),
                                                         self._heartbeat(ws))]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
        finally:
            await ws.close()

    async def _handshake(self, url: str, source: RemoteSource):
        """Open a session at ``url``: hello, the avatar if the worker asks for it -> (ws, ready)."""
        import websockets

        headers = {"Authorization": f"Bearer {self.remote.token}", MULTIPLEX_HEADER: source.key}
        # no permessage-deflate: pictures are JPEG already and keypoints are tiny; deflate only costs time
        ws = await websockets.connect(url, additional_headers=headers, max_size=MAX_MESSAGE_BYTES,
                                      open_timeout=self.remote.timeout_s, ping_interval=None, compression=None,
                                      close_timeout=CLOSE_WAIT_S)
        try:  # the proof shows the worker this caller holds the avatar file, not just its id
            challenge = await self._control(ws, ("challenge",))
            await ws.send(hello(challenge, source.data, self.remote.mode, self.remote.downlink, self.remote.quality))
            msg = await self._control(ws, ("ready", "need_avatar"))
            if msg["type"] == "need_avatar":
                await ws.send(Frame(Kind.AVATAR, 0, source.data).pack())
                msg = await self._control(ws, ("ready",))
        except BaseException:
            await ws.close()
            raise
        return ws, msg

    async def _go_direct(self, ready: dict, source: RemoteSource):
        """(ws, ready) of the same session straight on the replica's own port, or None: not offered, not
        wanted, TLS (the replica's port is plain; wss stays on the proxy that terminates it), or not
        reachable from here (a firewall) -- the session then stays on the proxy."""
        parts = urlsplit(self.remote.url)
        if not (self.remote.direct and ready["direct"] and parts.scheme == "ws" and parts.hostname):
            return None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        try:
            ws, direct = await asyncio.wait_for(
                self._handshake(f"ws://{host}:{ready['direct']}/session", source), DIRECT_DIAL_S)
        except Exception:  # noqa: BLE001 - any failure here only means: keep the proxy
            return None
        if direct["replica"] != ready["replica"]:  # some other server on that port: not ours to use
            await ws.close()
            return None
        return ws, direct

    async def _control(self, ws, expected: tuple[str, ...]) -> dict:
        text = await asyncio.wait_for(ws.recv(), self.remote.timeout_s)
        if not isinstance(text, str):
            raise ProtocolError("bad_message", "expected a control message from the worker")
        msg = parse_control(text, expected + ("error",))
        if msg["type"] == "error":
            raise _error(msg)
        return msg

    def _on_ready(self, msg: dict, path: str) -> None:
        value, jacobian = keypoints_from_json(msg["keypoints"])
        with self._lock:
            self._source_kp = Keypoints.from_numpy(value, jacobian)
            self._neutral_changed = True  # a new session on the worker: tell it F and the auto window
            resumed = self._stats.state == "reconnecting"
            self._stats.state, self._stats.replica, self._stats.error = "connected", msg["replica"], ""
            self._stats.path = path
            self._stats.engine = msg["engine"]
            self._stats.ready_count += 1
            self._last_heard = time.monotonic()
            self._lock.notify_all()
        self.neutral.set_avatar(self._source_kp)
        self._wake.set()
        if resumed:
            self._tell(f"remote worker {self.remote.url}: connected again")

    async def _send_loop(self, ws) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            neutral = self._neutral_message()
            if neutral is not None:
                await ws.send(neutral)
            with self._lock:
                frame = self._pending if len(self._in_flight) < self.remote.max_in_flight else None
                if frame is not None:
                    self._pending, frame = None, replace(frame, t_sent=time.monotonic())
                    self._in_flight[frame.seq] = frame.t_sent
                    self._stats.sent += 1
            if frame is not None:
                await ws.send(frame.pack())

    def _neutral_message(self) -> str | None:
        """Image mode: the "neutral" control when F or the auto window changed (or a session began)."""
        with self._lock:
            if not (self._image_mode and self._neutral_changed):
                return None
            self._neutral_changed = False
            return control("neutral", find_best=self._find_best, window_s=self._window_s)

    async def _receive_loop(self, ws) -> None:
        async for message in ws:
            self._last_heard = time.monotonic()
            if isinstance(message, str):
                self._on_control(parse_control(message, ("pong", "error", "pose", "notice")))
            else:
                self._on_picture(unpack_frame(message, (Kind.PICTURE,)))
        raise ConnectionError("the worker closed the connection")

    def _on_control(self, msg: dict) -> None:
        if msg["type"] == "pose":  # image mode: the worker's neutral pose, as the status line shows it
            with self._lock:
                self._reading = MatchReading(msg["match"], msg["best"], msg["mode"], msg["searching"],
                                             msg["improvements"], msg["calibrated"])
            return
        if msg["type"] == "notice":  # e.g. the worker repaired a degenerate neutral pose
            self._tell(f"remote worker: {msg['message']}")
            return
        if msg["type"] == "error":
            if msg["fatal"]:
                raise _error(msg)
            with self._lock:  # a refused frame gets no picture: do not wait for it
                self._stats.error = msg["message"]
                self._stats.dropped += len(self._in_flight)
                self._in_flight.clear()
        elif not self._in_flight:  # an idle link: the heartbeat is the round-trip measurement
            with self._lock:
                self._note_rtt(time.monotonic() - msg["t"])
        self._wake.set()

    def _on_picture(self, frame: Frame) -> None:
        now = time.monotonic()
        picture = decode_picture(frame.payload, self.remote.downlink)
        with self._lock:
            older = [seq for seq in self._in_flight if seq < frame.seq]
            for seq in older:  # newest wins on the worker too: these will never be answered
                del self._in_flight[seq]
            self._stats.dropped += len(older)
            self._in_flight.pop(frame.seq, None)
            if frame.seq > self._picture_seq:
                self._picture, self._picture_seq = picture, frame.seq
                self._stats.received += 1
                self._note_rtt(now - frame.t_sent)
                self._trips.append(((now - frame.t_sent) * 1000, frame.model_ms))
                self._stats.model_ms = frame.model_ms
            self._lock.notify_all()
        self._wake.set()

    def _note_rtt(self, seconds: float) -> None:
        self._recent_rtts.append(seconds * 1000)
        self._stats.rtt_ms = float(np.median(self._recent_rtts))

    async def _heartbeat(self, ws) -> None:
        while True:
            await asyncio.sleep(self.remote.heartbeat_s)
            if time.monotonic() - self._last_heard > self.remote.timeout_s:
                raise TimeoutError(f"no answer from the worker for {self.remote.timeout_s:g} s")
            await ws.send(control("ping", t=time.monotonic()))


def _error(msg: dict) -> Exception:
    """The exception for an ``error`` message: a refusal is not retried; "busy" is (with backoff)."""
    if not msg["fatal"]:
        return ProtocolError(msg["code"], msg["message"])
    return ConnectionError(msg["message"]) if msg["code"] == "busy" else Refused(msg["message"])
