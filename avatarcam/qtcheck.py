"""Can the Qt window start here? Checked WITHOUT creating a QApplication.

Qt aborts the whole process (SIGABRT, no Python exception) when its platform plugin cannot load,
with a message that often names the wrong library. So ``avatarcam`` and ``avatarcam doctor`` ask
``qt_platform_problem()`` first: cheap checks (is there a display, does ``ldd`` find every library
of the xcb plugin) and then, only when those pass, a throw-away subprocess that creates a
QApplication. Qt-free: importing this module loads no Qt library.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HEADLESS = "or use `avatarcam run` (no window)"
NO_WINDOW_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay")
PROBE = "from PyQt6.QtWidgets import QApplication; QApplication(['avatarcam-qtcheck'])"
PROBE_TIMEOUT_S = 30.0
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def qt_platform(env: dict[str, str] | None = None) -> str:
    """The platform plugin Qt will try first: $QT_QPA_PLATFORM, else Wayland or X11 (xcb) on Linux."""
    env = os.environ if env is None else env
    chosen = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen
    if not sys.platform.startswith("linux"):
        return "native"
    return "wayland" if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland" else "xcb"


def plugin_path(platform: str) -> Path | None:
    """PyQt6's platform plugin file (e.g. .../Qt6/plugins/platforms/libqxcb.so), found without importing Qt."""
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "Qt6" / "plugins" / "platforms" / f"libq{platform}.so"
    return path if path.is_file() else None


def missing_libraries(library: str | os.PathLike) -> list[str]:
    """The shared libraries ``ldd`` cannot find for ``library`` (in order, once each); [] without ldd."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run([ldd, os.fspath(library)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(dict.fromkeys(_NOT_FOUND.findall(out)))


def debian_package(soname: str) -> str:
    """The usual Debian/Ubuntu package of a library: libxcb-icccm.so.4 -> libxcb-icccm4,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0."""
    name, _, version = soname.partition(".so.")
    name = name.lower()
    if not version:
        return name
    return f"{name}{'-' if name[-1].isdigit() else ''}{version.split('.')[0]}"


def _display_problem(platform: str, env: dict[str, str]) -> str | None:
    if platform == "xcb" and not env.get("DISPLAY"):
        return "there is no display (DISPLAY is not set): start it from a desktop session"
    if platform == "wayland" and not env.get("WAYLAND_DISPLAY"):
        return "there is no Wayland display (WAYLAND_DISPLAY is not set): start it from a desktop session"
    return None


def _library_problem(platform: str) -> str | None:
    plugin = plugin_path(platform)
    missing = missing_libraries(plugin) if plugin is not None else []
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
    return (f"Qt's {platform} platform plugin is missing the system libraries {', '.join(missing)}: "
            f"install them (Debian/Ubuntu: sudo apt-get install {packages})")


def _probe_problem(env: dict[str, str]) -> str | None:
    """Create a QApplication in a subprocess: the last word on whether Qt can start."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"Qt did not start within {PROBE_TIMEOUT_S:.0f} s (is the display reachable?)"
    except OSError as err:
        return f"the Qt check could not run ({err.strerror or err})"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    said = next((line for line in lines if "could not" in line.lower() or "cannot" in line.lower()),
                lines[-1] if lines else f"exit status {done.returncode}")
    return f"Qt could not start ({said[:200]}): check that the display is running and reachable"


def qt_platform_problem(env: dict[str, str] | None = None, *, probe: bool = True) -> str | None:
    """None when the window can start here; else ONE line: what is wrong, the fix, and the headless
    alternative. Cheap checks first; ``probe`` adds the subprocess check (about a second)."""
    env = dict(os.environ if env is None else env)
    platform = qt_platform(env)
    if platform in NO_WINDOW_PLATFORMS:
        return None
    if importlib.util.find_spec("PyQt6") is None:
        return f"The window cannot start: PyQt6 is not installed (pip install PyQt6), {HEADLESS}."
    problems = [p for p in (_display_problem(platform, env), _library_problem(platform)) if p]
    if not problems and probe and sys.platform.startswith("linux"):
        problems = list(filter(None, [_probe_problem(env)]))
    if not problems:
        return None
    return f"The window cannot start: {'; '.join(problems)}; {HEADLESS}."
