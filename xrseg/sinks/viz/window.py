"""``--view``: the overlay in an OpenCV window, with keys to pause, step, change and reject the selection.

Keys: space pause/resume, ``n`` or ``.`` step one frame while paused, ``+`` (or ``=``) the next larger mask,
``-`` the next smaller mask, ``r`` reject the selection, ``q`` (or Esc) quit.

``+``, ``-`` and ``r`` become :class:`~xrseg.types.InputEvent` records (LARGER, SMALLER, REJECT) stamped with
the newest stream time. With an ``on_event`` callback they are handed to it at once (note: the callback runs
inside the pipeline's ``on_frame`` call); without one they are queued, and :meth:`ViewerSink.interleave`
feeds them into the pipeline between source items, which is the simple safe wiring::

    pipeline = Pipeline(...)
    viewer = ViewerSink(camera, stats=pipeline.stats)
    pipeline.sinks.append(viewer)
    pipeline.run(viewer.interleave(source))     # stops early when q is pressed

Without a display (Linux with neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``), with an OpenCV built without GUI
support (``opencv-python-headless``, which this project installs) or when ``cv2.imshow`` fails, the viewer
logs one warning and does nothing more: the run carries on headless.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from xrseg.sinks.base import FrameEvent, PipelineStats
from xrseg.sinks.viz.tracker import OverlayTracker
from xrseg.sources.base import SourceItem
from xrseg.types import CameraModel, EventKind, InputEvent

log = logging.getLogger(__name__)

_KEY_EVENTS = {
    ord("+"): EventKind.LARGER,
    ord("="): EventKind.LARGER,
    ord("-"): EventKind.SMALLER,
    ord("_"): EventKind.SMALLER,
    ord("r"): EventKind.REJECT,
}
_STEP_KEYS = {ord("n"), ord(".")}
_QUIT_KEYS = {ord("q"), 27}
_PAUSE_KEY = ord(" ")
_PAUSED_POLL_MS = 50


def opencv_has_gui() -> bool:
    """False when this OpenCV build has no GUI backend (``opencv-python-headless``: "GUI: NONE")."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() != "NONE"
    return True


def display_problem() -> str | None:
    """Why a window cannot be shown here, or None when it should work."""
    if not opencv_has_gui():
        return (
            f"OpenCV {cv2.__version__} was built without GUI support (opencv-python-headless); "
            "install opencv-python instead to use --view"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None


class ViewerSink(OverlayTracker):
    """Shows every frame with its overlay in an OpenCV window (see the module docstring for keys and wiring).

    ``scale`` resizes the shown image; ``on_event`` receives the LARGER/SMALLER/REJECT events (else they are
    queued for :meth:`interleave`). :attr:`quit_requested` turns True on ``q``. :attr:`headless` is True when
    no window can be shown (then :attr:`headless_reason` says why, logged once as a warning).
    """

    def __init__(
        self,
        camera: CameraModel,
        *,
        on_event: Callable[[InputEvent], None] | None = None,
        stats: PipelineStats | None = None,
        source_label: str = "",
        window_name: str = "xrseg",
        scale: float = 1.0,
    ) -> None:
        super().__init__(camera, stats=stats, source_label=source_label)
        self.on_event = on_event
        self.window_name = window_name
        self.scale = scale
        self.paused = False
        self.quit_requested = False
        self._step = False
        self._pending: deque[InputEvent] = deque()
        self._window_open = False
        self.headless_reason = display_problem()
        if self.headless_reason is not None:
            self._go_headless(self.headless_reason)

    @property
    def headless(self) -> bool:
        return self.headless_reason is not None

    def _go_headless(self, reason: str) -> None:
        self.headless_reason = reason
        log.warning("--view: %s; carrying on without a window", reason)

    def on_frame(self, event: FrameEvent) -> None:
        super().on_frame(event)
        if self.headless or self.quit_requested:
            return
        image = self.render(event)
        if self.paused:
            image = image.copy()
            cv2.putText(image, "paused", (4, image.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0))
        if not self._show(image):
            return
        self.handle_key(cv2.waitKey(1))
        while self.paused and not self._step and not self.quit_requested and not self.headless:
            self.handle_key(cv2.waitKey(_PAUSED_POLL_MS))
        self._step = False

    def _show(self, image: np.ndarray) -> bool:
        if self.scale != 1.0:
            image = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        try:
            cv2.imshow(self.window_name, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        except cv2.error as err:
            message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            self._go_headless(f"cv2.imshow failed ({message})")
            return False
        self._window_open = True
        return True

    def handle_key(self, key: int) -> None:
        """Act on one key code as returned by ``cv2.waitKey`` (-1: no key)."""
        if key < 0:
            return
        key &= 0xFF
        if key == _PAUSE_KEY:
            self.paused = not self.paused
        elif key in _STEP_KEYS:
            self.paused = True
            self._step = True
        elif key in _QUIT_KEYS:
            self.quit_requested = True
        elif key in _KEY_EVENTS:
            self._emit(_KEY_EVENTS[key])

    def _emit(self, kind: EventKind) -> None:
        event = InputEvent(self.last_timestamp_ns or 0, kind)
        log.info("--view: %s", kind.value)
        if self.on_event is not None:
            self.on_event(event)
        else:
            self._pending.append(event)

    def pending_events(self) -> list[InputEvent]:
        """The queued key events, oldest first; the queue is emptied."""
        events = list(self._pending)
        self._pending.clear()
        return events

    def interleave(self, items: Iterable[SourceItem]) -> Iterator[SourceItem]:
        """``items`` with the queued key events inserted after the item that was current when the key was
        pressed; ends early when :attr:`quit_requested` turns True."""
        for item in items:
            if self.quit_requested:
                return
            yield item
            yield from self.pending_events()
        yield from self.pending_events()

    def close(self) -> None:
        if self._window_open:
            try:
                cv2.destroyWindow(self.window_name)
                cv2.waitKey(1)
            except cv2.error:
                pass
            self._window_open = False
