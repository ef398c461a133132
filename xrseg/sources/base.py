"""What every source (replay, live OpenXR + camera) gives the pipeline.

A source is an iterable of timestamped items in (approximately, for live sources) ascending ``timestamp_ns``
order on one monotonic nanosecond clock, plus the static facts the pipeline needs: the camera model and where
the camera sits on the head.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeAlias

from xrseg.types import CameraModel, Frame, GazeSample, HeadPose, InputEvent, Transform

SourceItem: TypeAlias = Frame | HeadPose | GazeSample | InputEvent


class Source(Protocol):
    """A stream of sensor items. ``camera`` describes the frames; ``head_from_camera`` is a 4x4 float64."""

    @property
    def camera(self) -> CameraModel: ...

    @property
    def head_from_camera(self) -> Transform: ...

    def __iter__(self) -> Iterator[SourceItem]: ...
