"""Following an object the image border cut on its selection's frame: the follower grows it past the cut once a
later frame shows the rest, and refuses growth onto what the selection's frame saw (ray-cast frames; a decoder
that keeps to its box like SAM does, and real MobileSAM)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from xrseg.lift import BorderCut, ObjectFollower, lift_mask
from xrseg.lift.follow import Decoder, FollowResult
from xrseg.masks import mask_iou
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
SPHERE, NEIGHBOUR, FLOOR = 0, 1, 2
SCENE = [
    SceneObject(make_sphere(0.08, (0.0, 0.0, 0.0)), (210, 110, 40)),
    SceneObject(make_box((0.12, 0.12, 0.12), (0.22, -0.02, -0.05)), (50, 150, 210)),
    SceneObject(make_box((1.5, 0.02, 1.5), (0.0, -0.09, 0.0)), (120, 120, 110)),
]
CUT_POSE = look_at((0.4, 0.25, 0.6), (0.4, 0.0, 0.0))  # the sphere cut by the left edge, the neighbour in view
WHOLE_POSE = look_at((0.05, 0.25, 0.6), (0.05, 0.0, 0.0))  # both whole in view
Selected = tuple[npt.NDArray[np.float64], BorderCut]
"""The sphere's points lifted from CUT_POSE and its cut."""


def _boxed_oracle(view: RenderedView, without_box_adds: int | None = None) -> Decoder:
    """The ground-truth mask of the object under the first point, cut to the prompt box when there is one (SAM
    keeps to its box); without a box, united with ``without_box_adds``'s mask when given (a decoder that
    spills onto another object)."""

    def decode(
        points_xy: npt.NDArray[np.float32], labels: npt.NDArray[np.int32], box: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.bool_]:
        instance = int(view.instance_ids[round(float(points_xy[0, 1])), round(float(points_xy[0, 0]))])
        mask = view.mask(instance).copy()
        if box is not None:
            x0, y0, x1, y1 = (round(float(v)) for v in box)
            inside = np.zeros_like(mask)
            inside[y0 : y1 + 1, x0 : x1 + 1] = True
            mask &= inside
        elif without_box_adds is not None:
            mask |= view.mask(without_box_adds)
        return mask

    return decode


@pytest.fixture(scope="module")
def cut_selection() -> Selected:
    view = render_view(SCENE, CAMERA, CUT_POSE)
    mask = view.mask(SPHERE)
    lifted = lift_mask(mask, view.depth_m, view.rgb, CAMERA, CUT_POSE)
    cut = BorderCut.of(mask, lifted.pixels_xy, lifted.points_world_m, CUT_POSE)
    assert cut is not None
    return lifted.points_world_m, cut


def _follow(points: npt.NDArray[np.float64], cut: BorderCut | None, decode_adds: int | None) -> FollowResult:
    view = render_view(SCENE, CAMERA, WHOLE_POSE)
    decode = _boxed_oracle(view, decode_adds)
    return ObjectFollower(points, cut=cut).follow(view.depth_m, CAMERA, WHOLE_POSE, decode)


def test_the_cut_is_where_the_mask_meets_the_border(cut_selection: Selected) -> None:
    points, cut = cut_selection
    assert cut.sides == ("left",)
    assert 10 < cut.rim_world_m.shape[0] < points.shape[0] // 10
    view = render_view(SCENE, CAMERA, WHOLE_POSE)
    whole = view.mask(SPHERE)
    lifted = lift_mask(whole, view.depth_m, view.rgb, CAMERA, WHOLE_POSE)
    assert BorderCut.of(whole, lifted.pixels_xy, lifted.points_world_m, WHOLE_POSE) is None
    # The part of the whole sphere the cut frame could not see: beyond its left edge, not the rest.
    beyond = cut.beyond(CAMERA, lifted.points_world_m)
    x_m = lifted.points_world_m[:, 0]
    rim_x_m = cut.rim_world_m[:, 0]
    assert np.all(beyond[x_m < rim_x_m.min() - 0.005]) and not np.any(beyond[x_m > rim_x_m.max() + 0.005])
    assert beyond.any() and not beyond.all()


def test_a_cut_object_grows_past_the_cut(cut_selection: Selected) -> None:
    points, cut = cut_selection
    truth = render_view(SCENE, CAMERA, WHOLE_POSE).mask(SPHERE)
    kept_to_the_box = _follow(points, None, None)
    assert kept_to_the_box.mask is not None and not kept_to_the_box.grown
    assert mask_iou(kept_to_the_box.mask, truth) < 0.8  # without the cut the track keeps the part first seen
    grown = _follow(points, cut, None)
    assert grown.followed and grown.grown and grown.box_xyxy is None
    assert grown.mask is not None and mask_iou(grown.mask, truth) == 1.0


@pytest.mark.parametrize("spill", [NEIGHBOUR, FLOOR])
def test_growth_onto_another_object_is_refused(cut_selection: Selected, spill: int) -> None:
    """The neighbour was in the cut frame's view (not past the cut); the floor is far more than the object."""
    points, cut = cut_selection
    result = _follow(points, cut, spill)
    assert result.followed and not result.grown and result.box_xyxy is not None
    assert result.mask is not None
    np.testing.assert_array_equal(result.mask, _follow(points, None, None).mask)


def test_a_cut_object_grows_with_the_real_sam_engine(cut_selection: Selected, engine: SamEngine) -> None:
    points, cut = cut_selection
    view = render_view(SCENE, CAMERA, WHOLE_POSE)
    embedding = engine.encode(view.rgb)

    def decode(points_xy: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        prediction = engine.decode(embedding, points=points_xy, labels=labels, box=box, multimask=False)
        mask: np.ndarray = prediction.masks[0]
        return mask

    results = [ObjectFollower(points, cut=c).follow(view.depth_m, CAMERA, WHOLE_POSE, decode) for c in (None, cut)]
    truth = view.mask(SPHERE)
    assert results[1].grown and results[1].mask is not None
    assert mask_iou(results[1].mask, truth) > 0.9
    assert results[0].mask is None or mask_iou(results[1].mask, truth) > mask_iou(results[0].mask, truth) + 0.1
