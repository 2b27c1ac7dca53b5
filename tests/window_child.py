"""The window in a child process for tests/test_stop_signals.py: records the live output and says
"recording" once frames are in the file; then waits in Qt's loop (``gui.app.run_window``, as the
real ``avatarcam`` does) for a signal. Arguments: CHECKPOINT CAMERA RECORD_DIR."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6.QtCore import QTimer  # noqa: E402

from avatarcam.gui.app import create_window, ensure_app, run_window  # noqa: E402
from avatarcam.settings import Settings  # noqa: E402


def main() -> int:
    checkpoint, camera, record_dir = sys.argv[1:4]
    app = ensure_app()
    window = create_window(Settings(checkpoint=checkpoint, camera=camera, vcam=False, record_dir=record_dir),
                           persist=False)
    window.show()
    timer = QTimer()

    def poll() -> None:
        pipeline = window.pipeline
        if pipeline is None:
            return
        if not pipeline.recording:
            window.ui.actions.record.setChecked(True)
        elif pipeline.stats().recorded_frames >= 3:
            timer.stop()
            print("recording", flush=True)

    timer.timeout.connect(poll)
    timer.start(20)
    return run_window(app, window)


if __name__ == "__main__":
    sys.exit(main())
