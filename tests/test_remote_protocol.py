"""The wire format on its own (no Ray): sizes, validation and refusals."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from avatarcam.errors import AvatarcamError
from avatarcam.remote.client import RemoteOptions
from avatarcam.remote.protocol import (
    HEADER,
    MAX_CONTROL_BYTES,
    PROTOCOL_VERSION,
    Frame,
    Kind,
    ProtocolError,
    control,
    decode_image,
    decode_picture,
    encode_picture,
    keypoints_from_json,
    keypoints_to_json,
    pack_keypoints,
    parse_control,
    unpack_frame,
    unpack_keypoints,
)


def _keypoints(k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (1, k, 2)).astype(np.float32), rng.normal(size=(1, k, 2, 2)).astype(np.float32)


def test_keypoint_frame_is_under_one_kilobyte_and_round_trips_exactly():
    value, jac = _keypoints()
    message = Frame(Kind.KEYPOINTS, 7, pack_keypoints(value, jac), t_sent=12.5).pack()
    assert len(message) <= 1024, len(message)
    frame = unpack_frame(message, (Kind.KEYPOINTS,))
    assert (frame.seq, frame.t_sent) == (7, 12.5)
    got_value, got_jac = unpack_keypoints(frame.payload)
    np.testing.assert_array_equal(got_value, value)
    np.testing.assert_array_equal(got_jac, jac)
    json_value, json_jac = keypoints_from_json(json.loads(json.dumps(keypoints_to_json(value, jac))))
    np.testing.assert_array_equal(json_value, value)  # float32 -> JSON -> float32 is exact
    np.testing.assert_array_equal(json_jac, jac)


@pytest.mark.parametrize("mangle, code", [
    (lambda m: m[:10], "bad_frame"),  # shorter than the header
    (lambda m: b"XX" + m[2:], "bad_frame"),  # wrong magic
    (lambda m: m + b"\0", "bad_frame"),  # length field disagrees with the payload
    (lambda m: m[:3] + bytes([Kind.AVATAR]) + m[4:], "bad_frame"),  # a kind not allowed here
])
def test_malformed_frames_are_refused_with_a_code(mangle, code):
    value, jac = _keypoints()
    message = Frame(Kind.KEYPOINTS, 1, pack_keypoints(value, jac)).pack()
    with pytest.raises(ProtocolError) as err:
        unpack_frame(mangle(message), (Kind.KEYPOINTS,))
    assert err.value.code == code


def test_oversized_payload_is_fatal():
    message = Frame(Kind.KEYPOINTS, 1, b"\0" * 4000).pack()
    with pytest.raises(ProtocolError) as err:
        unpack_frame(message, (Kind.KEYPOINTS,))
    assert err.value.code == "too_large" and err.value.fatal


@pytest.mark.parametrize("payload", [
    b"", bytes([10, 1]) + b"\0" * 10,  # empty; fewer bytes than 10 keypoints need
    pack_keypoints(np.full((1, 10, 2), np.nan, np.float32), None),  # not finite
    pack_keypoints(np.full((1, 10, 2), 1e6, np.float32), None),  # absurd values
])
def test_bad_keypoints_are_refused(payload):
    with pytest.raises(ProtocolError) as err:
        unpack_keypoints(payload)
    assert err.value.code == "bad_keypoints"


@pytest.mark.parametrize("text, needle", [
    ("not json", "not JSON"),
    (json.dumps({"type": "launch_missiles"}), "not expected"),
    (json.dumps({"type": "hello", "version": PROTOCOL_VERSION, "avatar": "a" * 64, "mode": "keypoints",
                 "downlink": "jpeg"}),
     "exactly the fields"),
    (json.dumps({"type": "hello", "version": PROTOCOL_VERSION, "avatar": "zz", "proof": "a" * 64, "mode": "video",
                 "downlink": "jpeg", "quality": 101}), "invalid avatar, mode, quality"),
    ("x" * (MAX_CONTROL_BYTES + 1), "over the"),
    (json.dumps({"type": "hello", "version": PROTOCOL_VERSION - 1, "avatar": "a" * 64, "proof": "a" * 64,
                 "mode": "keypoints", "downlink": "jpeg", "quality": 90}), "invalid version"),
])
def test_control_messages_follow_the_schema(text, needle):
    with pytest.raises(ProtocolError) as err:
        parse_control(text, ("hello",))
    assert needle in err.value.message


def test_control_builder_refuses_what_the_parser_would():
    assert parse_control(control("ping", t=1.5), ("ping",))["t"] == 1.5
    with pytest.raises(ProtocolError):
        control("ping", t="soon")


def test_pictures_round_trip(astronaut):
    rgb = cv2.resize(astronaut, (256, 256))
    for downlink in ("raw", "png"):  # lossless
        np.testing.assert_array_equal(decode_picture(encode_picture(rgb, downlink), downlink), rgb)
    jpeg = decode_picture(encode_picture(rgb, "jpeg", 90), "jpeg")
    mse = np.mean((jpeg.astype(float) - rgb) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30
    with pytest.raises(ProtocolError):
        decode_picture(b"\0" * 100, "raw")  # not a square RGB picture


def test_untrusted_images_are_checked_before_decoding():
    ok, big = cv2.imencode(".png", np.zeros((300, 300, 3), np.uint8))
    with pytest.raises(ProtocolError, match="300x300 pixels"):
        decode_image(big.tobytes(), "face crop", max_pixels=256 * 256)
    with pytest.raises(ProtocolError, match="not a readable"):
        decode_image(b"GIF89a garbage", "avatar")


def test_header_is_fixed_size():
    assert HEADER.size == 26


@pytest.mark.parametrize("kwargs, needle", [
    ({"url": "http://x:1"}, "ws://"), ({"mode": "video"}, "uplink mode"), ({"downlink": "gif"}, "downlink"),
    ({"quality": 0}, "quality"), ({"max_in_flight": 3}, "max_in_flight"),
])
def test_client_options_are_validated(kwargs, needle):
    args = {"url": "ws://127.0.0.1:1", "token": "t", **kwargs}
    with pytest.raises(AvatarcamError, match=needle):
        RemoteOptions(**args)


def test_deep_json_is_refused_before_parsing_without_recursion_error():
    for text in ("[" * 8000 + "]" * 8000, '{"a":' * 2000 + "1" + "}" * 2000):
        with pytest.raises(ProtocolError) as err:
            parse_control(text, ("ping",))
        assert err.value.code == "bad_message" and not err.value.fatal and "deeper than" in err.value.message
    assert parse_control(json.dumps({"type": "ping", "t": 1.0}), ("ping",))["t"] == 1.0
    deep_string = json.dumps({"type": "ping", "t": 1, "x": "[" * 100})  # brackets inside a string do not nest
    with pytest.raises(ProtocolError, match="exactly the fields"):
        parse_control(deep_string, ("ping",))


def test_a_message_bigger_than_anything_allowed_here_is_fatal_whatever_its_header_says():
    from avatarcam.remote.protocol import MAX_AVATAR_BYTES

    avatar = Frame(Kind.AVATAR, 1, b"\0" * (MAX_AVATAR_BYTES // 2)).pack()  # fine at the upload, not mid-session
    assert unpack_frame(avatar, (Kind.AVATAR,)).kind == Kind.AVATAR
    with pytest.raises(ProtocolError) as err:
        unpack_frame(avatar, (Kind.KEYPOINTS,))
    assert err.value.code == "too_large" and err.value.fatal


def test_avatar_proof_depends_on_the_nonce_and_the_file():
    from avatarcam.remote.protocol import avatar_proof

    nonce, other = "01" * 32, "02" * 32
    assert avatar_proof(nonce, b"file") == avatar_proof(nonce, b"file")
    assert len({avatar_proof(nonce, b"file"), avatar_proof(other, b"file"), avatar_proof(nonce, b"filf")}) == 3
