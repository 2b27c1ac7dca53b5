"""Adding avatars: dropped pictures are copied into the user's avatar folder; bad ones are refused."""

from __future__ import annotations

import cv2
from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl
from PyQt6.QtGui import QDropEvent

from avatarcam.settings import Settings

pytest_plugins = ("gui_fixtures",)


def drop(widget, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    widget.dropEvent(QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier))


def test_dropping_a_picture_on_the_gallery_adds_and_picks_it(qtbot, make_window, tmp_path, astronaut):
    w = make_window(Settings(vcam=False), autostart=False)
    n = len(w.avatars)
    good = tmp_path / "friend.jpg"
    cv2.imwrite(str(good), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    drop(w.ui.gallery, good)
    assert len(w.avatars) == n + 1 and w.ui.gallery.count() == n + 1
    assert w.avatars[w.current_avatar].path.name == "friend.png"
    assert w.settings.avatar == str(w.avatars[w.current_avatar].path)


def test_a_corrupt_picture_is_not_added_and_says_why(qtbot, make_window, tmp_path):
    w = make_window(Settings(vcam=False), autostart=False)
    n = len(w.avatars)
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    assert w.add_avatar_files([str(bad)]) == []
    assert len(w.avatars) == n
    assert "corrupt.png" in w.ui.notice_bar.label.text() and w.ui.notice_bar.isVisible()
    assert not any(a.path.name == "corrupt.png" for a in w.avatars)


def test_l_reloads_the_avatar_folders(qtbot, make_window, tmp_path, astronaut):
    from avatarcam.pipeline import avatars

    w = make_window(Settings(vcam=False), autostart=False)
    n = len(w.avatars)
    picture = tmp_path / "later.png"
    cv2.imwrite(str(picture), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    avatars.add_avatar(picture)  # added behind the window's back
    assert len(w.avatars) == n
    qtbot.keyClick(w, Qt.Key.Key_L)
    assert len(w.avatars) == n + 1 and w.ui.gallery.count() == n + 1
