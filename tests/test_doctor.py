"""`avatarcam doctor`: every section reported, checkpoint pass/fail with its fix."""

from __future__ import annotations

from avatarcam.cli import main

SECTIONS = ("Window", "Cameras", "Virtual camera", "PyTorch", "ONNX Runtime", "OpenVINO", "Model weights",
            "Face detector")


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


def _fake_qtcheck(monkeypatch, problem):
    import sys
    import types

    module = types.ModuleType("avatarcam.qtcheck")
    module.qt_platform_problem = lambda: problem
    monkeypatch.setitem(sys.modules, "avatarcam.qtcheck", module)


def test_doctor_fails_when_the_window_cannot_start_on_a_desktop(tiny_checkpoint, monkeypatch, capsys):
    problem = ("the window cannot start: Qt's xcb plugin needs libxcb-icccm4 libxcb-keysyms1; "
               "`sudo apt install libxcb-icccm4 libxcb-keysyms1`, or use `avatarcam run` without a window")
    _fake_qtcheck(monkeypatch, problem)
    monkeypatch.setenv("DISPLAY", ":0")
    code = main(["doctor", "--checkpoint", str(tiny_checkpoint)])
    window = capsys.readouterr().out.split("== Window")[1].split("==")[0]
    assert "[FAIL] window" in window and f"fix: {problem}" in window
    assert code == 1  # not "all required checks passed" while the window aborts


def test_doctor_warns_about_the_window_on_a_machine_without_display(tiny_checkpoint, monkeypatch, capsys):
    import platform

    _fake_qtcheck(monkeypatch, "no display: set DISPLAY, or use `avatarcam run` without a window")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    code = main(["doctor", "--checkpoint", str(tiny_checkpoint)])
    out = capsys.readouterr().out
    assert "[warn] window" in out and "avatarcam run" in out
    assert code == 0 and "all required checks passed;" in out and "warning(s)" in out


def test_doctor_reports_a_window_that_can_start(monkeypatch):
    from avatarcam.commands import doctor

    _fake_qtcheck(monkeypatch, None)
    [check] = doctor.window_checks()
    assert check.ok and "window" in check.detail


def test_doctor_window_check_with_the_real_qt_check(tiny_checkpoint, monkeypatch, capsys):
    """With Qt asked for X11 and no display, the real check (avatarcam.qtcheck, from the window side
    of issue 13) must say so instead of letting Qt abort."""
    import pytest

    pytest.importorskip("avatarcam.qtcheck")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    main(["doctor", "--checkpoint", str(tiny_checkpoint)])
    window = capsys.readouterr().out.split("== Window")[1].split("==")[0]
    assert "[warn] window" in window and "avatarcam run" in window
