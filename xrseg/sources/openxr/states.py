"""The OpenXR session lifecycle as a pure state machine: events in, actions out.

It makes no OpenXR calls itself: :class:`xrseg.sources.openxr.OpenXRSource` polls events, feeds them to
:meth:`SessionStateMachine.handle` and carries out the returned :class:`SessionAction` values. That keeps the
rules testable with real pyopenxr event structs and no runtime:

- READY -> begin the session; STOPPING -> end it; EXITING or LOSS_PENDING (or instance loss) -> leave the loop;
- a requested exit while running -> ``xrRequestExitSession`` and wait for STOPPING/EXITING, but never longer
  than ``exit_timeout_ns``;
- a session that never becomes READY within ``ready_timeout_ns`` -> leave the loop with an error, so nothing
  hangs forever on a headset that is off or asleep.
"""

from __future__ import annotations

import ctypes
import enum
import logging
from dataclasses import dataclass

import xr

logger = logging.getLogger(__name__)

_SAMPLING_STATES = frozenset({xr.SessionState.SYNCHRONIZED, xr.SessionState.VISIBLE, xr.SessionState.FOCUSED})


class SessionAction(enum.Enum):
    BEGIN_SESSION = "begin_session"
    """Call ``xrBeginSession``."""
    END_SESSION = "end_session"
    """Call ``xrEndSession``."""
    REQUEST_EXIT = "request_exit"
    """Call ``xrRequestExitSession`` (then wait for STOPPING)."""
    EXIT_LOOP = "exit_loop"
    """Leave the frame loop; the session and instance are destroyed on the way out."""


@dataclass(frozen=True)
class SessionTimeouts:
    ready_timeout_ns: int = 30_000_000_000
    exit_timeout_ns: int = 2_000_000_000


def event_from_buffer(event: object) -> object:
    """Return the typed event struct for an ``xr.EventDataBuffer`` (or the struct itself if already typed)."""
    if not isinstance(event, xr.EventDataBuffer):
        return event
    kind = xr.StructureType(event.type)
    typed: dict[xr.StructureType, type] = {
        xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED: xr.EventDataSessionStateChanged,
        xr.StructureType.EVENT_DATA_INSTANCE_LOSS_PENDING: xr.EventDataInstanceLossPending,
        xr.StructureType.EVENT_DATA_EVENTS_LOST: xr.EventDataEventsLost,
    }
    struct_type = typed.get(kind)
    if struct_type is None:
        return event
    return ctypes.cast(ctypes.byref(event), ctypes.POINTER(struct_type)).contents


class SessionStateMachine:
    """Tracks the session state and decides what to call. Create one per session, at session creation."""

    def __init__(self, created_ns: int, timeouts: SessionTimeouts | None = None) -> None:
        self.timeouts = timeouts or SessionTimeouts()
        self.state = xr.SessionState.UNKNOWN
        self.running = False
        """True between a successful ``xrBeginSession`` and ``xrEndSession``."""
        self.exited = False
        self.exit_reason: str | None = None
        self.error: str | None = None
        """Set when the loop ended abnormally (a timeout): the caller raises it as a DeviceError."""
        self._created_ns = created_ns
        self._ever_ready = False
        self._exit_deadline_ns: int | None = None

    @property
    def sampling(self) -> bool:
        """True when spaces can be located (the session is running and synchronized with the runtime)."""
        return self.running and not self.exited and self.state in _SAMPLING_STATES

    @property
    def focused(self) -> bool:
        """True when actions are delivered (``xrSyncActions`` only activates actions in FOCUSED)."""
        return self.sampling and self.state == xr.SessionState.FOCUSED

    def handle(self, event: object) -> tuple[SessionAction, ...]:
        """Handle one polled event (an ``xr.EventDataBuffer`` or a typed ``xr.EventData*`` struct)."""
        if self.exited:
            return ()
        typed = event_from_buffer(event)
        if isinstance(typed, xr.EventDataSessionStateChanged):
            return self._on_state(xr.SessionState(typed.state))
        if isinstance(typed, xr.EventDataInstanceLossPending):
            return self._exit("the OpenXR instance is about to be lost (runtime shutting down or restarting)")
        if isinstance(typed, xr.EventDataEventsLost):
            logger.warning("the OpenXR runtime dropped %d events", int(typed.lost_event_count))
        return ()

    def request_exit(self, now_ns: int) -> tuple[SessionAction, ...]:
        """The application wants to stop (end of a recording, Ctrl-C, the consumer went away)."""
        if self.exited:
            return ()
        if self.running and self.state not in (xr.SessionState.STOPPING, xr.SessionState.EXITING):
            if self._exit_deadline_ns is None:
                self._exit_deadline_ns = now_ns + self.timeouts.exit_timeout_ns
                return (SessionAction.REQUEST_EXIT,)
            return ()
        return self._exit("the application asked to stop")

    def tick(self, now_ns: int) -> tuple[SessionAction, ...]:
        """Call once per loop iteration: enforces the READY and exit timeouts."""
        if self.exited:
            return ()
        if self._exit_deadline_ns is not None and now_ns >= self._exit_deadline_ns:
            # xrEndSession is only valid in STOPPING: leave and let xrDestroySession clean up.
            self.running = False
            return self._exit("the runtime did not stop the session in time after an exit request")
        if not self._ever_ready and now_ns - self._created_ns >= self.timeouts.ready_timeout_ns:
            seconds = self.timeouts.ready_timeout_ns / 1e9
            self.error = (
                f"the OpenXR session did not become READY within {seconds:g} s "
                "(is the headset connected, awake and worn?)"
            )
            return self._exit(self.error)
        return ()

    def _on_state(self, state: xr.SessionState) -> tuple[SessionAction, ...]:
        logger.info("OpenXR session state %s -> %s", self.state.name, state.name)
        self.state = state
        if state == xr.SessionState.READY:
            self._ever_ready = True
            if not self.running:
                self.running = True
                return (SessionAction.BEGIN_SESSION,)
            return ()
        if state == xr.SessionState.STOPPING:
            if self.running:
                self.running = False
                return (SessionAction.END_SESSION,)
            return ()
        if state == xr.SessionState.EXITING:
            return self._exit("the runtime ended the session")
        if state == xr.SessionState.LOSS_PENDING:
            # The spec asks for xrDestroySession (not xrEndSession) on a session being lost.
            self.running = False
            return self._exit("the OpenXR session is being lost (headset disconnected?)")
        return ()

    def _exit(self, reason: str) -> tuple[SessionAction, ...]:
        self.exited = True
        self.exit_reason = reason
        return (SessionAction.EXIT_LOOP,)
