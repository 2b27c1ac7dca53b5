"""Bad-input matrix, media rows: every bad image or output path is one clear error or a correct result."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synthetic import astronaut_face

from avatarcam import imaging
from avatarcam.errors import MediaError, OutputError
from avatarcam.imaging import center_square, load_image
from avatarcam.video import AtomicVideoWriter


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


def test_decompression_bomb_refused_before_decoding(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    cv2.imwrite(str(bomb), np.zeros((7100, 7100), np.uint8))  # 50.4 MP, a few KB on disk
    assert bomb.stat().st_size < 1 << 20

    def no_decode(*_a, **_k):
        raise AssertionError("decoded a decompression bomb")

    monkeypatch.setattr(imaging.cv2, "imdecode", no_decode)
    assert "megapixel limit" in _error(bomb)


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
