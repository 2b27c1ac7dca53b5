"""The inference thread: newest frame -> framing -> model -> outputs, one frame at a time.

It always takes the newest captured frame (frames that arrived while it was busy are counted as
dropped, never queued), so the end-to-end latency stays one model step plus a fraction of a frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..imaging import to_uint8
from .avatar_picture import AvatarPicture
from .capture import CaptureThread, Frame
from .compositor import OutputStage
from .config import PipelineConfig
from .framing import FaceFramer, FramingResult
from .stabilizer import KeypointStabilizer


class NO_NEW_PICTURE:  # noqa: N801 - a sentinel: the animator had no new picture for this frame
    """``InferenceWorker._animate``'s answer when the animator returned None."""


@dataclass
class FrameBundle:
    """One output frame and what it was made from."""

    output: np.ndarray  # HxWx3 uint8 RGB at vcam_size: exactly what every sink receives
    camera: np.ndarray  # the raw camera frame, uint8 RGB
    crop_box: tuple[int, int, int] | None  # (x, y, side) in camera pixels
    avatar: np.ndarray  # the current avatar as the model sees it (model size, uint8)
    face_found: bool
    index: int  # the camera frame's index
    crop: np.ndarray | None = None  # the framed driving crop (model size)
    t_capture: float = 0.0  # time.monotonic() of the camera frame
    t_picked: float = 0.0  # time.monotonic() when the worker took the frame
    match: float | None = None  # this frame's pose match with the avatar, 0-100 % (None: not animated)


@dataclass
class Timings:
    capture_age_ms: float = 0.0  # camera frame age when the worker picked it up
    framing_ms: float = 0.0
    model_ms: float = 0.0
    output_ms: float = 0.0
    latency_ms: float = 0.0  # camera frame captured -> outputs done


class InferenceWorker(threading.Thread):
    """Runs the animator on the newest framed crop and hands each result to ``publish``.

    ``publish(bundle, timings)`` does the output stage (sinks, listeners) and returns when done.
    ``get_avatar()`` returns the current avatar record (``AvatarPicture``): its picture is the output's
    background, the model's picture is pasted back into it (``compositor.py``).
    ``config`` is read on every frame (passthrough, mirror_output, vcam_size, output_layout,
    avatar_detail): the live controls.
    """

    def __init__(self, capture: CaptureThread, framer: FaceFramer, animator, config: PipelineConfig, *,
                 publish: Callable[[FrameBundle, Timings], None], get_avatar: Callable[[], AvatarPicture],
                 stabilizer: KeypointStabilizer | None = None,
                 notice: Callable[[str], None] | None = None, poll_s: float = 0.1) -> None:
        super().__init__(name="avatarcam-inference", daemon=True)
        self.capture = capture
        self.framer = framer
        self.animator = animator
        self.publish = publish
        self.get_avatar = get_avatar
        self.config = config
        self.stabilizer = stabilizer or KeypointStabilizer(0.0)  # replaced by Pipeline.set_stabilize
        self.notice = notice or (lambda msg: None)
        self.poll_s = poll_s
        self.dropped = 0
        self.frames_out = 0
        self.timings = Timings()
        self._out_times: deque[float] = deque(maxlen=60)
        self._last_result: np.ndarray | None = None  # last good picture to paste (model size, or HD with detail)
        self.stage = OutputStage()
        self._detail = False  # the animator keeps the motion field (avatar_detail on and available)
        self._detail_asked = False
        self._keypoint_centre: tuple[float, float] | None = None  # of the last animated frame, crop units
        self._halt = threading.Event()
        self._errors = 0

    # control -----------------------------------------------------------------------------------
    def avatar_changed(self) -> None:
        """Forget the held frame of the previous avatar."""
        self._last_result = None

    def stop(self, timeout: float | None = 1.0) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def fps(self) -> float:
        times = list(self._out_times)
        if len(times) < 2 or time.monotonic() - times[-1] > 1.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-6)

    # loop --------------------------------------------------------------------------------------
    def run(self) -> None:
        last = -1
        while not self._halt.is_set():
            if 0 < self.config.max_frames <= self.frames_out:
                return  # exactly max_frames were published: a recording holds exactly that many
            frame = self.capture.latest(last, timeout=self.poll_s)
            if frame is None or self._halt.is_set():
                continue
            if last >= 0 and frame.index > last + 1:
                self.dropped += frame.index - last - 1
            last = frame.index
            self.step(frame)

    def _keypoint_filter(self, t: float):
        """Stabilise the driving keypoints and note their centre (the framer prefers the face box that
        agrees with it); the animator then measures the match and picks the neutral pose (engine/neutral.py)."""
        smooth = self.stabilizer.at(t)

        def chain(kp):
            kp = smooth(kp)
            self._keypoint_centre = tuple(kp.value[0].float().mean(0).tolist())
            return kp

        return chain

    def _animate(self, crop: np.ndarray, t: float) -> np.ndarray | None | type[NO_NEW_PICTURE]:
        """THE frame -> picture route of the stream: the picture, None after a failure (hold the last
        one), or ``NO_NEW_PICTURE`` (a remote worker has not answered since the last frame)."""
        try:
            result = self.animator.animate(crop, keypoint_filter=self._keypoint_filter(t), t=t)
            self._errors = 0
            return NO_NEW_PICTURE if result is None else to_uint8(result)
        except Exception as err:  # noqa: BLE001 - keep streaming; report once per burst
            self._errors += 1
            if self._errors == 1:
                self.notice(f"the model failed on a frame ({type(err).__name__}: {err}); holding the last picture")
            return None

    def _sync_detail(self, wanted: bool) -> None:
        """Turn the animator's motion field on or off when ``avatar_detail`` changes; one notice
        when the animator cannot give it (ONNX Runtime, a remote worker)."""
        if wanted == self._detail_asked:
            return
        self._detail_asked = wanted
        reason = self.animator.set_motion_output(wanted)
        self._detail = wanted and reason is None
        if reason:
            self.notice(reason)

    def _paste(self, avatar: AvatarPicture, result: np.ndarray) -> np.ndarray:
        """The model's picture, or with detail transfer the crop at output resolution."""
        cfg = self.config
        motion = self.animator.last_motion() if self._detail else None
        return self.stage.picture(avatar, result, motion, layout=cfg.output_layout, size=cfg.vcam_size)

    def _output(self, frame: Frame, avatar: AvatarPicture) -> np.ndarray:
        cfg = self.config
        if cfg.passthrough:
            return self.stage.passthrough(frame.image, layout=cfg.output_layout, size=cfg.vcam_size,
                                          mirror=cfg.mirror_output)
        # no face: hold the last good picture (or the still avatar), never garbage
        return self.stage.compose(avatar, self._last_result, layout=cfg.output_layout, size=cfg.vcam_size,
                                  mirror=cfg.mirror_output, ai_label=cfg.ai_label)

    def step(self, frame: Frame) -> FrameBundle | None:
        """Frame in, one output frame published; None when nothing new was made (not published, not
        counted: the fps and the recordings hold new pictures only)."""
        t_pick = time.monotonic()
        timings = Timings(capture_age_ms=(t_pick - frame.t) * 1000)
        framed: FramingResult = self.framer.frame(frame.image, frame.t)
        t_framed = time.monotonic()
        timings.framing_ms = (t_framed - t_pick) * 1000
        avatar = self.get_avatar()
        cfg = self.config
        self._sync_detail(cfg.avatar_detail)
        match = None
        if not cfg.passthrough and not self.animator.ready:
            return None  # e.g. a remote worker still connecting: nothing to show or record yet
        if not cfg.passthrough and framed.face_found and framed.crop is not None:
            result = self._animate(framed.crop, frame.t)
            if result is NO_NEW_PICTURE:
                return None
            if result is not None:
                self._last_result = self._paste(avatar, result)
                match = self.animator.match_reading().match
                if framed.box is not None and self._keypoint_centre is not None:
                    self.framer.note_keypoints(framed.box, self._keypoint_centre)
        t_model = time.monotonic()
        timings.model_ms = (t_model - t_framed) * 1000
        output = self._output(frame, avatar)
        bundle = FrameBundle(output, frame.image, framed.box, avatar.model_input, framed.face_found, frame.index,
                             framed.crop, frame.t, t_pick, match)
        self.publish(bundle, timings)
        t_done = time.monotonic()
        timings.output_ms = (t_done - t_model) * 1000
        timings.latency_ms = (t_done - frame.t) * 1000
        self.timings = timings
        self.frames_out += 1
        self._out_times.append(t_done)
        return bundle
