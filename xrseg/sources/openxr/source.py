"""Head pose and eye gaze from an OpenXR runtime (pyopenxr), on xrseg's monotonic nanosecond clock.

Usage::

    with OpenXRSource() as xr_source:
        for item in xr_source.stream():   # HeadPose and GazeSample records, ascending time
            ...

What it does, in order (see docs/headsets.md for which headsets give what):

1. Lists the runtime's extensions (:func:`runtime_extensions`; no runtime -> :class:`RuntimeUnavailableError`)
   and picks them with :func:`xrseg.sources.openxr.extensions.select_extensions`.
2. Asks the system whether it really has an eye tracker through the ``next`` chain of
   ``xrGetSystemProperties`` (``XrSystemEyeGazeInteractionPropertiesEXT``, ``XrSystemEyeTrackingPropertiesFB``):
   runtimes may list XR_EXT_eye_gaze_interaction and still report no support. Without one, gaze falls back to
   the head's forward ray (logged once).
3. Creates the session headless (XR_MND_headless) when offered, else with a hidden 1x1 GLFW OpenGL window as
   the graphics binding (XR_KHR_opengl_enable); that window is never shown and frames are submitted with no
   layers. Needs a desktop session (X11) and the ``glfw`` package.
4. Creates the gaze pose action (``/user/eyes_ext/input/gaze_ext/pose`` on
   ``/interaction_profiles/ext/eye_gaze_interaction``) or an XR_FB eye tracker, and the VIEW and LOCAL (or
   STAGE) reference spaces.
5. Loops: polls events into :class:`~xrseg.sources.openxr.states.SessionStateMachine`, paces itself
   (``xrWaitFrame``/``xrBeginFrame``/``xrEndFrame`` with a graphics binding; a sleep at ``sample_rate_hz`` when
   headless, where ``xrWaitFrame`` may return display time 0 and ``xrBeginFrame`` is invalid) and locates the
   head (VIEW in the base space) and the gaze (in VIEW, so rays are in the head frame) at the current host time
   converted to XrTime through the convert-time extension.

Every OpenXR failure surfaces as a named :mod:`xrseg.errors` exception chained to pyopenxr's
(:func:`xrseg.sources.openxr.runtime.call`). The runtime's own parts are in :mod:`~xrseg.sources.openxr.runtime`,
the gaze action and eye-tracker reads in :mod:`~xrseg.sources.openxr.gaze`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import xr

from xrseg.errors import DeviceError, InputError, RuntimeUnavailableError
from xrseg.sources.clock import ClockMapping, now_ns, xr_time_value
from xrseg.sources.openxr.extensions import ExtensionPlan, select_extensions
from xrseg.sources.openxr.gaze import (
    GazeAction,
    attach_gaze_action,
    create_gaze_action,
    read_eye_gaze_ext,
    read_fb_eye_gaze,
)
from xrseg.sources.openxr.poses import head_gaze_sample, head_transform_from_location
from xrseg.sources.openxr.runtime import (
    GazeMode,
    call,
    estimate_clock,
    gaze_mode_for,
    map_xr_error,
    query_eye_tracking_support,
    runtime_extensions,
)
from xrseg.sources.openxr.states import SessionAction, SessionStateMachine, SessionTimeouts
from xrseg.types import GazeSample, HeadPose

logger = logging.getLogger(__name__)

__all__ = ["OpenXROptions", "OpenXRSource"]


@dataclass(frozen=True)
class OpenXROptions:
    app_name: str = "xrseg"
    reference_space: str = "local"
    """"local" (seated/standing origin where the session started) or "stage" (the floor-level play area)."""
    allow_headless: bool = True
    sample_rate_hz: float = 90.0
    """Sampling rate when headless (with a graphics binding the runtime's frame rate paces the loop)."""
    timeouts: SessionTimeouts = field(default_factory=SessionTimeouts)

    def __post_init__(self) -> None:
        if self.reference_space not in ("local", "stage"):
            raise InputError(f"reference_space must be 'local' or 'stage', got {self.reference_space!r}")
        if not self.sample_rate_hz > 0:
            raise InputError(f"sample_rate_hz must be positive, got {self.sample_rate_hz}")


class OpenXRSource:
    """The OpenXR lifecycle as a context manager; :meth:`stream` is the frame loop.

    Not thread-safe except :meth:`stop`, which any thread may call to end the stream cleanly. Enter and exit
    on one thread (the main thread when the session needs the hidden GLFW window); :meth:`stream` may run on
    another, one call at a time, finished before the exit.
    """

    def __init__(self, options: OpenXROptions | None = None) -> None:
        self.options = options or OpenXROptions()
        self.plan: ExtensionPlan | None = None
        self.gaze_mode = GazeMode.HEAD
        self.clock: ClockMapping | None = None
        self._stop = threading.Event()
        self._exit_stack = contextlib.ExitStack()
        self._instance: Any = None
        self._system_id: int = 0
        self._session: Any = None
        self._view_config: Any = None
        self._blend_mode: Any = xr.EnvironmentBlendMode.OPAQUE
        self._view_space: Any = None
        self._base_space: Any = None
        self._gaze_action: GazeAction | None = None
        self._gaze_space: Any = None
        self._fb_tracker: Any = None
        self._graphics: Any = None
        self._machine: SessionStateMachine | None = None
        self._last_gaze_ns: int | None = None
        self._warned_head_gaze = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    def __enter__(self) -> OpenXRSource:
        try:
            self._open()
        except BaseException:
            self._exit_stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._exit_stack.close()
        except xr.XrException as err:
            if exc is None:
                raise map_xr_error(err, "OpenXR clean-up") from err
            logger.warning("OpenXR clean-up failed after an earlier error: %s", err)

    def stop(self) -> None:
        """Ask the stream to end (from any thread): the runtime ends the session, then the loop exits."""
        self._stop.set()

    def _open(self) -> None:
        plan = select_extensions(runtime_extensions(), allow_headless=self.options.allow_headless)
        self.plan = plan
        logger.info("enabling OpenXR extensions: %s", ", ".join(plan.enabled) or "(none)")
        create_info = xr.InstanceCreateInfo(
            application_info=xr.ApplicationInfo(
                application_name=self.options.app_name,
                application_version=1,
                engine_name="xrseg",
                engine_version=1,
                api_version=xr.Version(1, 0, xr.XR_VERSION_PATCH),
            ),
            enabled_extension_names=list(plan.enabled),
        )
        self._instance = call("xrCreateInstance", xr.create_instance, create_info)
        self._exit_stack.callback(xr.destroy_instance, self._instance)
        self._system_id = call(
            "xrGetSystem",
            xr.get_system,
            self._instance,
            xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY),
        )
        eye_gaze_ok, fb_ok = query_eye_tracking_support(self._instance, self._system_id, plan)
        if plan.eye_gaze_ext and not eye_gaze_ok:
            logger.warning("the runtime lists XR_EXT_eye_gaze_interaction but this system has no eye gaze")
        self.gaze_mode = gaze_mode_for(plan, eye_gaze_ok, fb_ok)
        if self.gaze_mode is GazeMode.HEAD:
            logger.warning("no eye tracker is available: gaze falls back to the head's forward ray")
        else:
            logger.info("eye gaze through %s", self.gaze_mode.value)
        view_configs = call(
            "xrEnumerateViewConfigurations", xr.enumerate_view_configurations, self._instance, self._system_id
        )
        self._view_config = (
            xr.ViewConfigurationType(view_configs[0])
            if len(view_configs)
            else (xr.ViewConfigurationType.PRIMARY_STEREO)
        )
        if self.gaze_mode is GazeMode.EYE_GAZE_EXT:
            self._gaze_action = create_gaze_action(self._instance, self._exit_stack)
        self._create_session(plan)
        self._create_spaces()
        if self.gaze_mode is GazeMode.FB_EYE_TRACKING:
            self._fb_tracker = call("xrCreateEyeTrackerFB", xr.create_eye_tracker_fb, self._session)
            self._exit_stack.callback(xr.destroy_eye_tracker_fb, self._fb_tracker)
        self.clock = estimate_clock(self._instance, plan)
        self._machine = SessionStateMachine(now_ns(), self.options.timeouts)

    def _create_session(self, plan: ExtensionPlan) -> None:
        create_info = xr.SessionCreateInfo(system_id=self._system_id)
        if not plan.headless:
            binding_pointer = self._create_gl_binding()
            create_info.next = binding_pointer
            modes = call(
                "xrEnumerateEnvironmentBlendModes",
                xr.enumerate_environment_blend_modes,
                self._instance,
                self._system_id,
                self._view_config,
            )
            if len(modes):
                self._blend_mode = xr.EnvironmentBlendMode(modes[0])
        self._session = call("xrCreateSession", xr.create_session, self._instance, create_info)
        self._exit_stack.callback(xr.destroy_session, self._session)
        if self._gaze_action is not None:
            self._gaze_space = attach_gaze_action(self._session, self._gaze_action, self._exit_stack)

    def _create_gl_binding(self) -> Any:
        """A hidden 1x1 GLFW window's OpenGL context as the session's graphics binding (never shown)."""
        try:
            from xr.utils.gl import OpenGLGraphics
            from xr.utils.gl.glfw_util import GLFWOffscreenContextProvider
        except ImportError as err:
            raise RuntimeUnavailableError(
                f"the OpenXR runtime needs a graphics binding and the OpenGL helpers cannot be imported ({err}); "
                "install glfw, or use a runtime with XR_MND_headless"
            ) from err
        try:
            context = GLFWOffscreenContextProvider()
        except Exception as err:
            raise DeviceError(
                f"could not create a hidden OpenGL window for the OpenXR session ({err}); run inside a desktop "
                "session, or use a runtime with XR_MND_headless (Monado)"
            ) from err
        try:
            graphics = OpenGLGraphics(self._instance, self._system_id, context)
        except xr.XrException as err:
            context.destroy()
            raise map_xr_error(err, "xrGetOpenGLGraphicsRequirementsKHR") from err
        except RuntimeError as err:
            context.destroy()
            raise DeviceError(f"no usable OpenGL binding for the OpenXR session: {err}") from err
        self._graphics = graphics
        self._exit_stack.callback(graphics.destroy)
        return graphics.graphics_binding.pointer

    def _create_spaces(self) -> None:
        available = {
            int(s) for s in call("xrEnumerateReferenceSpaces", xr.enumerate_reference_spaces, self._session)
        }
        base_type = xr.ReferenceSpaceType.LOCAL
        if self.options.reference_space == "stage":
            if int(xr.ReferenceSpaceType.STAGE) in available:
                base_type = xr.ReferenceSpaceType.STAGE
            else:
                logger.warning("the runtime has no STAGE space; using LOCAL")
        for kind in (xr.ReferenceSpaceType.VIEW, base_type):
            space = call(
                "xrCreateReferenceSpace",
                xr.create_reference_space,
                self._session,
                xr.ReferenceSpaceCreateInfo(reference_space_type=kind, pose_in_reference_space=xr.Posef()),
            )
            self._exit_stack.callback(xr.destroy_space, space)
            if kind == xr.ReferenceSpaceType.VIEW:
                self._view_space = space
            else:
                self._base_space = space

    # -- the loop ------------------------------------------------------------------------------------------

    def stream(self) -> Iterator[HeadPose | GazeSample]:
        """Yield HeadPose and GazeSample records until the session ends or :meth:`stop` is called."""
        machine = self._machine
        if machine is None or self.plan is None:
            raise RuntimeError("OpenXRSource.stream() needs the source entered (use it as a context manager)")
        period_s = 1.0 / self.options.sample_rate_hz
        if self._graphics is not None:
            # The binding's context must be current on the thread that calls xrBeginFrame/xrEndFrame.
            self._graphics.make_current()
        while True:
            self._poll_events(machine)
            if self._stop.is_set():
                self._apply(machine.request_exit(now_ns()))
            self._apply(machine.tick(now_ns()))
            if machine.exited:
                break
            if not machine.running:
                time.sleep(0.05)
                continue
            started = time.monotonic()
            if self.plan.headless:
                yield from self._headless_iteration(machine)
                time.sleep(max(0.0, period_s - (time.monotonic() - started)))
            else:
                yield from self._graphics_iteration(machine)
        logger.info("OpenXR stream ended: %s", machine.exit_reason)
        if machine.error:
            raise DeviceError(machine.error)

    def _poll_events(self, machine: SessionStateMachine) -> None:
        for _ in range(64):  # bounded: never spin here forever
            try:
                event = xr.poll_event(self._instance)
            except xr.EventUnavailable:
                return
            except xr.XrException as err:
                raise map_xr_error(err, "xrPollEvent") from err
            self._apply(machine.handle(event))

    def _apply(self, actions: tuple[SessionAction, ...]) -> None:
        for action in actions:
            if action is SessionAction.BEGIN_SESSION:
                call(
                    "xrBeginSession",
                    xr.begin_session,
                    self._session,
                    xr.SessionBeginInfo(primary_view_configuration_type=self._view_config),
                )
            elif action is SessionAction.END_SESSION:
                call("xrEndSession", xr.end_session, self._session)
            elif action is SessionAction.REQUEST_EXIT:
                call("xrRequestExitSession", xr.request_exit_session, self._session)

    def _headless_iteration(self, machine: SessionStateMachine) -> Iterator[HeadPose | GazeSample]:
        # Headless: xrWaitFrame may report display time 0 and xrBeginFrame is then invalid, so no frame calls at
        # all: the loop paces itself and locates at the host time converted to XrTime (select_extensions only
        # plans headless together with a convert-time extension, so the mapping exists).
        host = now_ns()
        if self.clock is None:
            raise RuntimeError("a headless OpenXR session needs the clock mapping (select_extensions ensures it)")
        yield from self._sample(machine, self.clock.to_xr_time(host), host)

    def _graphics_iteration(self, machine: SessionStateMachine) -> Iterator[HeadPose | GazeSample]:
        frame_state = call("xrWaitFrame", xr.wait_frame, self._session)
        call("xrBeginFrame", xr.begin_frame, self._session)
        try:
            if self.clock is not None and self.clock.exact:
                host = now_ns()
                xr_time = self.clock.to_xr_time(host)
            else:
                # No convert-time extension: locate at the predicted display time and map it with an offset
                # guessed on the first frame (biased by the runtime's prediction latency, tens of ms).
                xr_time = xr_time_value(frame_state.predicted_display_time)
                if self.clock is None and xr_time > 0:
                    self.clock = ClockMapping(offset_ns=xr_time - now_ns(), exact=False)
                host = self.clock.to_host_ns(xr_time) if self.clock is not None else now_ns()
            items = list(self._sample(machine, xr_time, host)) if machine.sampling else []
        finally:
            call(
                "xrEndFrame",
                xr.end_frame,
                self._session,
                xr.FrameEndInfo(
                    display_time=frame_state.predicted_display_time,
                    environment_blend_mode=self._blend_mode,
                    layers=[],
                ),
            )
        yield from items

    def _sample(self, machine: SessionStateMachine, xr_time: int, host_ns: int) -> Iterator[HeadPose | GazeSample]:
        if xr_time <= 0:
            return
        location = call("xrLocateSpace", xr.locate_space, self._view_space, self._base_space, xr.Time(xr_time))
        world_from_head = head_transform_from_location(location)
        if world_from_head is not None:
            yield HeadPose(timestamp_ns=host_ns, world_from_head=world_from_head)
        gaze = self._gaze(machine, xr_time, host_ns, head_valid=world_from_head is not None)
        if gaze is not None and gaze.timestamp_ns != self._last_gaze_ns:
            self._last_gaze_ns = gaze.timestamp_ns
            yield gaze

    def _gaze(
        self, machine: SessionStateMachine, xr_time: int, host_ns: int, head_valid: bool
    ) -> GazeSample | None:
        clock = self.clock
        if clock is None:
            return None
        if self.gaze_mode is GazeMode.EYE_GAZE_EXT:
            if not machine.focused or self._gaze_action is None:
                return None
            return read_eye_gaze_ext(
                self._session, self._gaze_action, self._gaze_space, self._view_space, xr_time, clock
            )
        if self.gaze_mode is GazeMode.FB_EYE_TRACKING:
            return read_fb_eye_gaze(self._fb_tracker, self._view_space, xr_time, clock)
        if not head_valid:
            return None
        if not self._warned_head_gaze:
            self._warned_head_gaze = True
            logger.warning("streaming head gaze (the view's forward ray): no eye tracker")
        return head_gaze_sample(host_ns)
