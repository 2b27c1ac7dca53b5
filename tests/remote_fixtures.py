"""Fixtures for the remote-worker tests (loaded with ``pytest_plugins = ["remote_fixtures"]``).

ONE Ray instance and ONE two-replica worker serve the whole test session: starting Ray and Serve
costs many seconds on 2 cores. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

TOKEN = "test-token-0123"
MAX_SESSIONS = 12  # per replica: small, so the busy answer past the cap is cheap to reach


@dataclass(frozen=True)
class Worker:
    url: str  # ws://127.0.0.1:PORT
    http: str  # http://127.0.0.1:PORT
    token: str
    checkpoint: Path

    def health(self) -> dict:
        with urllib.request.urlopen(self.http + "/healthz", timeout=10) as reply:
            return json.loads(reply.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def loopback_port() -> int:
    """A 127.0.0.1 port nothing listens on (yet)."""
    return free_port()


@pytest.fixture(scope="session")
def ray_session():
    from avatarcam.remote.ray_setup import init_options, prepare_environment

    prepare_environment()  # test modules already did, before importing Ray: this is for the record
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    from avatarcam.remote.server import enable_direct_ingress

    enable_direct_ingress()  # sessions move to their replica's own port, as under `avatarcam serve`
    ray.init(num_cpus=2, logging_level="ERROR", **init_options())  # the Ray `avatarcam serve` starts
    try:
        yield ray
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def remote_worker(ray_session, tiny_checkpoint) -> Worker:
    """The reduced model on two CPU replicas (fp32, so remote and local pictures can be compared)."""
    from avatarcam.remote.server import build_app, start

    port = free_port()
    app = build_app(str(tiny_checkpoint), TOKEN, replicas=2, cpus_per_replica=0.5, torch_threads=1,
                    engine={"device": "cpu", "precision": "fp32", "backend": "torch"}, max_sessions=MAX_SESSIONS)
    start(app, "127.0.0.1", port)  # returns once every replica is healthy
    worker = Worker(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", TOKEN, Path(tiny_checkpoint))
    assert worker.health()["status"] == "ok"
    return worker


class TcpRelay:
    """Relays TCP connections from ``listen_host`` (a port of its own) to ``target``: the worker seen
    from another address, whose replica ports are not reachable (like a firewall letting only the
    proxy's port through). Threads end on ``close()``."""

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((listen_host, 0))
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, name="test-relay", daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self.target)
            thread = threading.Thread(target=self._pump, args=(client, upstream), name="test-relay", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        with a, b, selectors.DefaultSelector() as sel:
            for s in peers:
                sel.register(s, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    peers[key.fileobj].sendall(data)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self.server.close()


@pytest.fixture
def relay_to_proxy(remote_worker):
    """The worker's proxy port relayed from 127.0.0.2: the replicas' own ports (bound to 127.0.0.1)
    are not reachable at that address."""
    port = int(remote_worker.url.rsplit(":", 1)[1])
    relay = TcpRelay("127.0.0.2", ("127.0.0.1", port))
    try:
        yield f"ws://127.0.0.2:{relay.port}"
    finally:
        relay.close()
