"""The GPU worker: a Ray Serve application with a FastAPI WebSocket ingress.

``AvatarWorker`` replicas each hold one Animator. A calling session is one WebSocket on
``/session``; Ray Serve routes it by the ``serve_multiplexed_model_id`` header (the avatar's sha256)
to a replica that already has that avatar prepared (``@serve.multiplexed``, LRU-bounded per replica).
Frames of all sessions on a replica meet in ``@serve.batch`` and go through ONE batched decoder
forward (``Animator.animate_batch``), each with its own avatar. Avatar files live once per cluster in
the ``AvatarStore`` deployment (content-addressed, bounded bytes, LRU).

With Ray Serve's direct ingress on (``enable_direct_ingress``, before ``ray.init``), every replica
also serves the same app on a port of its own, bound to the proxy's host. A session still starts at
the proxy (token, routing by avatar); its ``ready`` names the replica's own port and the client moves
the stream there, so frames skip the proxy's two hops (docs/remote.md: measured).
"""

# no `from __future__ import annotations`: FastAPI must see the real WebSocket type of the handlers
import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from ray import serve

from ..engine import AnimateJob, Animator, EngineOptions, Keypoints, NeutralPose, PreparedSource
from ..imaging import to_uint8
from . import protocol as wire
from .protocol import Frame, Kind, ProtocolError

APP_NAME = "avatarcam"
SESSIONS_PER_REPLICA = 64  # long-lived WebSockets: each holds one of the replica's ongoing requests
# Serve may hand a replica this many sessions past its cap: they get the "busy" answer instead of
# waiting in Serve's queue in silence
BUSY_HEADROOM = 16
AVATARS_PER_REPLICA = 16  # prepared avatars kept per replica (LRU; a full-size one is a few MB)
STORE_BYTES = 512 << 20  # avatar files kept by the store (LRU)
MAX_BATCH = 8
# 0: a frame never waits for company; frames that arrive while a batch is in the model form the
# next batch, so batches grow exactly when the replica is busy (measured: docs/remote.md)
BATCH_WAIT_S = 0.0
HELLO_TIMEOUT_S = 10.0
HEADER_TIMEOUT_S = 5.0  # a connection's HTTP request headers must be complete by then (slow-header callers)
SESSION_IDLE_S = 30.0
MAX_UPLINK_CROP_PIXELS = 1024 * 1024
# close codes of a fatal ProtocolError; the client does not retry 4400, 4401 and 1009 (refusals)
CLOSE_CODES = {"unauthorized": 4401, "too_large": 1009, "timeout": 4408, "busy": 1013}
# Ray Serve's direct ingress: its switch and the port range replicas take their HTTP port from
DIRECT_INGRESS_ENV = "RAY_SERVE_ENABLE_DIRECT_INGRESS"
DIRECT_PORT_ENV = ("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT")
DIRECT_PORTS = (30000, 31000)  # Serve's own default range
# Serve holds a stopping replica's port open this long for a load balancer to notice; none sits in
# front of these ports (a client whose replica goes re-dials through the proxy), so no wait
DIRECT_DRAIN_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"

app = FastAPI(title="avatarcam worker", docs_url=None, redoc_url=None, openapi_url=None)  # only /session, /healthz
log = logging.getLogger("avatarcam.remote")


def rss_mb() -> float | None:
    """This process's resident memory (Linux), for /healthz and the load test."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


def enable_direct_ingress(ports: tuple[int, int] = DIRECT_PORTS) -> None:
    """Give each replica a port of its own (Ray Serve direct ingress). Call before ``ray.init``: Ray's
    processes read it from the environment they inherit."""
    os.environ[DIRECT_INGRESS_ENV] = "1"
    os.environ[DIRECT_DRAIN_ENV] = "0"
    for name, port in zip(DIRECT_PORT_ENV, ports, strict=True):
        os.environ[name] = str(port)


def direct_port() -> int:
    """This replica's direct-ingress port (the one listening socket of this process in the range), 0 when
    direct ingress is off or the port cannot be told (psutil missing, none or several in the range)."""
    if os.environ.get(DIRECT_INGRESS_ENV) != "1":
        return 0
    try:
        import psutil
    except ImportError:
        return 0
    low, high = (int(os.environ.get(name, default))
                 for name, default in zip(DIRECT_PORT_ENV, DIRECT_PORTS, strict=True))
    ports = {c.laddr.port for c in psutil.Process().net_connections("tcp")
             if c.status == psutil.CONN_LISTEN and low <= c.laddr.port <= high}
    return ports.pop() if len(ports) == 1 else 0


def with_header_deadline(protocol_class: type) -> type:
    """uvicorn's HTTP protocol, closing a connection whose request headers are not complete within
    ``HEADER_TIMEOUT_S`` of connecting (uvicorn has no such limit: a slow-header caller would hold a
    connection for ever). A WebSocket upgrade hands the connection to another protocol: left alone."""

    class HeaderDeadline(protocol_class):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late)

        def _headers_late(self) -> None:
            if self.cycle is None and self.transport.get_protocol() is self and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc) -> None:
            deadline = getattr(self, "_header_deadline", None)
            if deadline is not None:
                deadline.cancel()
            super().connection_lost(exc)

    return HeaderDeadline


def cap_websocket_messages() -> None:
    """Make every uvicorn server this process starts close a WebSocket message over
    ``MAX_MESSAGE_BYTES`` with 1009 before buffering it (uvicorn's default is 16 MiB), and a connection
    whose headers are too slow (``with_header_deadline``). Serve builds its servers (the proxy's, each
    replica's direct port) from ``uvicorn.Config`` and exposes no setting for either, so the class is
    wrapped before they start."""
    import uvicorn

    if getattr(uvicorn.Config, "avatarcam_capped", False):
        return

    class Config(uvicorn.Config):
        avatarcam_capped = True

        def __init__(self, *args, **kwargs) -> None:
            kwargs["ws_max_size"] = wire.MAX_MESSAGE_BYTES
            super().__init__(*args, **kwargs)

        def load(self) -> None:
            super().load()
            self.http_protocol_class = with_header_deadline(self.http_protocol_class)

    uvicorn.Config = Config


def configure_proxy() -> list:
    """Serve's proxy start-up hook (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``, set by
    :func:`avatarcam.remote.ray_setup.prepare_environment`): the proxy's message limit; no middlewares."""
    cap_websocket_messages()
    return []


def replica_grpc_on_loopback() -> None:
    """Serve binds each replica's inter-deployment gRPC server to ``[::]`` (hard-coded in ray 2.60). On
    a node whose address is loopback (``avatarcam serve``'s own Ray) bind it to 127.0.0.1 like the rest."""
    import ray
    from ray.serve._private import replica as serve_replica

    bind = serve_replica.add_port_to_grpc_server
    if ray.util.get_node_ip_address() != "127.0.0.1" or getattr(bind, "loopback", False):
        return

    def on_loopback(server, address: str):
        return bind(server, address.replace("[::]", "127.0.0.1"))

    on_loopback.loopback = True
    serve_replica.add_port_to_grpc_server = on_loopback


def token_digest(token: str) -> str:
    """The server keeps only this (it travels in the deployment's arguments, not the token)."""
    return hashlib.sha256(token.encode()).hexdigest()


@serve.deployment(num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
class AvatarStore:
    """Avatar files by sha256, uploaded once per cluster; least recently used dropped past ``max_bytes``."""

    def __init__(self, max_bytes: int = STORE_BYTES) -> None:
        replica_grpc_on_loopback()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._max_bytes, self._bytes = max_bytes, 0

    def verify(self, key: str, nonce: str, proof: str) -> bool:
        """Whether ``proof`` shows its sender holds the file ``key`` names (the file never leaves the
        store for this). False when the store does not hold it: the caller cannot tell which."""
        data = self._items.get(key)
        expected = wire.avatar_proof(nonce, data if data is not None else b"")
        if data is not None and hmac.compare_digest(expected, proof):
            self._items.move_to_end(key)
            return True
        return False

    def get(self, key: str) -> bytes | None:
        return self._items.get(key)

    def put(self, data: bytes) -> str:
        key = wire.avatar_id(data)
        if key not in self._items:
            self._items[key] = data
            self._bytes += len(data)
        self._items.move_to_end(key)
        while self._bytes > self._max_bytes and len(self._items) > 1:
            self._bytes -= len(self._items.popitem(last=False)[1])
        return key


async def _receive(ws: WebSocket) -> dict:
    msg = await ws.receive()
    if msg["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(msg.get("code", 1000))
    return msg


class Session:
    """One caller. The receiver keeps only the newest unprocessed frame (newest wins: an older one
    waiting is dropped), so a slow replica never builds a queue; the processor renders it."""

    def __init__(self, ws: WebSocket, worker: "AvatarWorker", hello: dict, prepared: PreparedSource) -> None:
        self.ws, self.worker, self.prepared = ws, worker, prepared
        self.mode, self.downlink, self.quality = hello["mode"], hello["downlink"], hello["quality"]
        self.allowed = (Kind.KEYPOINTS,) if self.mode == "keypoints" else (Kind.IMAGE,)
        self._notices: list[str] = []
        # image mode: the client has no keypoints, so the session keeps the neutral pose (engine/neutral.py);
        # its repairs and readings go back to the client as "notice" and "pose" messages
        self.neutral = NeutralPose(worker.animator.motion, on_notice=self._notices.append)
        self.neutral.set_avatar(prepared.keypoints)
        self._latest: Frame | None = None
        self._last_seq = 0
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()

    async def send(self, message: str | bytes) -> None:
        async with self._send_lock:
            if isinstance(message, bytes):
                await self.ws.send_bytes(message)
            else:
                await self.ws.send_text(message)

    async def send_error(self, code: str, message: str) -> None:
        """A non-fatal error: the session goes on."""
        await self.send(wire.control("error", code=code, message=message[:1000], fatal=False))

    async def run(self) -> None:
        processor = asyncio.create_task(self._process())
        try:
            await self._receive_loop()
        finally:
            processor.cancel()
            await asyncio.gather(processor, return_exceptions=True)

    async def _receive_loop(self) -> None:
        while True:  # a caller that sends nothing (not even its 1 s heartbeat) for a while is gone
            msg = await asyncio.wait_for(_receive(self.ws), SESSION_IDLE_S)
            try:
                if msg.get("text") is not None:
                    await self._on_control(wire.parse_control(msg["text"], ("ping", "neutral")))
                else:
                    self._accept(wire.unpack_frame(msg.get("bytes") or b"", self.allowed))
            except ProtocolError as err:
                if err.fatal:
                    raise
                await self.send_error(err.code, err.message)

    async def _on_control(self, msg: dict) -> None:
        if msg["type"] == "ping":
            await self.send(wire.control("pong", t=msg["t"]))
        elif self.mode == "image":  # "neutral": F and the auto window, as the user set them on the client
            self.neutral.window_s = msg["window_s"]
            if msg["find_best"] != self.neutral.find_best:
                self.neutral.set_find_best(msg["find_best"])

    async def _send_pose(self) -> None:
        """Image mode: the session's neutral-pose reading (and any repair notice) after each picture."""
        notices, self._notices[:] = list(self._notices), []
        for line in notices:
            await self.send(wire.control("notice", message=line[:1000]))
        r = self.neutral.reading(time.monotonic())
        await self.send(wire.control("pose", match=r.match, best=r.best, mode=r.mode, searching=r.searching,
                                     improvements=r.improvements, calibrated=r.calibrated))

    def _accept(self, frame: Frame) -> None:
        if frame.seq <= self._last_seq:
            raise ProtocolError("out_of_order", f"frame {frame.seq} arrived after frame {self._last_seq}; dropped")
        self._last_seq = frame.seq
        if self._latest is not None:
            self.worker.frames_dropped += 1
        self._latest = frame
        self._wake.set()

    async def _process(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame, self._latest = self._latest, None
            t0 = time.perf_counter()
            try:
                picture, model_ms = await self.worker.decode(await self._job(frame))
            except Exception as err:  # noqa: BLE001 - one bad frame (or a model failure) must not end the call
                code, text = (err.code, err.message) if isinstance(err, ProtocolError) else (
                    "model_failed", f"the model failed ({type(err).__name__}: {err})")
                log.warning("session frame %d: %s", frame.seq, text)
                await self.send_error(code, f"frame {frame.seq}: {text}")
                continue
            payload = wire.encode_picture(to_uint8(picture), self.downlink, self.quality)
            if self.mode == "image":  # the detector ran here too: count it as model time
                model_ms = (time.perf_counter() - t0) * 1000
            await self.send(Frame(Kind.PICTURE, frame.seq, payload, wire.PICTURE_ENCODING[self.downlink],
                                  frame.t_sent, model_ms).pack())
            if self.mode == "image":
                await self._send_pose()

    async def _job(self, frame: Frame) -> AnimateJob:
        if frame.kind == Kind.KEYPOINTS:  # already relative to the neutral pose (done on the client)
            value, jacobian = wire.unpack_keypoints(frame.payload)
            if value.shape[1] != self.prepared.keypoints.value.shape[1]:
                raise ProtocolError("bad_keypoints", f"{value.shape[1]} keypoints sent; this model uses "
                                    f"{self.prepared.keypoints.value.shape[1]}")
            if jacobian is not None and not self.prepared.keypoints.has_jacobian:
                raise ProtocolError("bad_keypoints", "this model has no jacobians; send keypoints without them")
            return AnimateJob(self.prepared, Keypoints.from_numpy(value, jacobian))
        crop = wire.decode_image(frame.payload, "face crop", MAX_UPLINK_CROP_PIXELS)
        kp = await asyncio.to_thread(self.worker.animator.detect, crop)
        if frame.flags & wire.Flag.CALIBRATE:  # X on the client: this frame is the neutral pose
            self.neutral.calibrate_next()
        return AnimateJob(self.prepared, kp, self.neutral.observe(kp, time.monotonic()))


@serve.deployment(max_ongoing_requests=SESSIONS_PER_REPLICA + BUSY_HEADROOM, ray_actor_options={"num_cpus": 1})
@serve.ingress(app)
class AvatarWorker:
    def __init__(self, checkpoint: str, store, token_sha256: str, engine: dict | None = None,
                 max_batch: int = MAX_BATCH, torch_threads: int = 0, batch_wait_s: float = BATCH_WAIT_S,
                 max_sessions: int = SESSIONS_PER_REPLICA) -> None:
        replica_grpc_on_loopback()
        cap_websocket_messages()  # this replica's own port (direct ingress) starts after this constructor
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        self.animator = Animator.from_checkpoint(checkpoint, EngineOptions(**(engine or {})))
        self.store, self._token_sha256 = store, token_sha256
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.decode.set_max_batch_size(max_batch)
        self.decode.set_batch_wait_timeout_s(batch_wait_s)
        self.batch_sizes: list[int] = []  # recent batch sizes (healthz: shows batching at work)
        self.frames_dropped = 0  # frames replaced by a newer one of the same session before rendering
        self.max_sessions, self.sessions = max_sessions, 0
        self._direct_port = 0  # found at the first session: Serve opens the port after this constructor

    @app.get("/healthz")
    async def healthz(self) -> dict:
        recent = self.batch_sizes[-100:]
        return {"status": "ok", "engine": self.animator.describe(), "replica": self.replica,
                "mean_batch": round(float(np.mean(recent)), 2) if recent else 0.0, "last_batches": recent[-20:],
                "frames_dropped": self.frames_dropped, "rss_mb": rss_mb()}

    @serve.multiplexed(max_num_models_per_replica=AVATARS_PER_REPLICA)
    async def prepared_avatar(self, key: str) -> PreparedSource:
        data = await self.store.get.remote(key)
        if data is None:
            raise ProtocolError("unknown_avatar", f"avatar {key[:12]}... is not on the server; upload it", True)
        return await asyncio.to_thread(self.animator.prepare_source, wire.decode_image(data, "avatar"))

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def decode(self, jobs: list[AnimateJob]) -> list[tuple[np.ndarray, float]]:
        """One batched forward for the frames of every session on this replica -> (picture, model ms)."""
        self.batch_sizes = self.batch_sizes[-999:] + [len(jobs)]
        t0 = time.perf_counter()
        pictures = await asyncio.to_thread(self.animator.animate_batch, jobs)
        model_ms = (time.perf_counter() - t0) * 1000
        return [(picture, model_ms) for picture in pictures]

    @app.websocket("/session")
    async def session(self, ws: WebSocket) -> None:
        await ws.accept()
        self.sessions += 1
        try:
            if self.sessions > self.max_sessions:
                raise ProtocolError("busy", f"the worker is busy ({self.max_sessions} sessions on this replica); "
                                    "try again later", fatal=True)
            hello = await self._handshake(ws)
            prepared = await self.prepared_avatar(hello["avatar"])
            kp = prepared.keypoints.numpy()
            self._direct_port = self._direct_port or direct_port()
            await ws.send_text(wire.control("ready", avatar=hello["avatar"], size=self.animator.size,
                                            replica=self.replica, engine=self.animator.describe(),
                                            keypoints=wire.keypoints_to_json(kp["value"], kp.get("jacobian")),
                                            direct=self._direct_port))
            await Session(ws, self, hello, prepared).run()
        except ProtocolError as err:
            await self._refuse(ws, err)
        except TimeoutError:
            await self._refuse(ws, ProtocolError("timeout", "nothing received for too long; reconnect", True))
        except WebSocketDisconnect:
            pass
        finally:
            self.sessions -= 1

    async def _handshake(self, ws: WebSocket) -> dict:
        """Token, challenge, hello with its proof of holding the avatar file; the file itself when the
        proof does not hold (never seen, forgotten, or only the id known: the caller cannot tell which)."""
        given = ws.headers.get(wire.TOKEN_HEADER, "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(token_digest(given), self._token_sha256):
            raise ProtocolError("unauthorized", "wrong or missing token; use the token the server was started "
                                "with ($AVATARCAM_TOKEN or --token-file)", fatal=True)
        nonce = secrets.token_hex(32)
        await ws.send_text(wire.control("challenge", nonce=nonce))
        msg = await asyncio.wait_for(_receive(ws), HELLO_TIMEOUT_S)
        hello = wire.parse_control(msg.get("text") or "", ("hello",))
        routed = ws.headers.get(wire.MULTIPLEX_HEADER)
        if routed is not None and routed != hello["avatar"]:
            raise ProtocolError("bad_message", f"the {wire.MULTIPLEX_HEADER} header must be the avatar id", fatal=True)
        if not await self.store.verify.remote(hello["avatar"], nonce, hello["proof"]):
            await ws.send_text(wire.control("need_avatar", avatar=hello["avatar"]))
            upload = await asyncio.wait_for(_receive(ws), HELLO_TIMEOUT_S)
            data = wire.unpack_frame(upload.get("bytes") or b"", (Kind.AVATAR,)).payload
            if wire.avatar_id(data) != hello["avatar"]:
                raise ProtocolError("unknown_avatar", "the uploaded avatar does not match its id (sha256)", True)
            wire.decode_image(data, "avatar")  # refuse a bad file before anyone stores it
            await self.store.put.remote(data)
        return hello

    @staticmethod
    async def _refuse(ws: WebSocket, err: ProtocolError) -> None:
        try:
            await ws.send_text(wire.control("error", code=err.code, message=err.message, fatal=True))
            await ws.close(CLOSE_CODES.get(err.code, 4400), err.message[:120])  # a close reason holds 123 bytes
        except (WebSocketDisconnect, RuntimeError):  # the caller already left
            pass


def build_app(checkpoint: str, token: str, *, replicas: int = 1, gpus_per_replica: float = 0.0,
              cpus_per_replica: float = 1.0, engine: dict | None = None, max_batch: int = MAX_BATCH,
              torch_threads: int = 0, batch_wait_s: float = BATCH_WAIT_S, max_sessions: int = SESSIONS_PER_REPLICA):
    """The Serve application: ``replicas`` AvatarWorkers sharing one AvatarStore. Only the token's
    digest goes into the deployment's arguments."""
    worker = AvatarWorker.options(num_replicas=replicas, max_ongoing_requests=max_sessions + BUSY_HEADROOM,
                                  ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica})
    return worker.bind(str(checkpoint), AvatarStore.bind(), token_digest(token), engine or {}, max_batch,
                       torch_threads, batch_wait_s, max_sessions)


def start(application, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Deploy on the connected Ray instance and start its HTTP proxy on ``host:port``."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
