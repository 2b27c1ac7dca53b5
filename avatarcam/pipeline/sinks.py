"""Outputs as a seam: the ``Sink`` protocol and the registry of sink kinds.

The pipeline hands every output frame to each sink in its list (``Pipeline.add_sink``; the virtual
camera and the recording are sinks like any other). A new kind of output (an RTMP stream, a shared
memory ring, a test probe) is a class with ``open``/``send``/``close``, registered by name::

    from avatarcam.pipeline.sinks import register_sink
    register_sink("ndi", NdiSink)  # NdiSink(size=..., fps=..., **options) -> Sink
    pipeline.add_sink(make_sink("ndi", size=(1280, 720), fps=30))

``sink_names()`` lists what is registered; ``unregister_sink`` removes a kind (tests always do).
The built-in kinds: ``virtual-camera`` (``outputs.VirtualCameraSink``) and ``file``
(``outputs.FileSink``, an mp4 recording).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import OutputError
from .outputs import FileSink, VirtualCameraSink


@runtime_checkable
class Sink(Protocol):
    """One output of the stream. ``send`` runs on the inference thread for every output frame (HxWx3
    uint8 RGB at the output size, read-only: copy it to keep it) and must return quickly (a slow
    writer queues on its own thread and drops, it never blocks the stream). ``send`` raising stops
    this sink alone (the pipeline closes it and says why once); the other outputs carry on."""

    def open(self) -> None:
        """Acquire the device or file; raises ``OutputError`` (one line with the fix) if it cannot."""

    def send(self, frame: np.ndarray) -> None: ...

    def close(self) -> Any:
        """Release everything; idempotent. May return what it produced (a recording's path)."""


SinkFactory = Callable[..., Sink]
_REGISTRY: dict[str, SinkFactory] = {}


def register_sink(name: str, factory: SinkFactory) -> None:
    """Make a sink kind available as ``name`` (replacing one of that name)."""
    _REGISTRY[name] = factory


def unregister_sink(name: str) -> None:
    _REGISTRY.pop(name, None)


def sink_names() -> list[str]:
    return sorted(_REGISTRY)


def make_sink(name: str, **options: Any) -> Sink:
    """A new, unopened sink of kind ``name`` built with ``options``; OutputError for an unknown kind."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise OutputError(f"no output called {name!r}; available: {', '.join(sink_names())}.")
    return factory(**options)


register_sink("virtual-camera", VirtualCameraSink)
register_sink("file", FileSink)
