"""Measure the remote worker on loopback: transport overhead, bytes per frame, JPEG quality,
throughput vs batch size and replicas, and a K-session load run. Numbers go to docs/remote.md.

    python scripts/bench_remote.py                       # reduced model (tests' config), ~3 minutes
    python scripts/bench_remote.py --checkpoint vox-adv-cpk.pth.tar --device cuda --json out.json

Starts its own Ray instance (``--num-cpus``, default 2) and Serve on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data
from synthetic import write_synthetic_checkpoint  # noqa: E402

from avatarcam.engine import Animator, EngineOptions, FOMMConfig  # noqa: E402
from avatarcam.remote.client import UPLINK_JPEG_QUALITY, RemoteAnimator  # noqa: E402
from avatarcam.remote.protocol import Frame, Kind, decode_picture, encode_picture, pack_keypoints  # noqa: E402
from avatarcam.remote.ray_setup import init_options, prepare_environment  # noqa: E402

prepare_environment()  # before Ray is imported: the same Ray as `avatarcam serve` starts
from avatarcam.remote.server import enable_direct_ingress  # noqa: E402

TOKEN = "bench"


def _square(image: np.ndarray, size: int = 256) -> np.ndarray:
    side = min(image.shape[:2])
    return cv2.resize(image[:side, :side], (size, size), interpolation=cv2.INTER_AREA)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def jpeg_quality_table(picture: np.ndarray) -> list[dict]:
    """Downlink size, fidelity and cost per JPEG quality (and the lossless options) on one picture."""
    rows = []
    for downlink, quality in [("jpeg", q) for q in (60, 75, 85, 90, 95)] + [("png", 0), ("raw", 0)]:
        t0 = time.perf_counter()
        for _ in range(20):
            data = encode_picture(picture, downlink, quality)
            back = decode_picture(data, downlink)
        ms = (time.perf_counter() - t0) * 1000 / 20
        rows.append({"downlink": downlink, "quality": quality, "bytes": len(data),
                     "psnr_db": round(_psnr(back, picture), 1), "encode_decode_ms": round(ms, 2)})
    return rows


def model_batch_curve(anim: Animator, avatars: list[np.ndarray], kps, sizes=(1, 2, 4, 8),
                      repeats: int = 5) -> list[dict]:
    """The engine alone (no Ray, this process): pictures/s of one animate_batch forward per batch size."""
    from avatarcam.engine import AnimateJob

    sources = [anim.prepare_source(a) for a in avatars]
    rows = []
    for size in sizes:
        jobs = [AnimateJob(sources[i % len(sources)], kps[i % len(kps)]) for i in range(size)]
        anim.animate_batch(jobs)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            anim.animate_batch(jobs)
        seconds = (time.perf_counter() - t0) / repeats
        rows.append({"batch": size, "ms_per_batch": round(seconds * 1000, 1),
                     "pictures_per_s": round(size / seconds, 1)})
    return rows


def _deploy(checkpoint: str, port: int, replicas: int, max_batch: int, device: str) -> None:
    from avatarcam.remote.server import build_app, start

    cpu = device == "cpu"  # CPU: fp32 with one torch thread per replica; GPU: replicas share it, precision auto
    engine = {"device": device, "precision": "fp32" if cpu else "auto"}
    start(build_app(checkpoint, TOKEN, replicas=replicas, cpus_per_replica=0.5, max_batch=max_batch, engine=engine,
                    gpus_per_replica=0.0 if cpu else 1.0 / replicas, torch_threads=1 if cpu else 0),
          "127.0.0.1", port)


def _health(port: int, tries: int = 8) -> dict[str, dict]:
    out = {}
    for _ in range(tries):  # each request lands on some replica
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            data = json.loads(reply.read())
        out[data["replica"]] = data
    return out


def overhead(url: str, avatar: np.ndarray, kps, frames: int) -> list[dict]:
    """One session, one frame at a time: round trip, model step and the difference (transport), on
    the direct path (the replica's own port) and through the Serve proxy."""
    rows = []
    for path, downlink in [(p, d) for p in ("direct", "proxy") for d in ("jpeg", "png", "raw")]:
        client = RemoteAnimator(_options(url, downlink, direct=path == "direct"), _Detector(kps[0]))
        client.set_source(avatar)
        client.wait_ready(60)
        assert client.stats().path == path, client.stats()
        for i in range(frames + 5):
            client.animate_keypoints(kps[i % len(kps)], exact=True)
        trips = np.array(client.round_trips()[5:])  # the first frames warm up
        client.close()
        rtt, model = trips[:, 0], trips[:, 1]
        rows.append({"path": path, "downlink": downlink, "rtt_p50_ms": round(float(np.median(rtt)), 2),
                     "rtt_p95_ms": round(float(np.percentile(rtt, 95)), 2),
                     "model_p50_ms": round(float(np.median(model)), 2),
                     "overhead_p50_ms": round(float(np.median(rtt - model)), 2),
                     "overhead_p95_ms": round(float(np.percentile(rtt - model, 95)), 2)})
    return rows


def transport_floor(url: str, avatar: np.ndarray, count: int = 200) -> dict:
    """Ping/pong through the replica's event loop, on its own port and through the Serve proxy: the least
    any frame can cost on each path."""
    proxy, direct_port = _ping_pong(url, avatar, count)
    direct, _ = _ping_pong(f"ws://127.0.0.1:{direct_port}", avatar, count) if direct_port else ({}, 0)
    return {"direct": direct, "proxy": proxy}


def _ping_pong(url: str, avatar: np.ndarray, count: int) -> tuple[dict, int]:
    from websockets.sync.client import connect

    from avatarcam.remote.protocol import control, hello, parse_control

    data = cv2.imencode(".png", cv2.cvtColor(avatar, cv2.COLOR_RGB2BGR))[1].tobytes()
    with connect(url + "/session", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        ws.send(hello(parse_control(ws.recv(), ("challenge",)), data, "keypoints", "jpeg", 90))
        ready = parse_control(ws.recv(), ("ready", "need_avatar"))
        if ready["type"] == "need_avatar":
            ws.send(Frame(Kind.AVATAR, 0, data).pack())
            ready = parse_control(ws.recv(), ("ready",))
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            ws.send(control("ping", t=0.0))
            parse_control(ws.recv(), ("pong",))
            times.append((time.perf_counter() - t0) * 1000)
    times = times[count // 10:]
    return ({"ping_p50_ms": round(float(np.median(times)), 2),
             "ping_p95_ms": round(float(np.percentile(times, 95)), 2)}, ready["direct"])


class _Detector:
    """Stands in for the client's detector: the bench sends keypoints detected once beforehand, and
    the avatar's own keypoints (for the client's movement scale) are those of the first frame."""

    size = 256

    def __init__(self, keypoints) -> None:
        self.keypoints = keypoints

    def detect(self, image: np.ndarray):
        return self.keypoints


def _options(url: str, downlink: str, direct: bool = True):
    from avatarcam.remote.client import RemoteOptions

    return RemoteOptions(url, TOKEN, downlink=downlink, direct=direct)


def load(url: str, avatars: list[np.ndarray], kps, sessions: int, seconds: float) -> dict:
    """K sessions streaming (2 frames in flight each, newest wins) for ``seconds``."""
    clients = [RemoteAnimator(_options(url, "jpeg"), _Detector(kps[0])) for _ in range(sessions)]
    for i, client in enumerate(clients):
        client.set_source(avatars[i % len(avatars)])
    for client in clients:
        client.wait_ready(60)
    stop = threading.Event()

    def stream(client: RemoteAnimator) -> None:
        i = 0
        while not stop.is_set():
            client.animate_keypoints(kps[i % len(kps)])
            i += 1

    threads = [threading.Thread(target=stream, args=(c,)) for c in clients]
    before = [c.stats().received for c in clients]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    stats = [c.stats() for c in clients]
    rtts = np.array([rtt for c in clients for rtt, _ in c.round_trips()])
    for c in clients:
        c.close()
    received = sum(s.received for s in stats) - sum(before)
    return {"sessions": sessions, "seconds": round(elapsed, 1), "frames_per_s": round(received / elapsed, 1),
            "rtt_p50_ms": round(float(np.median(rtts)), 1), "rtt_p95_ms": round(float(np.percentile(rtts, 95)), 1),
            "dropped": sum(s.dropped for s in stats), "sent": sum(s.sent for s in stats),
            "errors": [s.error for s in stats if s.error]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="model weights (default: the reduced test config)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--frames", type=int, default=60, help="round trips per downlink (overhead)")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--replicas", default="1,2", help="replica counts to try (empty: skip throughput)")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args()


def main() -> int:
    import ray
    from ray import serve
    from skimage.data import astronaut, chelsea, coffee

    args = parse_args()
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = str(Path(tempfile.mkdtemp()) / "tiny.pth.tar")
        write_synthetic_checkpoint(checkpoint, FOMMConfig.tiny(), seed=0)
    avatars = [_square(astronaut()), _square(coffee())]
    detector = Animator.from_checkpoint(checkpoint, EngineOptions(device="cpu", precision="fp32"))
    kps = [detector.detect(chelsea()[6 * i:300 + 6 * i, 4 * i:300 + 4 * i]) for i in range(8)]
    kp = kps[0].numpy()
    results: dict = {"uplink_bytes": {
        "keypoints": len(Frame(Kind.KEYPOINTS, 1, pack_keypoints(kp["value"], kp["jacobian"])).pack()),
        "image_jpeg": len(Frame(Kind.IMAGE, 1, encode_picture(_square(chelsea()), "jpeg",
                                                              UPLINK_JPEG_QUALITY)).pack())}}
    results["jpeg_quality"] = jpeg_quality_table(avatars[0])
    results["model_batch"] = model_batch_curve(detector, avatars, kps)
    port = free_port()
    enable_direct_ingress()  # as `avatarcam serve` does
    ray.init(num_cpus=args.num_cpus, logging_level="ERROR", **init_options())
    url = f"ws://127.0.0.1:{port}"
    try:
        _deploy(checkpoint, port, 1, 8, args.device)
        results["transport_floor"] = transport_floor(url, avatars[0])
        results["overhead"] = overhead(url, avatars[0], kps, args.frames)
        results["throughput"] = []
        for replicas in (int(v) for v in args.replicas.split(",") if v):
            for batch in (int(v) for v in args.batches.split(",")):
                _deploy(checkpoint, port, replicas, batch, args.device)
                rss_before = {k: v["rss_mb"] for k, v in _health(port).items()}
                row = {"replicas": replicas, "max_batch": batch, **load(url, avatars, kps, args.sessions, args.seconds)}
                health = _health(port)
                row["mean_batch"] = {k[:4]: v["mean_batch"] for k, v in health.items()}
                row["rss_mb_before_after"] = {k[:4]: (round(rss_before.get(k) or 0), round(v["rss_mb"] or 0))
                                              for k, v in health.items()}
                results["throughput"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    text = json.dumps(results, indent=1)
    if args.json:  # the file first: the console may be closed by then
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
