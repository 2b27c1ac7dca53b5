"""The remote worker end to end: real Ray Serve on 127.0.0.1, real WebSockets, the reduced model.

One Ray instance and one two-replica worker for the whole session (tests/remote_fixtures.py)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import replace

import cv2
import numpy as np
import pytest
from helpers import wait_until

from avatarcam.engine import Animator, EngineOptions
from avatarcam.errors import AvatarcamError
from avatarcam.imaging import to_uint8
from avatarcam.remote.client import RemoteAnimator, RemoteOptions
from avatarcam.remote.protocol import (
    HEADER,
    PROTOCOL_VERSION,
    Frame,
    Kind,
    avatar_id,
    control,
    hello,
    pack_keypoints,
    parse_control,
    unpack_frame,
)
from avatarcam.remote.ray_setup import prepare_environment

pytest_plugins = ["remote_fixtures"]
prepare_environment()  # before Ray is imported: the Ray `avatarcam serve` starts (loopback, no metrics)
pytest.importorskip("ray.serve")
websockets_sync = pytest.importorskip("websockets.sync.client")
ConnectionClosed = pytest.importorskip("websockets.exceptions").ConnectionClosed


def _square(image: np.ndarray, size: int = 256) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    crop = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def avatars(astronaut):
    from skimage.data import coffee

    return _square(astronaut), _square(coffee())


@pytest.fixture(scope="module")
def frames():
    """Driving frames: a face-sized picture moving a little (bounded count: 6)."""
    from skimage.data import chelsea

    base = chelsea()
    return [np.ascontiguousarray(base[10 + 6 * i:310 + 6 * i, 60 + 4 * i:360 + 4 * i]) for i in range(6)]


def _local(checkpoint, avatar) -> Animator:
    anim = Animator.from_checkpoint(checkpoint, EngineOptions(device="cpu", precision="fp32"))
    anim.set_source(avatar)
    return anim


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def _connect(worker, token: str | None = None):
    headers = {"Authorization": f"Bearer {token or worker.token}"} if token != "" else {}
    return websockets_sync.connect(worker.url + "/session", open_timeout=20, additional_headers=headers)


@contextmanager
def _raw_session(worker, avatar: np.ndarray, mode: str = "keypoints"):
    """A hand-driven WebSocket session past the handshake (uploads the avatar if asked)."""
    data = _png(avatar)
    with _connect(worker) as ws:
        yield ws, _handshake(ws, data, mode)


def _handshake(ws, data: bytes, mode: str) -> dict:
    ws.send(hello(_expect(ws, "challenge"), data, mode, "raw"))
    msg = parse_control(ws.recv(timeout=20), ("ready", "need_avatar"))
    if msg["type"] == "need_avatar":
        ws.send(Frame(Kind.AVATAR, 0, data).pack())
        msg = parse_control(ws.recv(timeout=20), ("ready",))
    return msg


def _kp_frame(seq: int, k: int = 10) -> bytes:
    value = np.random.default_rng(seq).uniform(-0.5, 0.5, (1, k, 2)).astype(np.float32)
    jac = np.tile(np.eye(2, dtype=np.float32), (1, k, 1, 1))
    return Frame(Kind.KEYPOINTS, seq, pack_keypoints(value, jac)).pack()


def _expect(ws, kind: str):
    """The next message: a picture ("picture") or a control message of type ``kind``."""
    msg = ws.recv(timeout=20)
    if kind == "picture":
        assert isinstance(msg, bytes), msg
        return unpack_frame(msg, (Kind.PICTURE,))
    return parse_control(msg, (kind,))


# correctness --------------------------------------------------------------------------------
def test_remote_output_equals_local_output(remote_worker, avatars, frames):
    local = _local(remote_worker.checkpoint, avatars[0])
    expected = [to_uint8(local.animate(f)) for f in frames]
    for downlink in ("raw", "png"):  # lossless: only fp32 noise may flip a rounding
        remote = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                        avatar=avatars[0], downlink=downlink)
        try:
            got = [to_uint8(remote.animate(f, exact=True)) for f in frames]
        finally:
            remote.close()
        for g, e in zip(got, expected, strict=True):
            assert np.abs(g.astype(int) - e).max() <= 1, downlink
    remote = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                    avatar=avatars[0], downlink="jpeg", quality=90)
    try:
        psnr = min(_psnr(to_uint8(remote.animate(f, exact=True)), e) for f, e in zip(frames, expected, strict=True))
    finally:
        remote.close()
    print(f"JPEG q90 downlink: worst PSNR vs local {psnr:.1f} dB")
    assert psnr > 30.0


def test_image_mode_matches_local_on_the_same_jpeg_crop(remote_worker, avatars, frames):
    """Image mode: the worker detects keypoints and keeps the neutral pose (first frame) itself."""
    local = _local(remote_worker.checkpoint, avatars[0])
    remote = RemoteAnimator.connect(remote_worker.url, remote_worker.token, avatar=avatars[0], downlink="raw")
    try:
        assert remote.remote.mode == "image"
        for f in frames[:3]:
            crop = to_uint8(cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) / 255.0)
            sent = cv2.imdecode(cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                                             [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR)
            expected = to_uint8(local.animate(cv2.cvtColor(sent, cv2.COLOR_BGR2RGB)))
            got = to_uint8(remote.animate(f, exact=True))
            assert np.abs(got.astype(int) - expected).max() <= 1
    finally:
        remote.close()


def test_two_sessions_get_only_their_own_avatar_and_keep_their_replica(remote_worker, avatars, frames):
    locals_ = [_local(remote_worker.checkpoint, a) for a in avatars]
    expected = [[to_uint8(local.animate(f)) for f in frames] for local in locals_]
    assert np.abs(expected[0][0].astype(int) - expected[1][0]).mean() > 5  # the avatars look different
    clients = [RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                      avatar=a, downlink="raw") for a in avatars]
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}

    def stream(i: int) -> None:
        results[i] = [to_uint8(clients[i].animate(f, exact=True)) for f in frames]

    try:
        threads = [threading.Thread(target=stream, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i in (0, 1):
            for got, own in zip(results[i], expected[i], strict=True):
                assert np.abs(got.astype(int) - own).max() <= 1, f"session {i} got another avatar's frame"
        first = [c.stats().replica for c in clients]
        for _ in range(3):  # new sessions for the same avatars land where the avatar is prepared
            for client, avatar in zip(clients, avatars, strict=True):
                client.set_source(avatar)
                client.wait_ready(30)
            assert [c.stats().replica for c in clients] == first
    finally:
        for c in clients:
            c.close()


# faults -------------------------------------------------------------------------------------
def test_wrong_or_missing_token_is_refused_with_one_clear_error(remote_worker, avatars):
    anim = RemoteAnimator(RemoteOptions(remote_worker.url, "not-the-token", mode="image"))
    try:
        anim.set_source(avatars[0])
        with pytest.raises(AvatarcamError, match="wrong or missing token"):
            anim.wait_ready(30)
        assert anim.stats().state == "refused" and anim.stats().reconnects == 0  # no retry storm
    finally:
        anim.close()
    with _connect(remote_worker, token="") as ws:  # no token at all
        msg = _expect(ws, "error")
        assert msg["code"] == "unauthorized" and msg["fatal"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd.code == 4401


def test_unknown_avatar_needs_an_upload_matching_its_id(remote_worker):
    with _connect(remote_worker) as ws:
        _expect(ws, "challenge")
        ws.send(control("hello", version=PROTOCOL_VERSION, avatar="0" * 64, proof="0" * 64, mode="keypoints",
                        downlink="raw", quality=90))
        assert _expect(ws, "need_avatar")["avatar"] == "0" * 64
        ws.send(Frame(Kind.AVATAR, 0, _png(np.zeros((64, 64, 3), np.uint8))).pack())  # not the file "0"*64 names
        msg = _expect(ws, "error")
        assert msg["code"] == "unknown_avatar" and "sha256" in msg["message"]


def test_malformed_oversized_and_out_of_order_messages(remote_worker, avatars):
    with _raw_session(remote_worker, avatars[1]) as (ws, ready):
        assert ready["size"] == 256
        ws.send(_kp_frame(1))
        assert _expect(ws, "picture").seq == 1
        ws.send(b"\x00garbage")
        assert _expect(ws, "error")["code"] == "bad_frame"
        ws.send(_kp_frame(1))  # a sequence number already used
        assert _expect(ws, "error")["code"] == "out_of_order"
        ws.send("{not json")
        assert _expect(ws, "error")["code"] == "bad_message"
        ws.send(_kp_frame(2, k=5))  # the model has 10 keypoints
        assert _expect(ws, "error")["code"] == "bad_keypoints"
        ws.send(_kp_frame(5))  # the session survived all of that
        assert _expect(ws, "picture").seq == 5
        ws.send(Frame(Kind.KEYPOINTS, 6, b"\0" * 5000).pack())
        assert _expect(ws, "error")["code"] == "too_large"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd.code == 1009


def test_clients_leaving_mid_frame_do_not_hurt_the_worker(remote_worker, avatars):
    for seq in range(1, 4):
        with _raw_session(remote_worker, avatars[1]) as (ws, _):
            ws.send(_kp_frame(seq))
            if seq == 3:
                ws.socket.close()  # no closing handshake: the TCP connection just goes away
    with _raw_session(remote_worker, avatars[1]) as (ws, _):
        ws.send(_kp_frame(1))
        assert _expect(ws, "picture").seq == 1
    assert remote_worker.health()["status"] == "ok"


def test_worker_renders_the_newest_frame_and_drops_the_waiting_ones(remote_worker, avatars):
    """Frames that arrive while the replica is busy never queue: only the newest waiting one is rendered."""
    with _raw_session(remote_worker, avatars[1]) as (ws, ready):
        for seq in range(1, 9):  # all sent at once; one model step takes tens of ms
            ws.send(_kp_frame(seq))
        seqs = [_expect(ws, "picture").seq]
        while seqs[-1] != 8:
            seqs.append(_expect(ws, "picture").seq)
    assert seqs == sorted(seqs) and len(seqs) < 8, seqs  # in order, and some were dropped
    health = next(h for h in (remote_worker.health() for _ in range(40)) if h["replica"] == ready["replica"])
    assert health["frames_dropped"] >= 8 - len(seqs)


def test_frames_of_concurrent_sessions_share_one_batched_forward(remote_worker, avatars):
    """5 sessions on 2 replicas: one replica holds at least 3. Frames sent together meet in @serve.batch:
    the first starts a forward at once, the ones that arrive meanwhile go in the next one together."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        sessions = [stack.enter_context(_raw_session(remote_worker, avatars[i % 2])) for i in range(5)]
        by_replica: dict[str, list] = {}
        for ws, ready in sessions:
            by_replica.setdefault(ready["replica"], []).append(ws)
        replica, busy = max(by_replica.items(), key=lambda item: len(item[1]))
        assert len(busy) >= 3
        for seq in range(1, 6):
            for ws in busy:
                ws.send(_kp_frame(seq))
            for ws in busy:
                assert _expect(ws, "picture").seq == seq
    health = next(h for h in (remote_worker.health() for _ in range(40)) if h["replica"] == replica)
    assert max(health["last_batches"][-5 * len(busy):]) >= 2, health["last_batches"]


# the direct path (each session on its replica's own port) ------------------------------------
def test_sessions_move_to_their_replicas_own_port_and_get_the_same_pictures(remote_worker, avatars, frames):
    pictures, paths, replicas = {}, {}, {}
    for direct in (True, False):
        client = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                        avatar=avatars[0], downlink="raw", direct=direct)
        try:
            pictures[direct] = [to_uint8(client.animate(f, exact=True)) for f in frames[:3]]
            paths[direct], replicas[direct] = client.stats().path, client.stats().replica
            assert "(" + paths[direct] + ")" in client.describe()
        finally:
            client.close()
    assert paths == {True: "direct", False: "proxy"}
    assert replicas[True] == replicas[False]  # both paths: the replica that holds the avatar
    for a, b in zip(pictures[True], pictures[False], strict=True):
        assert np.array_equal(a, b)


def test_a_replicas_own_port_asks_for_the_token_too(remote_worker, avatars):
    with _raw_session(remote_worker, avatars[0]) as (_, ready):
        port = ready["direct"]
    assert port and f":{port}" not in remote_worker.url  # a port of its own, not the proxy's
    direct = replace(remote_worker, url=f"ws://127.0.0.1:{port}")
    with _connect(direct, token="wrong") as ws:
        assert _expect(ws, "error")["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd.code == 4401
    with _raw_session(direct, avatars[0]) as (ws, ready_direct):
        assert ready_direct["replica"] == ready["replica"]
        ws.send(_kp_frame(1))
        assert _expect(ws, "picture").seq == 1


def test_an_unreachable_replica_port_keeps_the_session_on_the_proxy(relay_to_proxy, remote_worker, avatars, frames):
    client = RemoteAnimator.connect(relay_to_proxy, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                    avatar=avatars[0], downlink="raw")
    try:
        before = client.stats().received
        client.animate(frames[0], exact=True)
        stats = client.stats()
        assert stats.path == "proxy" and stats.state == "connected" and stats.received == before + 1
    finally:
        client.close()


def test_a_slow_header_connection_is_closed(remote_worker):
    """A caller that never finishes its request headers (slowloris) loses the connection after
    HEADER_TIMEOUT_S instead of holding it for ever; an upgraded WebSocket is not affected (the tests above)."""
    import socket
    import time

    from avatarcam.remote.server import HEADER_TIMEOUT_S

    host, port = remote_worker.http.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT_S + 5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        t0 = time.monotonic()
        assert conn.recv(1024) == b""  # closed by the server (a timeout here raises instead)
        assert time.monotonic() - t0 <= HEADER_TIMEOUT_S + 3


def test_the_worker_serves_only_its_two_routes(remote_worker):
    import urllib.error
    import urllib.request

    for path in ("/docs", "/openapi.json", "/redoc", "/session"):  # no API browser; /session is WebSocket only
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(remote_worker.http + path, timeout=10)


def test_load_concurrent_sessions(remote_worker, avatars, frames):
    """K sessions for a bounded number of frames each, newest-wins pipelining (2 in flight)."""
    sessions, per_session = 4, 25
    rss_before = {h["replica"]: h["rss_mb"] for h in (remote_worker.health() for _ in range(6))}
    clients = [RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                      avatar=avatars[i % 2]) for i in range(sessions)]
    kps = [clients[0].detect(f) for f in frames]

    seen: list[tuple[tuple[int, ...], int]] = []  # (picture shape, frames in flight) after each call

    def stream(client: RemoteAnimator) -> None:
        for i in range(per_session):
            out = client.animate_keypoints(kps[i % len(kps)])
            seen.append((None if out is None else out.shape, client.stats().in_flight))
        client.animate_keypoints(kps[0], exact=True)  # drain: the last frame is always answered

    try:
        threads = [threading.Thread(target=stream, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(seen) == sessions * per_session and {shape for shape, _ in seen} <= {(256, 256, 3), None}
        assert max(in_flight for _, in_flight in seen) <= 2  # never more than 2 frames travel per session
        stats = [c.stats() for c in clients]
        rtts = np.array([rtt for c in clients for rtt, _ in c.round_trips()])
    finally:
        for c in clients:
            c.close()
    rss_after = {h["replica"]: h["rss_mb"] for h in (remote_worker.health() for _ in range(6))}
    p50, p95 = np.percentile(rtts, [50, 95])
    print(f"load: {sessions} sessions, received {[s.received for s in stats]}, dropped "
          f"{[s.dropped for s in stats]}, rtt p50 {p50:.1f} ms p95 {p95:.1f} ms, "
          f"replica RSS MB before {rss_before} after {rss_after}")
    for s in stats:
        assert s.state == "connected" and s.error == ""
        assert s.in_flight == 0 and s.received <= s.sent
        assert 1 <= s.received <= per_session + 1
    for replica, after in rss_after.items():
        if replica in rss_before and after is not None:
            assert after - rss_before[replica] < 300, "replica memory grew under load"


def test_pipeline_runs_on_the_remote_worker(tmp_path, remote_worker):
    """The real pipeline (video-file camera, framing, stabiliser, calibration) with the model step remote."""
    from synthetic import face_on_background, write_clip

    from avatarcam.pipeline import Pipeline, PipelineConfig

    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220 + 3 * i, 140) for i in range(30)], 200), 30.0)
    remote = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint)
    pipeline = Pipeline(PipelineConfig(camera=clip, vcam=False, detector="lbp"), animator=remote)
    try:
        pipeline.start()
        remote.wait_ready(60)
        wait_until(lambda: remote.stats().received >= 5, message="pictures from the worker")
        stats = pipeline.stats()
    finally:
        pipeline.stop()
        remote.close()
    assert stats.calibrated and stats.frames_out > 0
    assert remote.stats().error == "" and not [n for n in pipeline.notices if "failed" in n]


def test_the_client_composites_the_model_size_downlink_into_the_avatar_picture(tmp_path, remote_worker):
    """HD output with a remote worker: the worker sends model-size pictures; the client pastes them
    into the whole avatar picture locally (1280x720), exact outside the face's mask."""
    from synthetic import face_on_background, landscape_portrait, write_clip

    from avatarcam.pipeline import Pipeline, PipelineConfig
    from avatarcam.pipeline.compositor import Compositor

    clip = write_clip(tmp_path / "c.mp4", face_on_background([(220, 140)] * 20, 200), 30.0)
    remote = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint)
    pipeline = Pipeline(PipelineConfig(camera=clip, vcam=False, framing="manual", avatar_detail=True,
                                       avatar=landscape_portrait((1920, 1080))), animator=remote)
    outputs = []
    pipeline.add_listener(lambda bundle: outputs.append(bundle.output))
    try:
        pipeline.start()
        remote.wait_ready(60)
        wait_until(lambda: remote.stats().received >= 3 and len(outputs) >= 3, message="pictures from the worker")
    finally:
        pipeline.stop()
        remote.close()
    placement = Compositor("picture", (1280, 720)).placement(pipeline.avatar)
    x0, y0, x1, y1 = placement.roi
    outside = np.ones((720, 1280), bool)
    outside[y0:y1, x0:x1] = placement.mask == 0
    outside[-80:, -120:] = False  # the AI label
    frame = outputs[-1]
    assert frame.shape == (720, 1280, 3) and np.array_equal(frame[outside], placement.background[outside])
    assert np.abs(frame[y0:y1, x0:x1].astype(int) - placement.background[y0:y1, x0:x1]).mean() > 1  # animated
    assert [n for n in pipeline.notices if "not available with a remote worker" in n]  # detail: said once
    assert len([n for n in pipeline.notices if "detail" in n]) == 1


def test_run_command_with_remote_worker(tmp_path, remote_worker):
    """`avatarcam run --remote URL --token T` in a subprocess: records frames made on the worker; a
    wrong token is one line and exit 2."""
    import subprocess
    import sys

    from synthetic import face_on_background, write_clip

    from avatarcam.video import VideoReader

    clip = write_clip(tmp_path / "c.mp4", face_on_background([(150 + 4 * i, 120) for i in range(30)], 200), 30.0)
    out = tmp_path / "out.mp4"
    common = ["--camera", clip, "--checkpoint", str(remote_worker.checkpoint), "--no-vcam", "--detector", "lbp",
              "--remote", remote_worker.url]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "avatarcam", "run", *common, *args], capture_output=True,
                              text=True, timeout=180)

    res = run("--token", remote_worker.token, "--record", str(out), "--max-frames", "12")
    assert res.returncode == 0, res.stderr
    assert f"remote torch-cpu fp32 @ {remote_worker.url} connected" in res.stderr and "Traceback" not in res.stderr
    with VideoReader(out) as reader:
        assert len(list(reader)) >= 10
    res = run("--token", "wrong", "--max-frames", "3", "--record", str(tmp_path / "refused.mp4"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert [line for line in res.stderr.splitlines() if "error" in line] == [
        f"avatarcam: error: remote worker {remote_worker.url}: wrong or missing token; use the token the server "
        "was started with ($AVATARCAM_TOKEN or --token-file)"]
    assert not (tmp_path / "refused.mp4").exists()  # a refused start records nothing


# a stranger with a token ---------------------------------------------------------------------
def test_an_avatar_id_alone_gets_no_avatar_and_does_not_tell_whether_the_server_holds_it(remote_worker, avatars):
    """The id is not a capability: a hello must prove it holds the file (keyed hash with the session's
    nonce). A wrong proof for a held avatar gets the same answer as an id never seen: need_avatar."""
    held = _png(avatars[0])
    with _raw_session(remote_worker, avatars[0]) as (_, ready):  # the owner: the avatar is on the server now
        assert ready["type"] == "ready"
    for avatar in (avatar_id(held), "0" * 64):  # held / never seen: the same answer
        with _connect(remote_worker) as ws:
            _expect(ws, "challenge")
            ws.send(control("hello", version=PROTOCOL_VERSION, avatar=avatar, proof="0" * 64, mode="keypoints",
                            downlink="raw", quality=90))
            assert _expect(ws, "need_avatar")["avatar"] == avatar  # no ready, no keypoints, no pictures
            ws.send(Frame(Kind.AVATAR, 0, _png(avatars[1])).pack())  # not the file the id names
            assert _expect(ws, "error")["code"] == "unknown_avatar"
    with _connect(remote_worker) as ws:  # a proof made for another nonce (another session) does not carry over
        stale = hello({"nonce": "ab" * 32}, held, "keypoints", "raw")
        assert _expect(ws, "challenge")["nonce"] != "ab" * 32
        ws.send(stale)
        assert _expect(ws, "need_avatar")["avatar"] == avatar_id(held)


def test_deeply_nested_json_is_a_clear_error_and_the_session_goes_on(remote_worker, avatars):
    with _raw_session(remote_worker, avatars[1]) as (ws, _):
        ws.send("[" * 8000 + "]" * 8000)  # under the 16 KB control limit
        msg = _expect(ws, "error")
        assert msg["code"] == "bad_message" and "deeper than" in msg["message"] and not msg["fatal"]
        ws.send(_kp_frame(1))
        assert _expect(ws, "picture").seq == 1


def _tree_rss_mb(name: str) -> float:
    import psutil

    return sum(p.memory_info().rss for p in psutil.Process().children(recursive=True)
               if name in p.name()) / 2**20


def test_oversized_messages_close_1009_at_the_real_limit_and_memory_stays_bounded(remote_worker, avatars):
    """A 16 MB message with a lying length and an 8 MB avatar sent mid-session, 10 times each: every one
    closes the session with 1009 (the server's message limit is MAX_MESSAGE_BYTES, not uvicorn's 16 MiB),
    and neither the proxy nor the replicas keep the memory."""
    before = {name: _tree_rss_mb(name) for name in ("ProxyActor", "AvatarWorker")}
    lying = HEADER.pack(b"AV", PROTOCOL_VERSION, Kind.KEYPOINTS, 0, 1, 0.0, 0.0, 240) + b"\0" * (16 << 20)
    mid_session = Frame(Kind.AVATAR, 1, b"\0" * (8 << 20)).pack()
    for _ in range(10):
        for junk in (lying, mid_session):
            with _raw_session(remote_worker, avatars[1]) as (ws, _):
                with pytest.raises(ConnectionClosed) as closed:
                    ws.send(junk)
                    while True:
                        ws.recv(timeout=20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    after = {name: _tree_rss_mb(name) for name in before}
    print(f"RSS MB before {before} after {after}")
    for name in before:
        assert after[name] - before[name] < 150, f"{name} kept the junk: {before[name]:.0f} -> {after[name]:.0f} MB"


def test_past_the_session_cap_a_caller_is_told_busy(remote_worker, avatars):
    from contextlib import ExitStack

    from remote_fixtures import MAX_SESSIONS

    data = _png(avatars[1])
    with ExitStack() as stack:
        for opened in range(2 * MAX_SESSIONS + 1):  # noqa: B007 - two replicas: at most both full
            ws = stack.enter_context(_connect(remote_worker))
            first = parse_control(ws.recv(timeout=20), ("challenge", "error"))
            if first["type"] == "error":
                break
            ws.send(hello(first, data, "keypoints", "raw"))
            if parse_control(ws.recv(timeout=20), ("ready", "need_avatar"))["type"] == "need_avatar":
                ws.send(Frame(Kind.AVATAR, 0, data).pack())
                _expect(ws, "ready")
        assert first["type"] == "error", "no busy answer past the cap"
        assert first["code"] == "busy" and first["fatal"] and opened >= MAX_SESSIONS
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
        assert closed.value.rcvd.code == 1013


def _listening(process) -> list:
    import psutil

    try:
        return [c.laddr for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []


def test_every_socket_of_the_process_tree_is_loopback_and_no_page_names_an_avatar(remote_worker, avatars):
    """Ray's own processes (GCS, raylet, agents, workers, proxy, replicas) listen on loopback only, and
    no HTTP page any of them serves (Prometheus metrics included) names a prepared avatar's id."""
    import ipaddress
    import urllib.request

    import psutil

    with _raw_session(remote_worker, avatars[0]) as (ws, ready):
        ws.send(_kp_frame(1))
        _expect(ws, "picture")
    key = ready["avatar"]
    me = psutil.Process()
    sockets = [(p.name(), addr) for p in [me, *me.children(recursive=True)] for addr in _listening(p)]
    assert len(sockets) >= 5, sockets
    for name, addr in sockets:
        ip = ipaddress.ip_address(addr.ip)
        ip = ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
        assert ip.is_loopback, f"{name} listens on {addr.ip}:{addr.port}"
    pages = 0
    for _, addr in sockets:
        for path in ("/", "/metrics", "/healthz", "/-/routes"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{addr.port}{path}", timeout=2) as reply:
                    body = reply.read().decode("latin-1")
            except Exception:  # noqa: BLE001 - gRPC ports, 404s: no page
                continue
            pages += 1
            assert key not in body and key[:16] not in body, f"port {addr.port}{path} names the avatar"
    assert pages >= 1  # /healthz at least was read


def test_a_hung_worker_is_noticed_in_time_and_no_held_copy_passes_for_a_picture(remote_worker, avatars, frames):
    """Honest numbers: animate returns each picture once and None when nothing new arrived (never a held
    copy). A replica stopped with SIGSTOP is noticed within timeout_s + 2 heartbeats + the close wait."""
    import os
    import signal
    import time

    import psutil

    client = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                    avatar=avatars[0], downlink="raw", heartbeat_s=0.25, timeout_s=2.0)
    kps = [client.detect(f) for f in frames]
    replicas = [p for p in psutil.Process().children(recursive=True) if "AvatarWorker" in p.name()]
    try:
        returned = []
        for i in range(30):
            out = client.animate_keypoints(kps[i % len(kps)])
            if out is not None:
                returned.append(out)
        received = client.stats().received
        assert 1 <= len(returned) <= received
        for a, b in zip(returned, returned[1:], strict=False):
            assert not np.array_equal(a, b), "a picture was returned twice"
        client.animate_keypoints(kps[0], exact=True)
        for p in replicas:
            os.kill(p.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        wait_until(lambda: client.stats().state == "reconnecting", timeout=30, message="the hung worker")
        noticed = time.monotonic() - t0
        outs = [client.animate_keypoints(kps[i % len(kps)]) for i in range(5)]
    finally:
        for p in replicas:
            os.kill(p.pid, signal.SIGCONT)
    try:
        assert noticed <= 2.0 + 2 * 0.25 + 1.5, f"noticed after {noticed:.1f} s"
        assert outs == [None] * 5  # nothing new: nothing returned
        assert client.stats().model_ms == 0.0
        wait_until(lambda: client.stats().state == "connected", timeout=60, message="the link to come back")
        assert client.animate_keypoints(kps[1], exact=True) is not None
    finally:
        client.close()


def test_worker_killed_mid_stream_client_holds_then_resumes(remote_worker, avatars, frames):
    """Runs last: it kills every replica (Serve starts new ones). Nothing crashes, the output holds the
    last picture while the state says reconnecting, and the stream resumes by itself."""
    import ray

    client = RemoteAnimator.connect(remote_worker.url, remote_worker.token, checkpoint=remote_worker.checkpoint,
                                    avatar=avatars[0], heartbeat_s=0.2, timeout_s=3.0, backoff_s=(0.1, 1.0))
    kps = [client.detect(f) for f in frames]
    try:
        held = client.animate_keypoints(kps[0], exact=True)
        replica = client.stats().replica
        for actor in ray.util.list_named_actors(all_namespaces=True):  # every replica: the worker is gone
            if "AvatarWorker" in actor["name"]:
                ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
        i = 0

        def streaming_again() -> bool:
            nonlocal i
            i += 1
            out = client.animate_keypoints(kps[i % len(kps)])  # never raises; None while nothing new comes
            assert out is None or out.shape == held.shape
            s = client.stats()
            return s.reconnects >= 1 and s.state == "connected" and s.replica != replica
        wait_until(lambda: client.stats().state == "reconnecting", timeout=30, message="the link to drop")
        assert client.animate_keypoints(kps[2]) is None  # no held copy passed off as a new picture
        wait_until(streaming_again, timeout=90, message="Serve to restart the worker and the client to resume")
        before = client.stats().received
        client.animate_keypoints(kps[1], exact=True)
        assert client.stats().received > before
    finally:
        client.close()
