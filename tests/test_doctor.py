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


def test_camera_check_reports_what_the_probe_opens(monkeypatch):
    import avatarcam.pipeline
    from avatarcam.commands import doctor

    probed: list[int] = []
    monkeypatch.setattr(doctor, "camera_candidates", lambda count: ([0, 2], ["/dev/video1"]))
    monkeypatch.setattr(avatarcam.pipeline, "probe_camera", lambda i: probed.append(i) or i == 2, raising=False)
    [check] = doctor.camera_checks(3)
    assert check.ok and check.detail == "working: 2" and probed == [0, 2]

    monkeypatch.setattr(avatarcam.pipeline, "probe_camera", lambda i: False)
    [check] = doctor.camera_checks(3)
    assert not check.ok and not check.required and "skipped virtual cameras /dev/video1" in check.detail
