"""Following a lifted object into later ray-cast frames, with a ground-truth oracle decoder and with real SAM."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from xrseg.errors import InputError
from xrseg.lift import FollowParams, ObjectFollower, lift_mask
from xrseg.lift.follow import Decoder
from xrseg.sam.engine import SamEngine
from xrseg.tools.synthetic_lift import (
    RenderedView,
    SceneObject,
    look_at,
    make_box,
    make_sphere,
    pinhole_camera,
    render_view,
)

CAMERA = pinhole_camera(640, 480, 65.0, (-0.05, 0.01, 0.0, 0.0))
SPHERE = 0
NEIGHBOUR = 1
SCENE = [
    SceneObject(make_sphere(0.08, (0.0, 0.0, 0.0)), (210, 110, 40)),
    SceneObject(make_box((0.12, 0.12, 0.12), (0.22, -0.02, -0.05)), (50, 150, 210)),
    SceneObject(make_box((1.5, 0.02, 1.5), (0.0, -0.09, 0.0)), (120, 120, 110)),
]


def _pose(x_m: float, target_x_m: float = 0.0) -> np.ndarray:
    return look_at((x_m, 0.25, 0.6), (target_x_m, 0.0, 0.0))


def _oracle(view: RenderedView, calls: list[int] | None = None) -> Decoder:
    """A real oracle decoder: the ground-truth instance mask of whatever object is under the first point."""

    def decode(
        points_xy: npt.NDArray[np.float32], labels: npt.NDArray[np.int32], box: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.bool_]:
        assert points_xy.dtype == np.float32 and labels.dtype == np.int32 and points_xy.shape == (len(labels), 2)
        if calls is not None:
            calls.append(len(labels))
        x, y = round(float(points_xy[0, 0])), round(float(points_xy[0, 1]))
        instance = int(view.instance_ids[y, x])
        return view.mask(instance) if instance >= 0 else np.zeros(view.instance_ids.shape, bool)

    return decode


@pytest.fixture(scope="module")
def follower() -> ObjectFollower:
    start = _pose(0.0)
    view = render_view(SCENE, CAMERA, start)
    lifted = lift_mask(view.mask(SPHERE), view.depth_m, view.rgb, CAMERA, start)
    return ObjectFollower(lifted.points_world_m)


def test_follower_keeps_the_object_through_a_small_camera_motion(follower: ObjectFollower) -> None:
    for step in range(1, 5):
        pose = _pose(0.03 * step, target_x_m=0.01 * step)  # translate 3 cm and turn a little each frame
        view = render_view(SCENE, CAMERA, pose)
        result = follower.follow(view.depth_m, CAMERA, pose, _oracle(view))
        assert result.followed, result.stopped_reason
        assert result.mask is not None
        np.testing.assert_array_equal(result.mask, view.mask(SPHERE))
        assert result.agreement_iou > 0.75 and result.coverage > 0.95
        # Every prompt point is on the object and the box contains the whole object.
        xs = np.rint(result.prompt_points_xy[:, 0]).astype(int)
        ys = np.rint(result.prompt_points_xy[:, 1]).astype(int)
        assert len(xs) == 3 and np.all(view.mask(SPHERE)[ys, xs])
        assert np.all(result.prompt_labels == 1)
        assert result.box_xyxy is not None
        rows, cols = np.nonzero(view.mask(SPHERE))
        x0, y0, x1, y1 = result.box_xyxy
        assert x0 <= cols.min() + 2 and y0 <= rows.min() + 2 and x1 >= cols.max() - 2 and y1 >= rows.max() - 2


def test_follower_stops_when_the_object_leaves_the_view(follower: ObjectFollower) -> None:
    pose = _pose(0.0, target_x_m=-1.5)  # turned far to the left: the sphere is off the right edge
    view = render_view(SCENE, CAMERA, pose)
    assert not view.mask(SPHERE).any()
    calls: list[int] = []
    result = follower.follow(view.depth_m, CAMERA, pose, _oracle(view, calls))
    assert result.stopped_reason == "object left the view"
    assert result.mask is None and calls == []
    behind = look_at((0.0, 0.25, -0.6), (0.0, 0.25, -2.0))  # looking away: every point behind the camera
    result = follower.follow(view.depth_m, CAMERA, behind, _oracle(view, calls))
    assert result.stopped_reason == "object left the view"


def test_follower_stops_when_the_object_is_occluded(follower: ObjectFollower) -> None:
    pose = _pose(0.0)
    wall = SceneObject(make_box((0.5, 0.5, 0.02), (0.0, 0.1, 0.3)), (90, 90, 90))
    view = render_view([*SCENE, wall], CAMERA, pose)
    result = follower.follow(view.depth_m, CAMERA, pose, _oracle(view))
    assert result.stopped_reason is not None and result.stopped_reason.startswith("object is occluded")


def test_follower_stops_without_depth(follower: ObjectFollower) -> None:
    pose = _pose(0.02)
    view = render_view(SCENE, CAMERA, pose)
    assert follower.follow(None, CAMERA, pose, _oracle(view)).stopped_reason == "no depth"
    holes = np.zeros_like(view.depth_m)
    assert follower.follow(holes, CAMERA, pose, _oracle(view)).stopped_reason == "no depth"


def test_follower_rejects_a_mask_of_another_object(follower: ObjectFollower) -> None:
    pose = _pose(0.02)
    view = render_view(SCENE, CAMERA, pose)

    def wrong(points_xy: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        return view.mask(NEIGHBOUR)

    result = follower.follow(view.depth_m, CAMERA, pose, wrong)
    assert result.stopped_reason == "mask disagrees with projection (IoU 0.00 < 0.5)"
    assert result.mask is None and result.agreement_iou == 0.0

    def empty(points_xy: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        return np.zeros((480, 640), bool)

    assert follower.follow(view.depth_m, CAMERA, pose, empty).stopped_reason == "decoder returned an empty mask"

    def partial(points_xy: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        mask = view.mask(SPHERE).copy()
        mask[: int(np.nonzero(mask)[0].mean())] = False  # only the lower half of the object
        return mask

    result = follower.follow(view.depth_m, CAMERA, pose, partial)
    assert result.stopped_reason is not None
    assert result.stopped_reason.startswith(("mask disagrees", "mask covers only"))


def test_follower_input_errors() -> None:
    with pytest.raises(InputError, match="Nx3"):
        ObjectFollower(np.zeros((5, 2)))
    with pytest.raises(InputError, match="without points"):
        ObjectFollower(np.zeros((0, 3)))
    with pytest.raises(InputError, match="non-finite"):
        ObjectFollower(np.full((4, 3), np.nan))
    with pytest.raises(InputError):
        FollowParams(min_iou=1.5)
    follower = ObjectFollower(np.random.default_rng(0).normal(0.0, 0.05, (500, 3)))
    view = render_view(SCENE, CAMERA, _pose(0.0))
    with pytest.raises(InputError, match="depth_m must be 480x640"):
        follower.follow(view.depth_m[:10], CAMERA, _pose(0.0), _oracle(view))


def test_max_points_caps_the_followed_points_deterministically() -> None:
    points = np.random.default_rng(1).normal(0.0, 0.05, (1000, 3))
    follower = ObjectFollower(points, FollowParams(max_points=300))
    assert follower.points_world_m.shape == (250, 3)
    np.testing.assert_array_equal(follower.points_world_m, points[::4])


def test_follower_with_the_real_sam_engine(follower: ObjectFollower, engine: SamEngine) -> None:
    """The decoder the lead wires in: a closure over MobileSAM's embedding of the new frame."""
    pose = _pose(0.06, target_x_m=0.02)
    view = render_view(SCENE, CAMERA, pose)
    embedding = engine.encode(view.rgb)

    def decode(points_xy: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        prediction = engine.decode(embedding, points=points_xy, labels=labels, box=box, multimask=False)
        mask: np.ndarray = prediction.masks[prediction.best]
        return mask

    result = follower.follow(view.depth_m, CAMERA, pose, decode)
    assert result.followed, result.stopped_reason
    assert result.mask is not None
    truth = view.mask(SPHERE)
    iou = np.count_nonzero(result.mask & truth) / np.count_nonzero(result.mask | truth)
    assert iou > 0.85
