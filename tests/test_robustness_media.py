"""Bad-input matrix, media rows: every bad image or output path is one clear error or a correct result."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import astronaut_face

from avatarcam import imaging
from avatarcam.errors import MediaError, OutputError
from avatarcam.imaging import center_square, load_image
from avatarcam.video import SYNTHETIC_NOTE, VIDEO_SUFFIXES, AtomicVideoWriter


@pytest.fixture
def face_png(tmp_path):
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut_face(128), cv2.COLOR_RGB2BGR))
    return path


def _error(path) -> str:
    with pytest.raises(MediaError) as info:
        load_image(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_empty_text_corrupt(tmp_path, face_png):
    assert "not found" in _error(tmp_path / "nope.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "empty" in _error(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("hello " * 100)
    assert "not a readable image" in _error(text)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(face_png.read_bytes()[:200])
    assert "not a readable image" in _error(corrupt)
    assert "not a file" in _error(tmp_path)


def png_header(width: int, height: int, color_type: int = 2, bit_depth: int = 8) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + \
        chunk(b"IEND", b"")


def _no_decode(*_a, **_k):
    raise AssertionError("decoded a decompression bomb")


def test_decompression_bomb_refused_before_decoding(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(30_000, 30_000))  # 900 megapixels claimed by a few hundred bytes
    monkeypatch.setattr(imaging.cv2, "imdecode", _no_decode)
    assert "megapixel limit" in _error(bomb)


def test_picture_too_big_to_decode_whole_refused_before_decoding(tmp_path, monkeypatch):
    # 300 MP of 16-bit RGBA PNG (no reduced decoding for PNG): 2.4 GB to decode, over the memory bound
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(20_000, 15_000, color_type=6, bit_depth=16))
    monkeypatch.setattr(imaging.cv2, "imdecode", _no_decode)
    msg = _error(huge)
    assert "MB to decode" in msg and "JPEG" in msg


def _phone_photo(width: int, height: int) -> np.ndarray:
    """A big picture with the astronaut's face in the middle (JPEG compresses the flat rest to little)."""
    img = np.full((height, width, 3), 90, np.uint8)
    face = cv2.cvtColor(astronaut_face(height // 2), cv2.COLOR_RGB2BGR)
    top, left = height // 4, (width - face.shape[1]) // 2
    img[top:top + face.shape[0], left:left + face.shape[1]] = face
    return img


def test_phone_photo_is_decoded_reduced_instead_of_refused(tmp_path, monkeypatch):
    photo = tmp_path / "phone.jpg"
    cv2.imwrite(str(photo), _phone_photo(8000, 6000), [cv2.IMWRITE_JPEG_QUALITY, 85])  # 48 MP
    flags = []
    decode = imaging.cv2.imdecode
    monkeypatch.setattr(imaging.cv2, "imdecode", lambda data, flag: flags.append(flag) or decode(data, flag))
    img = load_image(photo)  # refused as "over the 50 megapixel limit" before
    assert flags == [cv2.IMREAD_REDUCED_COLOR_2]  # the JPEG decoder itself skips 3 of 4 pixels
    assert img.shape == (3000, 4000, 3) and img.shape[0] * img.shape[1] <= imaging.MAX_DECODED_PIXELS
    assert 0.3 < img[1500, 2000].mean() < 0.9 and abs(img[10, 10].mean() - 90 / 255) < 0.02


def test_huge_png_is_scaled_down_within_the_bound(tmp_path):
    picture = tmp_path / "scan.png"
    cv2.imwrite(str(picture), _phone_photo(8000, 8000))  # 64 MP
    img = load_image(picture)
    assert img.shape[0] * img.shape[1] <= imaging.MAX_DECODED_PIXELS
    assert img.shape[0] == img.shape[1] > 3000  # aspect kept, not reduced more than needed


def test_phone_photo_becomes_an_avatar(tmp_path):
    from avatarcam.pipeline.avatar_picture import MAX_PICTURE_SIDE
    from avatarcam.pipeline.avatars import add_avatar

    photo = tmp_path / "IMG_0001.jpg"
    cv2.imwrite(str(photo), _phone_photo(8000, 8000), [cv2.IMWRITE_JPEG_QUALITY, 85])  # 64 MP
    added = add_avatar(photo, tmp_path / "avatars")
    h, w = cv2.imread(str(added)).shape[:2]
    assert h == w and 1000 < h <= MAX_PICTURE_SIDE  # kept whole, scaled down (decoded reduced, then bounded)


def test_tiny_image_refused(tmp_path):
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((8, 8, 3), np.uint8))
    assert "too small" in _error(tiny)


@pytest.mark.parametrize("kind", ["grey", "rgba", "16bit", "16bit-grey", "wide", "tall"])
def test_odd_formats_convert_to_rgb_float(tmp_path, kind):
    face = cv2.cvtColor(astronaut_face(96), cv2.COLOR_RGB2BGR)
    image = {
        "grey": cv2.cvtColor(face, cv2.COLOR_BGR2GRAY),
        "rgba": np.dstack([face, np.full(face.shape[:2], 255, np.uint8)]),
        "16bit": face.astype(np.uint16) * 257,
        "16bit-grey": cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257,
        "wide": np.hstack([face] * 8),
        "tall": np.vstack([face] * 5),
    }[kind]
    path = tmp_path / f"{kind}.png"
    assert cv2.imwrite(str(path), image)
    out = load_image(path)
    assert out.dtype == np.float32 and out.ndim == 3 and out.shape[2] == 3
    assert 0.0 <= out.min() and out.max() <= 1.0
    sq = center_square(out)
    assert sq.shape[0] == sq.shape[1] == min(out.shape[:2])
    if kind in ("16bit", "rgba"):  # same picture as the 8-bit original
        ref = cv2.cvtColor(face, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        assert np.abs(out - ref).max() < 1e-3


def test_transparent_pixels_become_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent except one pixel
    rgba[5, 5, 3] = 255
    out = imaging.to_rgb_float(rgba)
    assert np.allclose(out[0, 0], 1.0) and np.allclose(out[5, 5], [1.0, 0.0, 0.0])


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="does not exist"):
        AtomicVideoWriter(blocker / "out.mp4", fps=10)
    with pytest.raises(OutputError, match="does not exist"):
        AtomicVideoWriter(tmp_path / "no" / "such" / "dir" / "out.mp4", fps=10)


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's read-only /sys")
def test_read_only_place_refused_at_once():
    # /sys refuses new files even to root (for whom os.access says yes): the temporary file is made at once
    with pytest.raises(OutputError, match="cannot write to /sys"):
        AtomicVideoWriter("/sys/out.mp4", fps=10)


@pytest.mark.parametrize("name", ["out.mkv", "out.avi", "out", "folder"])
def test_output_container_or_folder_refused_before_any_frame(tmp_path, name):
    # before: .mkv/.avi/no extension failed only after the whole run ("cannot tag the video as
    # synthetic"), a folder at the final rename
    target = tmp_path / name
    if name == "folder":
        target.mkdir()
    with pytest.raises(OutputError) as info:
        AtomicVideoWriter(target, fps=10)
    msg = str(info.value)
    assert "\n" not in msg and str(target) in msg
    assert ("is a folder" if name == "folder" else "use " + str(target.with_suffix(".mp4"))) in msg
    assert [p.name for p in tmp_path.iterdir()] == (["folder"] if name == "folder" else [])


@pytest.mark.parametrize("suffix", VIDEO_SUFFIXES + (".MP4",))
def test_every_accepted_container_is_written_and_tagged(tmp_path, suffix):
    from mutagen.mp4 import MP4

    with AtomicVideoWriter(tmp_path / f"out{suffix}", fps=10) as writer:
        for i in range(3):
            writer.write(np.full((32, 32, 3), 60 * i, np.uint8))
    cap = cv2.VideoCapture(str(writer.path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()
    assert MP4(str(writer.path))["desc"] == [SYNTHETIC_NOTE]


def test_failed_publish_keeps_no_partial_file(tmp_path, monkeypatch):
    """Disk full at the final rename: a clear error, no partial file, nothing at the target."""
    import errno
    import os

    writer = AtomicVideoWriter(tmp_path / "out.mp4", fps=10)
    writer.write(np.zeros((32, 32, 3), np.uint8))

    def full(*_a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="No space left"):
        writer.close()
    assert list(tmp_path.iterdir()) == []
