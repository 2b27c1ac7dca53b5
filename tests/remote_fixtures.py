"""Fixtures for the remote-worker tests (loaded with ``pytest_plugins = ["remote_fixtures"]``).

ONE Ray instance and ONE two-replica worker serve the whole test session: starting Ray and Serve
costs many seconds on 2 cores. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

TOKEN = "test-token-0123"


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
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
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
                    engine={"device": "cpu", "precision": "fp32"})
    start(app, "127.0.0.1", port)  # returns once every replica is healthy
    worker = Worker(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", TOKEN, Path(tiny_checkpoint))
    assert worker.health()["status"] == "ok"
    return worker
