"""Starting the window: where Qt cannot start, one line says why (never Qt's abort); the window's
command-line options override the saved settings for this session only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gui_support import TIMEOUT_MS, wait_frames

from avatarcam.cli import build_parser
from avatarcam.gui.layout import PAGE_LIVE
from avatarcam.gui.options import overrides
from avatarcam.qtcheck import debian_package, missing_libraries, plugin_path, qt_platform_problem
from avatarcam.settings import Settings, load_settings, save_settings

pytest_plugins = ("gui_fixtures",)
ROOT = Path(__file__).resolve().parent.parent


def no_display_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT), **extra)
    return env


def test_avatarcam_without_a_display_prints_one_line_instead_of_aborting(tmp_path):
    env = no_display_env(AVATARCAM_CONFIG_DIR=str(tmp_path / "c"), AVATARCAM_DATA_DIR=str(tmp_path / "d"))
    done = subprocess.run([sys.executable, "-m", "avatarcam"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2  # not -6 / 134 (SIGABRT)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Aborted" not in done.stderr and "core dumped" not in done.stderr
    assert lines[0].startswith("avatarcam: error: The window cannot start")
    assert "DISPLAY" in lines[0] and "avatarcam run" in lines[0]


def test_an_unreachable_display_is_found_by_the_check(tmp_path):
    # a display that does not exist: Qt itself would abort; the check says so in one line
    problem = qt_platform_problem(no_display_env(DISPLAY=":97"))
    assert problem is not None and "avatarcam run" in problem and "\n" not in problem


def test_the_check_names_the_missing_system_libraries():
    plugin = plugin_path("xcb")
    assert plugin is not None and plugin.name == "libqxcb.so"
    missing = missing_libraries(plugin)  # what ldd says on this machine, perhaps nothing
    problem = qt_platform_problem(no_display_env(DISPLAY=":97"), probe=False)
    for lib in missing:
        assert lib in problem and debian_package(lib) in problem
    if not missing:
        assert problem is None  # the cheap checks pass; only the probe can see the missing display


def test_debian_package_names():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"


def test_platforms_without_a_window_system_need_no_check():
    assert qt_platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_window_options_are_parsed_with_the_declared_choices(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["--checkpoint", "m.pth", "--camera", "2", "--no-vcam", "--backend", "onnx",
                              "--no-ai-label"])
    assert overrides(args) == {"checkpoint": str(Path("m.pth").absolute()), "camera": "2", "vcam": False,
                               "backend": "onnx", "ai_label": False}
    assert overrides(parser.parse_args([])) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp8"])


def test_options_override_the_saved_settings_for_this_session_only(qtbot, make_window, tiny_checkpoint, clip):
    save_settings(Settings(camera="7", vcam=False, show_stats=False))  # a camera that does not exist here
    args = build_parser().parse_args(["--checkpoint", str(tiny_checkpoint), "--camera", clip])
    w = make_window(load_settings()[0], overrides=overrides(args))
    qtbot.waitUntil(lambda: w.pipeline is not None, timeout=TIMEOUT_MS)
    wait_frames(qtbot, w, 1)
    assert w.ui.stack.currentIndex() == PAGE_LIVE and w.pipeline.config.camera == clip
    w.toggle_stats()
    w.save()  # a change the user made is saved; the overrides are not
    saved = load_settings()[0]
    assert saved.show_stats and saved.camera == "7" and saved.checkpoint is None


def test_a_choice_made_in_the_window_replaces_the_override_and_is_saved(qtbot, make_window):
    w = make_window(Settings(vcam=False), autostart=False, overrides={"camera": "3"})
    w.settings = w.settings.copy(camera="/videos/me.mp4")
    w.save()
    assert load_settings()[0].camera == "/videos/me.mp4"


def test_avatar_option_puts_any_picture_in_the_gallery(qtbot, make_window, tmp_path):
    import cv2
    from synthetic import astronaut_face

    picture = tmp_path / "someone.png"
    cv2.imwrite(str(picture), astronaut_face())
    w = make_window(Settings(vcam=False), autostart=False, overrides=overrides(
        build_parser().parse_args(["--avatar", str(picture)])))
    assert w.current_avatar_path() == str(picture) and w.ui.gallery.currentRow() == len(w.avatars) - 1
    assert not w.ui.notice_bar.isVisible()
    missing = make_window(Settings(vcam=False), autostart=False, overrides={"avatar": str(tmp_path / "no.png")})
    assert missing.ui.notice_bar.isVisible() and "no such picture" in missing.ui.notice_bar.label.text()
