"""Progress output of the commands: a bar on a terminal, plain lines (no carriage returns) in a log."""

from __future__ import annotations

import subprocess
import sys


def test_export_command_writes_plain_lines_off_a_terminal(tiny_checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "avatarcam", "export-onnx", "--checkpoint", str(tiny_checkpoint),
                           "--out", str(tmp_path / "exported")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr  # no progress-bar updates in a log file
    assert proc.stdout.count("max abs error") == 3  # one line per stage instead
