"""Camera frames from OpenCV (a device index, a stream URL or a video file) on a background thread.

The reader thread grabs frames as fast as the camera delivers them and puts them in a small bounded queue:

- live cameras (device index, URL) and files read in ``realtime`` drop the OLDEST queued frame when the
  consumer falls behind ("latest wins"; drops are counted in :attr:`CameraSource.stats`), so the pipeline
  always sees the newest picture and nothing grows without bound;
- video files read as fast as possible (``realtime=False``, the default for files) make the reader wait
  instead, so every frame of the file arrives.

Timestamps are on xrseg's monotonic nanosecond clock (:func:`xrseg.sources.clock.now_ns`). A live frame
carries its capture time: the camera's own timestamp where it has one on that clock, else the time the grab
returned minus the device's ``clock_offset_ns`` from its calibration (:mod:`xrseg.sources.capture_clock`).
Frames that queued before the reader started (while the model loaded) or that are older than the latency
limit when read are dropped as a backlog (:attr:`CameraStats.backlog`), never replayed in a burst; so is
the frame read by :meth:`CameraSource.open`. A file frame is stamped at the time the reader started plus the
frame's own position in the file, and with ``realtime`` it is delivered at that time (paced at the file's
own frame rate).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import DeviceError, InputError
from xrseg.sources.capture_clock import CaptureClock
from xrseg.sources.clock import now_ns
from xrseg.types import Frame

logger = logging.getLogger(__name__)


class DepthProvider(Protocol):
    """Gives a depth image for a camera frame (an RGB-D camera's depth stream, a depth network, a file).

    ``depth_for`` returns HxW float32 metres along camera +z (0 = no measurement) matching ``rgb`` (HxWx3
    uint8), or None when there is no depth for this frame.
    """

    def depth_for(
        self, index: int, timestamp_ns: int, rgb: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.float32] | None: ...


class DepthImageFolder:
    """Depth from a folder of 16-bit PNGs named ``depth_{index:06d}.png`` in units of ``scale_m`` metres.

    That is how many RGB-D capture tools export a recording; a missing file means no depth for that frame.
    """

    def __init__(self, folder: str | Path, scale_m: float = 0.001) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DeviceError(f"depth folder {self.folder} does not exist")
        if not scale_m > 0:
            raise InputError(f"depth scale must be positive, got {scale_m}")
        self.scale_m = scale_m

    def depth_for(
        self, index: int, timestamp_ns: int, rgb: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.float32] | None:
        path = self.folder / f"depth_{index:06d}.png"
        if not path.is_file():
            return None
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.dtype != np.uint16 or image.shape != rgb.shape[:2]:
            raise DeviceError(f"{path} is not a {rgb.shape[1]}x{rgb.shape[0]} 16-bit depth PNG")
        return (image.astype(np.float32) * np.float32(self.scale_m)).astype(np.float32)


@dataclass(frozen=True)
class CameraStats:
    captured: int
    """Frames read from the camera."""
    delivered: int
    """Frames handed to the consumer."""
    dropped: int
    """Frames discarded because the consumer was behind (latest-wins mode only)."""
    backlog: int = 0
    """Live frames discarded because they were stale when read (queued before the reader started, or late)."""


class _FrameQueue:
    """A bounded FIFO: ``latest_wins`` drops the oldest item when full, otherwise ``put`` waits for room."""

    def __init__(self, size: int, latest_wins: bool) -> None:
        self._items: collections.deque[Frame] = collections.deque()
        self._size = size
        self._latest_wins = latest_wins
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: Frame, stop: threading.Event) -> None:
        with self._cond:
            while len(self._items) >= self._size and not self._latest_wins and not stop.is_set():
                self._cond.wait(0.1)
            if len(self._items) >= self._size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout_s: float) -> Frame | None:
        """The oldest queued frame; None when closed and empty, or after ``timeout_s`` without one."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return None

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._items


def parse_camera_source(source: int | str) -> tuple[str, int | str]:
    """("device", index) for an int or digits, ("url", text) for "scheme://...", else ("file", path)."""
    if isinstance(source, int) and not isinstance(source, bool):
        return "device", source
    text = str(source).strip()
    if re.fullmatch(r"\d+", text):
        return "device", int(text)
    if "://" in text:
        return "url", text
    return "file", text


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's capture backends log a WARN per failed backend; the caller reports the failure itself."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


class CameraSource:
    """Frames (RGB, optional depth) from an OpenCV capture, read on a background thread.

    ``source``: a device index (0, "0"), a URL ("rtsp://...", "http://...") or a video file path.
    ``width_px``/``height_px`` request a capture size from a live camera (the camera may pick another).
    ``realtime`` paces a video file at its own frame rate (default: as fast as consumed).
    Use as a context manager (opens and starts); iterate for :class:`xrseg.types.Frame` records.
    """

    def __init__(
        self,
        source: int | str,
        *,
        clock_offset_ns: int = 0,
        queue_size: int = 2,
        realtime: bool = False,
        latest_wins: bool | None = None,
        depth: DepthProvider | None = None,
        width_px: int | None = None,
        height_px: int | None = None,
    ) -> None:
        if queue_size < 1:
            raise InputError(f"queue_size must be at least 1, got {queue_size}")
        self.kind, self.location = parse_camera_source(source)
        self.clock_offset_ns = int(clock_offset_ns)
        self.realtime = realtime or self.kind != "file"
        self.latest_wins = self.realtime if latest_wins is None else latest_wins
        self.depth = depth
        self._requested_size = (width_px, height_px)
        self._queue = _FrameQueue(queue_size, self.latest_wins)
        self._capture: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None
        self._first_ms = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.finished = threading.Event()
        """Set when the reader thread has stopped (end of file, camera gone, or closed)."""
        self.error: DeviceError | None = None
        self._captured = 0
        self._delivered = 0
        self._backlog = 0
        self.clock = CaptureClock(self.clock_offset_ns)
        """How live frames are stamped (device or grab time) and which are a backlog."""
        self._fps = 0.0
        self._size: tuple[int, int] = (0, 0)

    # -- opening -------------------------------------------------------------------------------------------

    def open(self) -> CameraSource:
        """Open the capture and read its first frame (to learn the real image size). Raises DeviceError."""
        if self._capture is not None:
            return self
        if self.kind == "file" and not Path(str(self.location)).is_file():
            raise DeviceError(f"camera: video file {self.location} does not exist")
        with _quiet_opencv():
            capture = cv2.VideoCapture(self.location)
            if not capture.isOpened():
                capture.release()
                raise DeviceError(
                    f"camera: cannot open {self.kind} {self.location!r} (not connected, in use, or unsupported)"
                )
            width, height = self._requested_size
            if self.kind == "device" and width and height:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise DeviceError(f"camera: {self.kind} {self.location!r} opened but delivered no frame")
        self._capture = capture
        self._first = image
        self._first_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
        self._fps = float(capture.get(cv2.CAP_PROP_FPS)) or 0.0
        self._size = (int(image.shape[1]), int(image.shape[0]))
        logger.info("camera %s opened: %dx%d at %.1f fps", self.location, *self._size, self._fps)
        return self

    @property
    def is_open(self) -> bool:
        """True while the capture device or file is held open."""
        return self._capture is not None

    @property
    def width_px(self) -> int:
        """Frame width in pixels (known after :meth:`open`)."""
        return self._size[0]

    @property
    def height_px(self) -> int:
        return self._size[1]

    @property
    def fps(self) -> float:
        """The frame rate OpenCV reports (0 when unknown)."""
        return self._fps

    @property
    def stats(self) -> CameraStats:
        return CameraStats(
            captured=self._captured, delivered=self._delivered, dropped=self._queue.dropped, backlog=self._backlog
        )

    # -- running -------------------------------------------------------------------------------------------

    def start(self) -> CameraSource:
        self.open()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"camera-{self.location}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the reader thread and release the camera. Idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if self._capture is not None and (self._thread is None or not self._thread.is_alive()):
            self._capture.release()
            self._capture = None
        self._queue.close()

    def __enter__(self) -> CameraSource:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Frames in capture order until the camera ends or :meth:`close`; re-raises a reader DeviceError."""
        self.start()
        while True:
            frame = self._queue.get(0.1)
            if frame is not None:
                self._delivered += 1
                yield frame
            elif self._queue.drained:
                break
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        capture = self._capture
        if capture is None:
            return
        try:
            if self.kind == "file":
                self._read_file(capture)
            else:
                self._read_live(capture)
        except DeviceError as err:
            self.error = err
        except Exception as err:  # a reader thread must never die silently
            self.error = DeviceError(f"camera {self.location!r} failed: {err}")
            logger.debug("camera reader failed", exc_info=True)
        finally:
            self._first = None
            self._queue.close()
            self.finished.set()

    def _read_file(self, capture: cv2.VideoCapture) -> None:
        """Every frame of the file, stamped from the start time plus its position (paced with ``realtime``)."""
        start_ns = now_ns()
        index = 0
        image, position_ms = self._first, self._first_ms
        while image is not None and not self._stop.is_set():
            if position_ms <= 0 and index > 0 and self._fps > 0:
                position_ms = index * 1000.0 / self._fps
            timestamp_ns = start_ns + round((position_ms - self._first_ms) * 1e6)
            if self.realtime:
                wait_s = (timestamp_ns - now_ns()) / 1e9
                if wait_s > 0 and self._stop.wait(wait_s):
                    return
            self._emit(index, timestamp_ns, image)
            index += 1
            ok, next_image = capture.read()
            position_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
            image = next_image if ok else None

    def _read_live(self, capture: cv2.VideoCapture) -> None:
        """Fresh frames only, stamped with their capture time (see the module docstring)."""
        self._first = None  # read by open(), before the model loaded: stale by now
        draining = True  # frames that queued before the reader started come back at once: drop them
        index = 0
        while not self._stop.is_set():
            started_ns = now_ns()
            ok = capture.grab()
            grab_ns = now_ns()
            if not ok:
                if not self._stop.is_set():
                    self.error = DeviceError(f"camera {self.location!r} stopped delivering frames")
                return
            timestamp_ns = self.clock.stamp(float(capture.get(cv2.CAP_PROP_POS_MSEC)), grab_ns)
            draining = draining and self.clock.grab_was_buffered(grab_ns - started_ns) and self._backlog < 1000
            if draining or self.clock.is_backlog(timestamp_ns, grab_ns):
                self._backlog += 1
                continue
            ok, image = capture.retrieve()
            if ok and image is not None:
                self._emit(index, timestamp_ns, image)
                index += 1
        if self._backlog:
            logger.info("camera %s: dropped %d stale frames (backlog)", self.location, self._backlog)

    def _emit(self, index: int, timestamp_ns: int, image_bgr: np.ndarray) -> None:
        code = cv2.COLOR_GRAY2RGB if image_bgr.ndim == 2 else cv2.COLOR_BGR2RGB
        rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(cv2.cvtColor(image_bgr, code), dtype=np.uint8)
        depth = self.depth.depth_for(index, timestamp_ns, rgb) if self.depth is not None else None
        frame = Frame(index=index, timestamp_ns=timestamp_ns, rgb=rgb, depth_m=depth)
        self._captured += 1
        self._queue.put(frame, self._stop)
