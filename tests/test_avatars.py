"""Avatar folders: listing, adding (never overwriting), rejecting bad pictures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarcam import paths
from avatarcam.errors import AvatarcamError, MediaError
from avatarcam.pipeline.avatars import add_avatar, default_avatar, list_avatars, load_avatar
from avatarcam.pipeline.crop import CROP_SIZE


def test_bundled_avatars_are_listed_and_documented():
    bundled = [a for a in list_avatars() if a.bundled]
    names = {a.path.name for a in bundled}
    assert "astronaut.png" in names
    readme = (paths.bundled_avatars_dir() / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert name in readme  # source and licence of every bundled picture
        assert load_avatar(paths.bundled_avatars_dir() / name).shape == (CROP_SIZE, CROP_SIZE, 3)


def _photo(tmp_path, astronaut, name="me.jpg"):
    path = tmp_path / name
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def test_add_good_picture_never_overwrites(tmp_path, astronaut):
    src = _photo(tmp_path, astronaut)
    first = add_avatar(src)
    second = add_avatar(src)
    assert first.parent == paths.user_avatars_dir()
    assert first.name == "me.png" and second.name == "me-2.png"
    img = cv2.imread(str(first))
    assert img.shape == astronaut.shape  # the whole picture: the output shows it, the face is framed later
    user = [a for a in list_avatars() if not a.bundled]
    assert [a.path.name for a in user] == ["me-2.png", "me.png"]
    # an unrelated existing file with the next name is kept as it is
    (first.parent / "me-3.png").write_bytes(b"keep")
    third = add_avatar(src)
    assert third.name == "me-4.png" and (first.parent / "me-3.png").read_bytes() == b"keep"


def test_add_corrupt_picture_copies_nothing(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    with pytest.raises(MediaError, match="broken.png"):
        add_avatar(bad)
    folder = paths.user_avatars_dir()
    assert not folder.exists() or not any(folder.iterdir())
    with pytest.raises(MediaError):
        add_avatar(tmp_path / "missing.jpg")


def test_add_keeps_the_whole_picture_and_the_model_sees_the_face(tmp_path, astronaut):
    from avatarcam.pipeline.avatars import prepare_avatar_image

    wide = np.full((480, 900, 3), 90, np.uint8)
    wide[100:400, 500:800] = astronaut[0:300, 105:405]
    path = add_avatar(_photo(tmp_path, wide, "wide.png"))
    out = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(out, wide)  # the HD output shows the whole picture
    # the flat grey background must not dominate the model's input: the face was found, not the centre
    assert np.abs(prepare_avatar_image(path).astype(int) - 90).mean() > 30


def test_default_avatar_is_bundled_and_its_absence_is_one_line(monkeypatch, tmp_path):
    assert Path(default_avatar()).parent == paths.bundled_avatars_dir()
    monkeypatch.setattr(paths, "bundled_avatars_dir", lambda: tmp_path / "gone")
    with pytest.raises(AvatarcamError, match="--avatar"):
        default_avatar()
