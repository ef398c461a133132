"""Benchmarks of the lifting stages on a realistic 640x480 rendered frame (called by ``xrseg bench``).

Each returns the per-iteration wall time in milliseconds. The scene: a 10 cm sphere and a box on a table
plane, seen from 0.6 m by a 640x480 camera with 70 degree horizontal field of view and mild lens distortion,
the sphere's mask about 25 000 pixels.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.lift.export import export_mesh
from xrseg.lift.fusion import ObjectFusion
from xrseg.lift.pointcloud import lift_mask
from xrseg.sam.records import MaskPrediction
from xrseg.select.maskchoice import choose_mask, look_through_point
from xrseg.tools.synthetic_lift import (
    RenderedView,
    SceneObject,
    look_at,
    make_box,
    make_sphere,
    pinhole_camera,
    render_view,
)
from xrseg.types import CameraModel, Transform

logger = logging.getLogger(__name__)

__all__ = [
    "MaskChoiceCase",
    "bench_extract_and_export",
    "bench_lift",
    "bench_mask_choice",
    "bench_tsdf_integrate",
    "mask_choice_case",
]

_SPHERE_CENTER = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _BenchView:
    camera: CameraModel
    world_from_camera: Transform
    view: RenderedView


def _scene() -> list[SceneObject]:
    return [
        SceneObject(make_sphere(0.1, _SPHERE_CENTER), (200, 120, 60)),
        SceneObject(make_box((0.12, 0.12, 0.12), (0.22, -0.04, 0.0)), (60, 160, 90)),
        SceneObject(make_box((1.2, 0.02, 1.2), (0.0, -0.11, 0.0)), (150, 150, 160)),
    ]


def _views(count: int) -> list[_BenchView]:
    camera = pinhole_camera(640, 480, 70.0, (-0.04, 0.01, 0.0, 0.0))
    objects = _scene()
    views = []
    for i in range(count):
        azimuth = 2.0 * math.pi * i / max(count, 1)
        eye = np.array([0.6 * math.sin(azimuth), 0.25, 0.6 * math.cos(azimuth)])
        world_from_camera = look_at(eye, _SPHERE_CENTER)
        views.append(_BenchView(camera, world_from_camera, render_view(objects, camera, world_from_camera)))
    return views


def _timed(fn: Callable[[], object], iterations: int) -> list[float]:
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def bench_lift(iterations: int = 50) -> list[float]:
    """Milliseconds per :func:`lift_mask` of the sphere's mask (default border filter, no outlier removal).

    The camera's ray grid is built before timing (it is cached per camera for the life of the process).
    """
    bench = _views(1)[0]
    mask: npt.NDArray[np.bool_] = bench.view.mask(0)
    lift_mask(mask, bench.view.depth_m, bench.view.rgb, bench.camera, bench.world_from_camera)  # warm the cache
    return _timed(
        lambda: lift_mask(mask, bench.view.depth_m, bench.view.rgb, bench.camera, bench.world_from_camera),
        iterations,
    )


@dataclass(frozen=True)
class MaskChoiceCase:
    """The mask-choice benchmark's input: the frame's HxW float32 ``depth_m``, a 3-candidate ``prediction``
    (a patch of the sphere, the sphere, sphere + box, SAM preferring the group) and the gaze pixel ``gaze_xy``
    at the sphere's median pixel."""

    depth_m: npt.NDArray[np.float32]
    prediction: MaskPrediction
    gaze_xy: tuple[float, float]


def mask_choice_case() -> MaskChoiceCase:
    """The group case of the mask choice on the 640x480 frame; the right answer is the sphere (1)."""
    view = _views(1)[0].view
    sphere = view.mask(0)
    ys, xs = np.nonzero(sphere)
    centre = (float(np.median(xs)), float(np.median(ys)))
    rows, cols = np.mgrid[0 : sphere.shape[0], 0 : sphere.shape[1]]
    patch = sphere & (np.hypot(cols - centre[0], rows - centre[1]) < 20)
    prediction = MaskPrediction(
        masks=np.stack([patch, sphere, sphere | view.mask(1)]),
        scores=np.array([0.95, 0.93, 0.96], np.float32),
        low_res_logits=np.zeros((3, 256, 256), np.float32),
        stability=np.ones(3, np.float32),
        best=2,
    )
    return MaskChoiceCase(view.depth_m, prediction, centre)


def bench_mask_choice(iterations: int = 50) -> list[float]:
    """Milliseconds per depth-aware mask choice plus look-through test (:mod:`xrseg.select.maskchoice`) on
    :func:`mask_choice_case`."""
    case = mask_choice_case()
    points = np.array([case.gaze_xy], np.float32)
    labels = np.ones(1, np.int32)

    def choose() -> None:
        choice = choose_mask(case.prediction, case.depth_m, points, labels)
        look_through_point(case.prediction.masks[choice.index], case.depth_m, case.gaze_xy)

    return _timed(choose, iterations)


def bench_keyframe_analysis(iterations: int = 8) -> list[float]:
    """Milliseconds per cone-search keyframe analysis (:func:`xrseg.select.candidates.analyse_keyframe`:
    support planes, depth edges, object proposals) of the 640x480 benchmark frame: it runs once per keyframe,
    and only when a selection needs the cone search."""
    from xrseg.select.candidates import analyse_keyframe

    view = _views(1)[0]
    up_camera = np.asarray(view.world_from_camera)[:3, :3].T @ np.array([0.0, 1.0, 0.0])
    return _timed(lambda: analyse_keyframe(view.view.depth_m, view.camera, 0.04, up_camera=up_camera), iterations)


def bench_tsdf_integrate(iterations: int = 12) -> list[float]:
    """Milliseconds per :meth:`ObjectFusion.integrate` of the sphere's masked depth, one view per iteration
    around the sphere (4 mm voxels)."""
    views = _views(iterations)
    fusion = ObjectFusion(voxel_size_m=0.004)
    times = []
    for bench in views:
        mask = bench.view.mask(0)
        start = time.perf_counter()
        fusion.integrate(mask, bench.view.depth_m, bench.view.rgb, bench.camera, bench.world_from_camera)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def bench_extract_and_export(iterations: int = 5) -> list[float]:
    """Milliseconds per mesh extraction (with cleaning) plus PLY + OBJ + GLB export of the sphere fused from
    8 views, written to a temporary directory."""
    fusion = ObjectFusion(voxel_size_m=0.004)
    for bench in _views(8):
        fusion.integrate(
            bench.view.mask(0), bench.view.depth_m, bench.view.rgb, bench.camera, bench.world_from_camera
        )
    metadata: dict[str, str | int | float | list[str | int | float]] = {"object_id": 0, "source": "bench"}
    with tempfile.TemporaryDirectory(prefix="xrseg-bench-") as out_dir:
        return _timed(lambda: export_mesh(fusion.extract_mesh(), out_dir, "sphere", metadata), iterations)
