#!/usr/bin/env python
"""Screenshots of the window, the settings dialog, the key map and the unusable-checkpoint panel on a
1366x768 screen (docs/screens/), to check that everything fits a laptop.

    Xvfb :99 -screen 0 1366x768x24 & DISPLAY=:99 python scripts/screens_laptop.py docs/screens

Runs on a fresh checkout: a tiny synthetic checkpoint (random weights, so the output is a blur) and
a synthetic clip of the astronaut portrait; a temporary user folder (your settings are not touched).
The whole screen is grabbed, so what falls off it is missing from the picture.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and its synthetic test data
VCAM_FIX = "Virtual camera unavailable: `avatarcam doctor` shows the fix (fix: sudo modprobe v4l2loopback)"


def _settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def _wait(app, done, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def _shot(app, out: Path, name: str) -> None:
    _settle(app)
    path = out / f"1366x768-{name}.png"
    app.primaryScreen().grabWindow(0).save(str(path))
    print(f"screens: {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for the PNG files")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="avatarcam-screens-"))
    os.environ["AVATARCAM_CONFIG_DIR"] = str(tmp / "config")
    os.environ["AVATARCAM_DATA_DIR"] = str(tmp / "data")

    from synthetic import face_on_background, write_clip, write_synthetic_checkpoint

    from avatarcam.engine import FOMMConfig
    from avatarcam.gui.app import create_window, ensure_app
    from avatarcam.gui.hotkeys import KeyMapDialog
    from avatarcam.gui.settings_dialog import SettingsDialog
    from avatarcam.settings import Settings

    checkpoint = tmp / "vox-adv-cpk.pth.tar"
    write_synthetic_checkpoint(checkpoint, FOMMConfig.tiny(), seed=0)
    pos = [(220 + int(50 * math.sin(i / 6)), 110 + int(25 * math.sin(i / 9))) for i in range(90)]
    camera = write_clip(tmp / "astronaut.mp4", face_on_background(pos, 230))
    app = ensure_app()
    avail = app.primaryScreen().availableGeometry()
    settings = Settings(checkpoint=str(checkpoint), camera=camera, vcam=False, overlay=True, consent_seen=True)
    window = create_window(settings, persist=False)
    window.setGeometry(avail)
    window.show()
    _wait(app, lambda: window.ui.output_view.frames_shown >= 8 or bool(window.last_error))
    window.ui.notice_bar.show_message(VCAM_FIX)
    window.ui.notice_bar.show_message("Added portrait.png to " + str(tmp / "data" / "avatars"), "info")
    window.tell("Saved " + str(Path.home() / "Videos" / ("a-long-folder-name/" * 8)) + "avatarcam-20261206.mp4",
                60)
    _shot(app, out, "window")
    for name, dialog in (("settings", SettingsDialog(window.settings, window)), ("keys", KeyMapDialog(window))):
        dialog.show()
        dialog.move(avail.center() - dialog.rect().center())
        _shot(app, out, name)
        dialog.reject()
    window.close()
    truncated = tmp / "truncated.pth.tar"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    broken = create_window(settings.copy(checkpoint=str(truncated)), persist=False)
    broken.setGeometry(avail)
    broken.show()
    _wait(app, lambda: bool(broken.last_error))
    _shot(app, out, "checkpoint")
    broken.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
