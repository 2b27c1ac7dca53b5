"""The remote worker's wire format: a fixed schema, validated on both ends, with size limits.

One WebSocket per calling session. Text messages are JSON control messages (``challenge``, ``hello``,
``ready``, ``need_avatar``, ``ping``/``pong``, ``error``); binary messages are frames with a fixed
little-endian header (:data:`HEADER`) followed by a payload:

    magic "AV" | version u8 | kind u8 | flags u16 | seq u32 | t_sent f64 | model_ms f32 | length u32

``seq`` numbers every frame of a session (strictly increasing uplink; a picture carries the seq of
the frame it answers), ``t_sent`` is the client's clock echoed back (round-trip time) and
``model_ms`` is the model step the frame took on the server (transport overhead = round trip minus it).
No pickle, no generic RPC: anything that does not match the schema is refused with a
:class:`ProtocolError` whose ``code`` is sent back to the peer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from ..engine.options import NEUTRAL_MODES, NEUTRAL_WINDOW_RANGE

# 2: ready names the replica's direct port; 3: proof of possession of the avatar, image mode's neutral pose
PROTOCOL_VERSION = 3
MAGIC = b"AV"
HEADER = struct.Struct("<2sBBHIdfI")
KEYPOINT_HEAD = struct.Struct("<BB")  # keypoint count, has-jacobian

MAX_KEYPOINTS = 64
MAX_CONTROL_BYTES = 16 << 10
MAX_JSON_DEPTH = 8  # the deepest message (ready's jacobians) nests 6 levels
MAX_UPLINK_IMAGE_BYTES = 512 << 10  # one JPEG face crop
MAX_AVATAR_BYTES = 8 << 20  # one avatar upload (PNG/JPEG)
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_PICTURE_BYTES = 4 << 20  # one downlink picture
MAX_MESSAGE_BYTES = HEADER.size + MAX_AVATAR_BYTES  # the WebSocket message size limit, both ends
MAX_SEQ = 2**32 - 1

MODES = ("keypoints", "image")  # what the client sends: its face's keypoints, or a JPEG crop
DOWNLINKS = ("jpeg", "png", "raw")  # how pictures come back; png and raw are lossless
QUALITY_RANGE = (10, 100)
DEFAULT_QUALITY = 90  # measured: see docs/remote.md (PSNR vs bytes at 256x256)

AVATAR_ID = re.compile(r"[0-9a-f]{64}")  # sha256 of the uploaded avatar file
TOKEN_HEADER = "authorization"  # "Bearer <token>"
MULTIPLEX_HEADER = "serve_multiplexed_model_id"  # Ray Serve routes a session to a replica by this


class Kind(IntEnum):
    KEYPOINTS = 1  # client -> server: the driving keypoints, already relative to the neutral pose
    IMAGE = 2  # client -> server: a JPEG face crop (image mode)
    AVATAR = 3  # client -> server: the avatar file, answering need_avatar
    PICTURE = 16  # server -> client: the animated avatar


class Flag(IntEnum):
    CALIBRATE = 1  # IMAGE: this frame becomes the neutral pose (image mode keeps it on the server)


PICTURE_ENCODING = {name: i for i, name in enumerate(DOWNLINKS)}  # PICTURE flags = downlink index


class ProtocolError(Exception):
    """A message that breaks the schema. ``code`` goes back to the peer; ``fatal`` closes the session."""

    def __init__(self, code: str, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.fatal = code, message, fatal


@dataclass(frozen=True)
class Frame:
    kind: Kind
    seq: int
    payload: bytes
    flags: int = 0
    t_sent: float = 0.0
    model_ms: float = 0.0

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, PROTOCOL_VERSION, int(self.kind), self.flags, self.seq, self.t_sent,
                           self.model_ms, len(self.payload)) + self.payload


_PAYLOAD_LIMITS = {Kind.KEYPOINTS: KEYPOINT_HEAD.size + MAX_KEYPOINTS * 24, Kind.IMAGE: MAX_UPLINK_IMAGE_BYTES,
                   Kind.AVATAR: MAX_AVATAR_BYTES, Kind.PICTURE: MAX_PICTURE_BYTES}


def unpack_frame(data: bytes, allowed: tuple[Kind, ...]) -> Frame:
    """Parse and check one binary message; raises ProtocolError. A message bigger than any kind allowed
    here could carry is fatal whatever its header says (junk that size is not worth a second try)."""
    limit = HEADER.size + max(_PAYLOAD_LIMITS[kind] for kind in allowed)
    if len(data) > limit:
        raise ProtocolError("too_large", f"binary message of {len(data)} bytes is over the {limit} byte limit "
                            "here", fatal=True)
    if len(data) < HEADER.size:
        raise ProtocolError("bad_frame", f"binary message of {len(data)} bytes is shorter than the header")
    magic, version, kind, flags, seq, t_sent, model_ms, length = HEADER.unpack_from(data)
    if magic != MAGIC or version != PROTOCOL_VERSION:
        raise ProtocolError("bad_frame", f"not an avatarcam v{PROTOCOL_VERSION} frame; update the client", fatal=True)
    if kind not in _PAYLOAD_LIMITS or Kind(kind) not in allowed:
        raise ProtocolError("bad_frame", f"frame kind {kind} is not allowed here")
    kind = Kind(kind)
    if length != len(data) - HEADER.size:
        raise ProtocolError("bad_frame", f"frame says {length} payload bytes but carries {len(data) - HEADER.size}")
    if length > _PAYLOAD_LIMITS[kind]:
        raise ProtocolError("too_large", f"{kind.name.lower()} payload of {length} bytes is over the "
                            f"{_PAYLOAD_LIMITS[kind]} byte limit", fatal=True)
    return Frame(kind, seq, bytes(data[HEADER.size:]), flags, t_sent, model_ms)


# keypoints ------------------------------------------------------------------------------------
def pack_keypoints(value: np.ndarray, jacobian: np.ndarray | None) -> bytes:
    """(1,K,2) positions and (1,K,2,2) jacobians -> 2 + K*24 bytes of float32 (240 B for K=10)."""
    value = np.asarray(value, "<f4").reshape(-1, 2)
    parts = [KEYPOINT_HEAD.pack(len(value), jacobian is not None), value.tobytes()]
    if jacobian is not None:
        parts.append(np.asarray(jacobian, "<f4").reshape(len(value), 2, 2).tobytes())
    return b"".join(parts)


def unpack_keypoints(payload: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """-> ((1,K,2), (1,K,2,2) or None) float32, finite and inside a sane range."""
    if len(payload) < KEYPOINT_HEAD.size:
        raise ProtocolError("bad_keypoints", "keypoint payload is empty")
    count, has_jac = KEYPOINT_HEAD.unpack_from(payload)
    expected = KEYPOINT_HEAD.size + count * (24 if has_jac else 8)
    if not 1 <= count <= MAX_KEYPOINTS or has_jac > 1 or len(payload) != expected:
        raise ProtocolError("bad_keypoints", f"keypoint payload of {len(payload)} bytes does not hold {count} "
                            "keypoints")
    data = np.frombuffer(payload, "<f4", offset=KEYPOINT_HEAD.size).astype(np.float32)
    if not np.all(np.isfinite(data)) or np.abs(data).max() > 100.0:
        raise ProtocolError("bad_keypoints", "keypoints must be finite and within [-100, 100]")
    value = data[:count * 2].reshape(1, count, 2)
    return value, (data[count * 2:].reshape(1, count, 2, 2) if has_jac else None)


def keypoints_to_json(value: np.ndarray, jacobian: np.ndarray | None) -> dict:
    return {"value": np.asarray(value, np.float32).tolist(),
            "jacobian": None if jacobian is None else np.asarray(jacobian, np.float32).tolist()}


def keypoints_from_json(data: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """The avatar's keypoints from a ``ready`` message, checked like the binary ones."""
    try:
        value = np.asarray(data["value"], np.float32)
        jac = None if data.get("jacobian") is None else np.asarray(data["jacobian"], np.float32)
    except (KeyError, TypeError, ValueError):
        raise ProtocolError("bad_message", "ready.keypoints is not a list of numbers") from None
    return unpack_keypoints(pack_keypoints(value, jac))


# pictures -------------------------------------------------------------------------------------
def encode_picture(rgb: np.ndarray, downlink: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """HxWx3 uint8 RGB -> bytes for the downlink (jpeg at ``quality``, png, or raw pixels)."""
    if downlink == "raw":
        return np.ascontiguousarray(rgb, np.uint8).tobytes()
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if downlink == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(".jpg" if downlink == "jpeg" else ".png", bgr, params)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 picture
        raise ProtocolError("encode_failed", f"could not encode a {downlink} picture")
    return buf.tobytes()


def decode_picture(payload: bytes, downlink: str) -> np.ndarray:
    """Inverse of :func:`encode_picture` -> HxWx3 uint8 RGB; raises ProtocolError."""
    if downlink == "raw":
        side = int(round((len(payload) / 3) ** 0.5))
        if side < 1 or side * side * 3 != len(payload):
            raise ProtocolError("bad_picture", f"raw picture of {len(payload)} bytes is not a square RGB image")
        return np.frombuffer(payload, np.uint8).reshape(side, side, 3).copy()
    return decode_image(payload, "picture")


def decode_image(data: bytes, what: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An untrusted PNG/JPEG -> HxWx3 uint8 RGB. The pixel count is read from the header before decoding."""
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as im:
            width, height = im.size
    except Exception:
        raise ProtocolError("bad_image", f"the {what} is not a readable PNG or JPEG") from None
    if width * height > max_pixels or min(width, height) < 16:
        raise ProtocolError("bad_image", f"the {what} is {width}x{height} pixels; use 16 to "
                            f"{int(max_pixels ** 0.5)} pixels on each side")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ProtocolError("bad_image", f"the {what} is not a readable PNG or JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def avatar_id(data: bytes) -> str:
    """Content address of an avatar file: its sha256, hex."""
    return hashlib.sha256(data).hexdigest()


def avatar_proof(nonce: str, data: bytes) -> str:
    """Proof that a caller holds the avatar file itself, not just its id: HMAC-SHA256 of the file keyed
    with the session's ``challenge`` nonce (hex). A proof is good for one session only."""
    return hmac.new(bytes.fromhex(nonce), data, hashlib.sha256).hexdigest()


# control messages -----------------------------------------------------------------------------
def _avatar(value) -> bool:
    return isinstance(value, str) and AVATAR_ID.fullmatch(value) is not None


_hex256 = _avatar


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _quality(value) -> bool:
    return isinstance(value, int) and QUALITY_RANGE[0] <= value <= QUALITY_RANGE[1]


def _percent(value) -> bool:
    return value is None or (_number(value) and 0.0 <= value <= 100.0)


def _bool(value) -> bool:
    return isinstance(value, bool)


def _text(value) -> bool:
    return isinstance(value, str) and len(value) <= 1000


# type -> {field: check}. Every field is required; unknown fields are refused.
SCHEMA = {
    "challenge": {"nonce": _hex256},
    "hello": {"version": lambda v: v == PROTOCOL_VERSION, "avatar": _avatar, "proof": _hex256,
              "mode": MODES.__contains__, "downlink": DOWNLINKS.__contains__, "quality": _quality},
    "ready": {"avatar": _avatar, "size": lambda v: isinstance(v, int) and 16 <= v <= 2048,
              "keypoints": lambda v: isinstance(v, dict), "replica": lambda v: isinstance(v, str),
              "engine": lambda v: isinstance(v, str) and len(v) < 200,
              "direct": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535},
    "need_avatar": {"avatar": _avatar},
    "ping": {"t": _number},
    "pong": {"t": _number},
    # image mode: the worker detects, so its session keeps the neutral pose (engine/neutral.py); the client
    # sends the user's choices (X rides on a frame as Flag.CALIBRATE) and shows the session's reading
    "neutral": {"find_best": _bool, "window_s": lambda v: _number(v) and NEUTRAL_WINDOW_RANGE[0] <= v
                <= NEUTRAL_WINDOW_RANGE[1]},
    "pose": {"match": _percent, "best": _percent, "mode": NEUTRAL_MODES.__contains__, "searching": _bool,
             "improvements": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
             "calibrated": _bool},
    "notice": {"message": _text},
    "error": {"code": lambda v: isinstance(v, str), "message": lambda v: isinstance(v, str),
              "fatal": lambda v: isinstance(v, bool)},
}


def hello(challenge: dict, data: bytes, mode: str, downlink: str, quality: int = DEFAULT_QUALITY) -> str:
    """The caller's ``hello`` answering the worker's ``challenge``: the avatar's id and the proof of
    holding its file ``data``."""
    return control("hello", version=PROTOCOL_VERSION, avatar=avatar_id(data),
                   proof=avatar_proof(challenge["nonce"], data), mode=mode, downlink=downlink, quality=quality)


def control(kind: str, **fields) -> str:
    """Build a control message; it is checked against :data:`SCHEMA` like a received one."""
    text = json.dumps({"type": kind, **fields}, separators=(",", ":"))
    parse_control(text, (kind,))
    return text


def parse_control(text: str, allowed: tuple[str, ...]) -> dict:
    """Parse and check one control message; raises ProtocolError."""
    if len(text) > MAX_CONTROL_BYTES:
        raise ProtocolError("too_large", f"control message of {len(text)} bytes is over the "
                            f"{MAX_CONTROL_BYTES} byte limit", fatal=True)
    if nests_deeper(text, MAX_JSON_DEPTH):
        raise ProtocolError("bad_message", f"control message nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        msg = json.loads(text)
    except ValueError:
        raise ProtocolError("bad_message", "control message is not JSON") from None
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind not in allowed:
        raise ProtocolError("bad_message", f"control message type {kind!r} is not expected here "
                            f"(expected {', '.join(allowed)})")
    schema = SCHEMA[kind]
    fields = {k: v for k, v in msg.items() if k != "type"}
    if set(fields) != set(schema):
        raise ProtocolError("bad_message", f"{kind} needs exactly the fields {', '.join(sorted(schema))}")
    bad = [name for name, check in schema.items() if not check(fields[name])]
    if bad:
        raise ProtocolError("bad_message", f"{kind}: invalid {', '.join(bad)}")
    return msg


def nests_deeper(text: str, levels: int) -> bool:
    """Whether the brackets of a JSON text (outside strings) nest deeper than ``levels``, read without
    parsing it: the parser recurses per level and must not be handed thousands of them."""
    if text.count("[") + text.count("{") <= levels:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > levels:
                return True
        elif char in "]}":
            depth -= 1
    return False
