"""avatarcam: a real-time webcam avatar built on the First Order Motion Model."""

__version__ = "0.1.0"
