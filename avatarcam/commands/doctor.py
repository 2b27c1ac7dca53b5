"""`avatarcam doctor`: check the window, cameras, virtual camera, torch/CUDA, ONNX Runtime, OpenVINO, weights."""

from __future__ import annotations

import argparse
import glob
import os
import platform
import sys
from pathlib import Path

from ..diagnostics import Check
from ..model_store import checkpoint_checks

HELP = "Check the window, cameras, the virtual camera, GPU, ONNX Runtime, OpenVINO and model weights; print fixes."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="PATH", help="check this checkpoint instead of the default one")
    parser.add_argument("--cameras", type=int, default=4, metavar="N", help="probe camera indices 0..N-1 (default 4)")


def _v4l2_name(dev: str) -> str:
    try:
        return Path(f"/sys/class/video4linux/{Path(dev).name}/name").read_text().strip()
    except OSError:
        return ""


def _loopback_devices() -> list[str]:
    out = []
    for dev in sorted(glob.glob("/dev/video*")):
        driver = Path(f"/sys/class/video4linux/{Path(dev).name}/device/driver")
        name = _v4l2_name(dev)
        if "loopback" in os.path.realpath(driver) or "loopback" in name.lower() or "avatarcam" in name.lower():
            out.append(dev)
    return out


def camera_candidates(count: int) -> tuple[list[int], list[str]]:
    """Camera indices worth probing, and the virtual (loopback) devices skipped: probing our
    own output would report it as a webcam."""
    indices = range(max(0, count))
    if platform.system() != "Linux":
        return list(indices), []
    loopbacks = set(_loopback_devices())
    devices = {i: f"/dev/video{i}" for i in indices if os.path.exists(f"/dev/video{i}")}
    return ([i for i, dev in devices.items() if dev not in loopbacks],
            [dev for dev in devices.values() if dev in loopbacks])


def camera_checks(count: int = 4) -> list[Check]:
    from ..pipeline import probe_camera

    indices, skipped = camera_candidates(count)
    found = [str(i) for i in indices if probe_camera(i)]
    if found:
        return [Check("cameras", True, "working: " + ", ".join(found), required=False)]
    detail = f"no camera opened among indices 0-{count - 1}"
    if skipped:
        detail += f" (skipped virtual cameras {', '.join(skipped)})"
    return [Check("cameras", False, detail,
                  "connect a webcam and close apps using it, or pass --camera VIDEO.mp4 / a stream URL",
                  required=False)]


def vcam_checks() -> list[Check]:
    from ..pipeline.outputs import LINUX_FIX, VirtualCameraSink

    out = []
    if platform.system() == "Linux":
        loops = _loopback_devices()
        out.append(Check("v4l2loopback devices", bool(loops), ", ".join(loops) or "none in /dev/video*",
                         fix=f"`{LINUX_FIX}`" if not loops else "", required=False))
    sink = VirtualCameraSink((640, 480), 30)
    try:
        sink.open()
        out.append(Check("virtual camera", True, f"pyvirtualcam opened {sink.device}", required=False))
    except Exception as err:  # noqa: BLE001
        out.append(Check("virtual camera", False, "pyvirtualcam cannot open a virtual camera",
                         fix=str(err), required=False))
    finally:
        sink.close()
    return out


def _has_display() -> bool:
    """Whether this session has a desktop the window could open on (Linux: X11 or Wayland)."""
    if platform.system() != "Linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def window_checks() -> list[Check]:
    """Whether Qt's platform plugin can load, checked without starting Qt (it aborts the process
    on failure). A failure is an error on a desktop, a warning on a machine with no display."""
    try:
        from ..qtcheck import qt_platform_problem
    except ModuleNotFoundError as err:
        if err.name != "avatarcam.qtcheck":
            raise
        return [Check("window", False, "this build cannot check whether the window starts", required=False)]
    problem = qt_platform_problem()
    if problem is None:
        return [Check("window", True, "Qt's platform plugin loads: `avatarcam` can open its window")]
    return [Check("window", False, "the window cannot start", fix=problem, required=_has_display())]


def torch_checks() -> list[Check]:
    try:
        import torch
    except Exception as err:  # noqa: BLE001
        return [Check("torch", False, f"cannot import torch ({err})", "install PyTorch: https://pytorch.org")]
    out = [Check("torch", True, f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        out.append(Check("CUDA", True, f"CUDA {torch.version.cuda}: {names}", required=False))
    else:
        built = torch.version.cuda
        fix = ("the NVIDIA driver is missing or too old for this build; update it" if built else
               "CPU-only PyTorch build; for a GPU install the CUDA build from https://pytorch.org")
        out.append(Check("CUDA", False, f"no usable CUDA GPU (torch built with CUDA: {built or 'no'}); "
                                        f"running on the CPU is slow", fix, required=False))
    return out


def onnx_checks() -> list[Check]:
    try:
        import onnxruntime as ort
    except Exception as err:  # noqa: BLE001
        return [Check("ONNX Runtime", False, f"not importable ({err})",
                      "pip install onnxruntime-gpu (or onnxruntime on macOS / ARM)", required=False)]
    built = ort.get_available_providers()
    usable = ["CPUExecutionProvider"]
    try:
        import torch

        if "CUDAExecutionProvider" in built and torch.cuda.is_available():
            usable.insert(0, "CUDAExecutionProvider (needs CUDA/cuDNN libraries; confirmed on first session)")
    except Exception:  # noqa: BLE001
        pass
    detail = f"onnxruntime {ort.__version__}; built with {', '.join(built)}; usable here: {', '.join(usable)}"
    return [Check("ONNX Runtime", True, detail, required=False)]


def detector_checks() -> list[Check]:
    from ..pipeline import face_alignment_weights_cached, face_alignment_weights_dir

    out = []
    try:
        from ..pipeline import LBPDetector

        LBPDetector()
        out.append(Check("face detector (LBP)", True, "scikit-image LBP cascade available (no download needed)"))
    except Exception as err:  # noqa: BLE001
        out.append(Check("face detector (LBP)", False, f"unavailable ({err})", "pip install scikit-image"))
    cached = face_alignment_weights_cached()
    out.append(Check("face detector (face-alignment)", cached,
                     f"BlazeFace weights {'cached' if cached else 'not cached'} in {face_alignment_weights_dir()}",
                     "" if cached else "optional: run once online with `avatarcam run --detector face-alignment` "
                     "to download them (~0.5 MB); LBP is used meanwhile", required=False))
    return out


def openvino_checks() -> list[Check]:
    from ..engine.openvino_backend import describe_devices, openvino_usable, openvino_version

    reason = openvino_usable()
    if reason:
        return [Check("OpenVINO", False, reason, "pip install openvino (Intel CPUs, GPUs and NPUs)", required=False)]
    devices = describe_devices()
    return [Check("OpenVINO", True, f"openvino {openvino_version()}; devices: {'; '.join(devices) or 'none'}",
                  required=False)]


SECTIONS = (("Window", lambda a: window_checks()), ("Cameras", lambda a: camera_checks(a.cameras)),
            ("Virtual camera", lambda a: vcam_checks()),
            ("PyTorch", lambda a: torch_checks()), ("ONNX Runtime", lambda a: onnx_checks()),
            ("OpenVINO", lambda a: openvino_checks()),
            ("Model weights", lambda a: checkpoint_checks(a.checkpoint)),
            ("Face detector", lambda a: detector_checks()))


def main(args: argparse.Namespace) -> int:
    failed = warned = 0
    for title, run in SECTIONS:
        print(f"== {title}")
        try:
            checks = run(args)
        except Exception as err:  # noqa: BLE001 - one broken check must not hide the others
            checks = [Check(title, False, f"check crashed: {type(err).__name__}: {err}", required=False)]
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
            print(f"  [{mark}] {c.name}: {c.detail}")
            if not c.ok and c.fix:
                print(f"         fix: {c.fix}")
            failed += not c.ok and c.required
            warned += not c.ok and not c.required
    warnings = f"; {warned} warning(s) above" if warned else ""
    print(f"all required checks passed{warnings}" if not failed else f"{failed} required check(s) failed{warnings}")
    sys.stdout.flush()
    return 0 if not failed else 1
