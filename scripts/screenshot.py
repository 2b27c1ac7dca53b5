#!/usr/bin/env python
"""Screenshot of the real avatarcam window: on the display when there is one, else offscreen.

    python scripts/screenshot.py docs/screenshot.png
    Xvfb :99 & DISPLAY=:99 python scripts/screenshot.py docs/screenshot.png   # a real X server
    python scripts/screenshot.py out.png --checkpoint models/vox-adv-cpk.pth.tar --camera me.mp4 --avatar me.png

With no --checkpoint a tiny synthetic checkpoint (random weights, so the output is a blur) is
written to a temporary folder, and with no --camera a synthetic clip of the public-domain
astronaut portrait is used: it runs on a fresh checkout without a webcam or a download.
Your own settings and avatar folder are never touched (a temporary user folder is used).
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="PNG file to write")
    ap.add_argument("--checkpoint", help="model checkpoint (default: a tiny synthetic one)")
    ap.add_argument("--full", action="store_true", help="default checkpoint at full size (slow on CPU)")
    ap.add_argument("--camera", help="camera index, video file or URL (default: a synthetic astronaut clip)")
    ap.add_argument("--avatar", help="avatar picture (default: the first bundled avatar)")
    ap.add_argument("--frames", type=int, default=12, help="frames to let through before the shot (default 12)")
    ap.add_argument("--size", default="1280x760", help="window size WxH (default 1280x760)")
    ap.add_argument("--vcam", action="store_true", help="also try the virtual camera")
    ap.add_argument("--consent", action="store_true", help="show the first-run consent notice too")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    args = ap.parse_args(argv)

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from avatarcam.qtcheck import qt_platform_problem

    problem = qt_platform_problem()
    if problem:
        print(f"screenshot: {problem}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="avatarcam-shot-"))
    os.environ["AVATARCAM_CONFIG_DIR"] = str(tmp / "config")
    os.environ["AVATARCAM_DATA_DIR"] = str(tmp / "data")

    from synthetic import face_on_background, write_clip, write_synthetic_checkpoint

    from avatarcam.engine import FOMMConfig
    from avatarcam.gui.app import create_window, ensure_app
    from avatarcam.settings import Settings

    checkpoint = args.checkpoint
    if not checkpoint:
        checkpoint = str(tmp / "synthetic.pth.tar")
        write_synthetic_checkpoint(checkpoint, None if args.full else FOMMConfig.tiny(), seed=0)
    camera = args.camera
    if not camera:
        pos = [(220 + int(50 * math.sin(i / 6)), 110 + int(25 * math.sin(i / 9))) for i in range(90)]
        camera = write_clip(tmp / "astronaut.mp4", face_on_background(pos, 230))
    w, h = (int(v) for v in args.size.lower().split("x"))

    app = ensure_app()
    settings = Settings(checkpoint=checkpoint, camera=camera, vcam=args.vcam, avatar=args.avatar or "",
                        show_stats=True, overlay=True, overlay_opacity=0.35, consent_seen=not args.consent)
    window = create_window(settings, persist=False, autostart=False)
    if args.avatar:  # a picture outside the avatar folders: show it in the gallery too
        from avatarcam.pipeline.avatars import add_avatar

        window.reload_avatars(keep=str(add_avatar(args.avatar)))
    window.resize(w, h)
    window.show()
    window.start_pipeline()
    deadline = time.monotonic() + args.timeout
    calibrated = False
    while time.monotonic() < deadline:
        app.processEvents()
        shown = window.ui.output_view.frames_shown
        if not calibrated and shown >= max(2, args.frames // 2) and window.pipeline is not None:
            window.calibrate()
            calibrated = True
        if shown >= args.frames or window.last_error:
            break
        time.sleep(0.01)
    for _ in range(5):
        app.processEvents()
        time.sleep(0.02)
    window.message_timer.stop()  # the steady status line, not the passing "Calibrated" message
    window.update_stats()
    window.repaint()
    app.processEvents()
    on_screen = os.environ.get("QT_QPA_PLATFORM") != "offscreen"  # grab what the X server shows
    shot = window.screen().grabWindow(int(window.winId())) if on_screen else window.grab()
    ok = shot.save(args.out)
    frames, error = window.ui.output_view.frames_shown, window.last_error
    window.close()
    if not ok:
        print(f"screenshot: could not write {args.out}", file=sys.stderr)
        return 1
    print(f"screenshot: {args.out} ({frames} frames shown{'; ' + error if error else ''})")
    return 0 if frames or error else 1


if __name__ == "__main__":
    sys.exit(main())
