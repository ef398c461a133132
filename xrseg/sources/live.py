"""The live source: an OpenXR headset (head pose, gaze) plus a rigidly mounted camera, as one Source.

Two producer threads (the headset's frame loop and the camera reader) feed a bounded queue; the consumer
merges items through a small reorder buffer and yields them in approximately ascending ``timestamp_ns``: an
item is released once it is older than ``reorder_window_ns`` (items arriving later than that are still
delivered, slightly out of order). A producer error is re-raised in the consumer.

The streams are made to overlap: the camera starts reading when the headset has delivered its first head
pose (frames before it could not be paired with a pose), and when the camera ends (a video file runs out)
the headset keeps streaming until it has delivered a head pose at or after the last frame (at most
``camera_end_grace_s`` longer), so no frame is left without poses around it. When the headset session ends
the camera is stopped at once. :meth:`LiveSource.request_stop` (``--duration``, Ctrl-C, SIGTERM through
:meth:`LiveSource.stop_on_signals`) ends both streams the same way: the iteration finishes normally, so the
caller writes its summary.

The headset is any :class:`HeadsetProducer`: the OpenXR source, or a scripted one
(:class:`xrseg.sources.scripted.ScriptedHeadset`) for tests and demos without a runtime.

:func:`pair_frame_with_pose` is the pure helper that finds the head pose at a frame's timestamp.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import logging
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Protocol

from xrseg.calibration import (
    DeviceCalibration,
    apply_gaze_correction,
    check_fits,
    load_calibration,
    uncalibrated_profile,
)
from xrseg.errors import InputError
from xrseg.geometry import interpolate_transform
from xrseg.sources.base import SourceItem
from xrseg.sources.camera import CameraSource, CameraStats, DepthProvider
from xrseg.sources.clock import now_ns
from xrseg.sources.openxr import OpenXROptions, OpenXRSource, runtime_extensions
from xrseg.types import CameraModel, Frame, GazeSample, HeadPose, InputEvent, Transform

logger = logging.getLogger(__name__)

DEFAULT_MAX_POSE_GAP_NS = 100_000_000
"""Two head poses further apart than this (100 ms) are a tracking gap: a frame between them gets no pose."""


class HeadsetProducer(Protocol):
    """What :class:`LiveSource` needs from a headset: :class:`~xrseg.sources.openxr.OpenXRSource`'s interface.

    Entered and exited on the consumer's thread; :meth:`stream` runs on a producer thread and yields HeadPose,
    GazeSample and InputEvent records (ascending time, on xrseg's clock) until the session ends or :meth:`stop` is
    called (from any thread).
    """

    def __enter__(self) -> HeadsetProducer: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def stream(self) -> Iterator[HeadPose | GazeSample | InputEvent]: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class PoseMatch:
    """The head pose at a frame's time, or ``pose`` None and ``reason`` saying why there is none."""

    pose: HeadPose | None
    reason: str = ""


def pair_frame_with_pose(
    timestamp_ns: int, poses: Sequence[HeadPose], max_gap_ns: int = DEFAULT_MAX_POSE_GAP_NS
) -> PoseMatch:
    """Interpolate ``world_from_head`` at ``timestamp_ns`` from ``poses`` (ascending ``timestamp_ns``).

    Linear in translation, slerp in rotation, between the two poses around the time. No pose (None with a
    reason) when the time is before the first or after the last pose, or the two poses around it are more than
    ``max_gap_ns`` apart. A pose exactly at the time is returned as is.
    """
    if not poses:
        return PoseMatch(None, "no head poses yet")
    times = [pose.timestamp_ns for pose in poses]
    if timestamp_ns < times[0]:
        return PoseMatch(None, f"frame is {(times[0] - timestamp_ns) / 1e6:.1f} ms before the first head pose")
    if timestamp_ns > times[-1]:
        return PoseMatch(None, f"frame is {(timestamp_ns - times[-1]) / 1e6:.1f} ms after the last head pose")
    index = bisect.bisect_left(times, timestamp_ns)
    if times[index] == timestamp_ns:
        return PoseMatch(poses[index])
    before, after = poses[index - 1], poses[index]
    gap_ns = after.timestamp_ns - before.timestamp_ns
    if gap_ns > max_gap_ns:
        return PoseMatch(None, f"head tracking gap of {gap_ns / 1e6:.1f} ms around the frame")
    matrix = interpolate_transform(
        before.timestamp_ns, before.world_from_head, after.timestamp_ns, after.world_from_head, timestamp_ns
    )
    return PoseMatch(HeadPose(timestamp_ns=timestamp_ns, world_from_head=matrix))


class ReorderBuffer:
    """Releases items in ascending ``timestamp_ns`` once they are ``window_ns`` older than the clock.

    Pure: the caller passes the current time. Ties keep their insertion order.
    """

    def __init__(self, window_ns: int) -> None:
        if window_ns < 0:
            raise InputError(f"reorder window must be >= 0, got {window_ns}")
        self.window_ns = window_ns
        self._heap: list[tuple[int, int, SourceItem]] = []
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, item: SourceItem) -> None:
        heapq.heappush(self._heap, (item.timestamp_ns, next(self._counter), item))

    def pop_ready(self, now_ns: int) -> list[SourceItem]:
        """Items with ``timestamp_ns <= now_ns - window_ns``, oldest first."""
        horizon = now_ns - self.window_ns
        ready: list[SourceItem] = []
        while self._heap and self._heap[0][0] <= horizon:
            ready.append(heapq.heappop(self._heap)[2])
        return ready

    def flush(self) -> list[SourceItem]:
        """Every remaining item, oldest first."""
        items = [entry[2] for entry in sorted(self._heap)]
        self._heap.clear()
        return items


_DONE = object()


class LiveSource:
    """Headset + camera as a :class:`xrseg.sources.base.Source`.

    ``camera`` and ``head_from_camera`` come from ``calibration``; gaze rays are corrected by the calibration's
    gaze rotation (identity when it has none). Iterate once; :meth:`close` (or leaving the ``with`` block, or
    closing the iterator) stops both producers.
    """

    def __init__(
        self,
        camera: CameraSource,
        calibration: DeviceCalibration,
        openxr_options: OpenXROptions | None = None,
        *,
        headset: HeadsetProducer | None = None,
        reorder_window_ns: int = 50_000_000,
        queue_size: int = 4096,
        duration_s: float | None = None,
        camera_end_grace_s: float = 2.0,
    ) -> None:
        if duration_s is not None and not duration_s > 0:
            raise InputError(f"duration must be positive, got {duration_s}")
        self._camera_source = camera
        self._calibration = calibration
        self._xr: HeadsetProducer = headset if headset is not None else OpenXRSource(openxr_options)
        self.duration_s = duration_s
        self._grace_ns = int(camera_end_grace_s * 1e9)
        self._first_pose = threading.Event()
        self._stop_requested = threading.Event()
        self._last_frame_ns: int | None = None
        self._camera_end: tuple[int, int] | None = None  # (last frame time, give-up time) once the camera ended
        self.stop_reason = ""
        """Why the streams ended ("" while running)."""
        self._lag_sum_ns = 0
        self._lag_count = 0
        self._lag_max_ns = 0
        self._buffer = ReorderBuffer(reorder_window_ns)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self.dropped = 0
        """Items dropped because the consumer fell more than ``queue_size`` items behind."""
        self._started = False
        self._xr_entered = False

    @property
    def camera(self) -> CameraModel:
        return self._calibration.camera

    @property
    def head_from_camera(self) -> Transform:
        return self._calibration.head_from_camera

    @property
    def camera_stats(self) -> CameraStats:
        return self._camera_source.stats

    @property
    def openxr(self) -> HeadsetProducer:
        """The headset producer (the OpenXR source unless another was given)."""
        return self._xr

    def request_stop(self, reason: str = "stopped") -> None:
        """End both streams from any thread (a signal handler included); the iteration then ends normally."""
        if not self.stop_reason:
            self.stop_reason = reason
        self._stop_requested.set()

    @contextlib.contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """Within the block, SIGINT and SIGTERM end the streams cleanly (main thread only); a second SIGINT
        interrupts at once (KeyboardInterrupt)."""
        previous: dict[signal.Signals, object] = {}

        def handle(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            logger.warning("%s: stopping (press Ctrl-C again to interrupt at once)", name)
            self.request_stop(f"stopped by {name}")
            signal.signal(signal.SIGINT, signal.default_int_handler)

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _stop_all(self) -> None:
        self._stop.set()
        self._xr.stop()
        self._camera_source.close()

    def close(self) -> None:
        """Stop both producers and wait for their threads (bounded). Idempotent."""
        self._stop_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
            if thread.is_alive():
                logger.warning("%s did not stop within 5 s", thread.name)
        if self._xr_entered and not any(t.is_alive() for t in self._threads):
            self._xr_entered = False
            self._xr.__exit__(None, None, None)

    def _put(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _produce(self, name: str, produce: Callable[[], Iterable[SourceItem]]) -> None:
        failed = False
        stopped_by_us = False
        try:
            for item in produce():
                if self._stop.is_set():
                    break
                self._put(item)
        except BaseException as err:  # re-raised in the consumer thread
            self._errors.append(err)
            failed = True
        finally:
            logger.info("%s producer finished", name)
            stopped_by_us = self._stop.is_set()
            if name == "camera" and not failed and not stopped_by_us:
                # The camera ran out (a video file): let the headset cover the last frame, then stop it.
                end_ns = self._last_frame_ns if self._last_frame_ns is not None else now_ns()
                self._camera_end = (end_ns, now_ns() + self._grace_ns)
            else:
                if name == "openxr" and not stopped_by_us and not self.stop_reason:
                    self.stop_reason = "the headset session ended"
                self._stop_all()
            self._queue.put(_DONE)

    def _openxr_items(self) -> Iterator[HeadPose | GazeSample | InputEvent]:
        rotation = self._calibration.gaze_correction
        for item in self._xr.stream():
            if isinstance(item, HeadPose):
                self._first_pose.set()
                end = self._camera_end
                if end is not None and item.timestamp_ns >= end[0]:
                    yield item
                    self.stop_reason = self.stop_reason or "the camera ended"
                    self._stop_all()
                    return
            if isinstance(item, GazeSample) and rotation is not None:
                yield apply_gaze_correction(item, rotation)
            else:
                yield item

    def _camera_items(self) -> Iterator[Frame]:
        while not self._first_pose.wait(0.05):  # frames before the first head pose could not be paired
            if self._stop.is_set():
                return
        for frame in self._camera_source:
            self._last_frame_ns = frame.timestamp_ns
            yield frame

    def _start(self) -> None:
        if self._started:
            raise RuntimeError("a LiveSource can be iterated only once")
        self._started = True
        self._camera_source.open()
        try:
            # Created on the consumer's thread (normally the main thread, where GLFW wants its window); only the
            # frame loop runs on the producer thread. Destroyed in close() after that thread has stopped.
            self._xr.__enter__()
        except BaseException:
            self._camera_source.close()
            raise
        self._xr_entered = True
        producers: tuple[tuple[str, Callable[[], Iterable[SourceItem]]], ...] = (
            ("openxr", self._openxr_items),
            ("camera", self._camera_items),
        )
        for name, produce in producers:
            thread = threading.Thread(target=self._produce, args=(name, produce), name=f"live-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _measured(self, items: list[SourceItem]) -> Iterator[SourceItem]:
        for item in items:
            if isinstance(item, Frame):
                lag_ns = now_ns() - item.timestamp_ns
                self._lag_sum_ns += lag_ns
                self._lag_count += 1
                self._lag_max_ns = max(self._lag_max_ns, lag_ns)
            yield item

    @property
    def frame_lag_ms(self) -> dict[str, float]:
        """How long frames took from capture to the consumer: mean and max in ms (0 before any frame)."""
        mean = self._lag_sum_ns / self._lag_count / 1e6 if self._lag_count else 0.0
        return {"mean": round(mean, 1), "max": round(self._lag_max_ns / 1e6, 1)}

    def _check_stop(self, started_ns: int) -> None:
        """On the consumer's thread: a requested stop, the duration, or the camera-end grace running out."""
        if self._stop.is_set():
            return
        if self.duration_s is not None and now_ns() - started_ns >= self.duration_s * 1e9:
            self.request_stop(f"ran for {self.duration_s:g} s")
        if self._camera_end is not None and now_ns() > self._camera_end[1]:
            logger.warning("the headset gave no head pose after the camera's last frame; stopping")
            self.request_stop("the camera ended")
        if self._stop_requested.is_set():
            self._stop_all()

    def __iter__(self) -> Iterator[SourceItem]:
        self._start()
        finished = 0
        started_ns = now_ns()
        try:
            while finished < len(self._threads):
                self._check_stop(started_ns)
                try:
                    entry = self._queue.get(timeout=0.02)
                except queue.Empty:
                    entry = None
                while entry is not None:
                    if entry is _DONE:
                        finished += 1
                    else:
                        self._buffer.push(entry)  # type: ignore[arg-type]
                    try:
                        entry = self._queue.get_nowait()
                    except queue.Empty:
                        entry = None
                if self._errors:
                    raise self._errors[0]
                yield from self._measured(self._buffer.pop_ready(now_ns()))
            if self._errors:
                raise self._errors[0]
            yield from self._measured(self._buffer.flush())
        finally:
            self.close()
            if self.dropped:
                logger.warning("live source dropped %d items (the consumer fell behind)", self.dropped)


def open_live_source(
    calibration_path: str | Path | None,
    camera_source: int | str = 0,
    openxr_options: OpenXROptions | None = None,
    depth: DepthProvider | None = None,
    duration_s: float | None = None,
) -> LiveSource:
    """Check and open everything a live session needs, cheapest and most likely failure first.

    1. the OpenXR runtime (:class:`RuntimeUnavailableError`), before any device is touched;
    2. the calibration profile (:class:`CalibrationError`), when given;
    3. the camera (:class:`DeviceError`), opened and read once to learn its real size;
    4. the profile against that size (:class:`CalibrationError`). Without a profile an uncalibrated stand-in
       for the camera's size is used (and logged).

    On any failure the camera is released before the error propagates. A video file stands in for a live
    camera: it is paced at its own frame rate. ``duration_s`` ends the streams after that many seconds.
    """
    runtime_extensions()
    calibration = load_calibration(calibration_path) if calibration_path is not None else None
    offset_ns = calibration.clock_offset_ns if calibration is not None else 0
    camera = CameraSource(camera_source, clock_offset_ns=offset_ns, depth=depth, realtime=True)
    try:
        camera.open()
        if calibration is None:
            calibration = uncalibrated_profile(camera.width_px, camera.height_px)
            logger.warning(
                "no calibration given: using an uncalibrated %dx%d camera profile",
                camera.width_px,
                camera.height_px,
            )
        check_fits(calibration, camera.width_px, camera.height_px)
    except BaseException:
        camera.close()
        raise
    return LiveSource(camera, calibration, openxr_options, duration_s=duration_s)
