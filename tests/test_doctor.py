"""`avatarcam doctor`: every section reported, checkpoint pass/fail with its fix."""

from __future__ import annotations

from avatarcam.cli import main

SECTIONS = ("Cameras", "Virtual camera", "PyTorch", "ONNX Runtime", "Model weights", "Face detector")


def test_doctor_with_tiny_checkpoint(tiny_checkpoint, capsys):
    code = main(["doctor", "--checkpoint", str(tiny_checkpoint)])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    for section in SECTIONS:
        assert f"== {section}" in out.out
    weights = out.out.split("== Model weights")[1].split("==")[0]
    assert "[ok  ]" in weights and "FAIL" not in weights
    assert code == 0  # cameras / vcam / CUDA missing are warnings, not failures


def test_doctor_missing_checkpoint(tmp_path, capsys):
    code = main(["doctor", "--checkpoint", str(tmp_path / "none.pth.tar")])
    out = capsys.readouterr().out
    weights = out.split("== Model weights")[1].split("==")[0]
    assert "FAIL" in weights and "fix:" in weights and "download-model" in weights
    assert code == 1
