"""Object identity: two views of one object share an id, neighbours that touch do not, and without depth the
mask's overlap decides."""

from __future__ import annotations

import numpy as np
import pytest

from xrseg.errors import InputError
from xrseg.lift.objects import IdentityParams, ObjectRegistry, point_overlap


def sphere_cap(
    centre_m: tuple[float, float, float], radius_m: float, towards: np.ndarray, n: int = 3000
) -> np.ndarray:
    """Points of the half of a sphere facing ``towards`` (what one camera sees of it), Nx3 float64 metres."""
    rng = np.random.default_rng(7)
    directions = rng.normal(size=(n * 3, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    seen = directions[directions @ towards > 0.0][:n]
    return np.asarray(centre_m) + radius_m * seen


EMPTY = np.zeros((4, 4), dtype=bool)


def test_two_views_of_one_object_are_one_object_and_a_touching_neighbour_is_not() -> None:
    left = np.array([-1.0, 0.0, -1.0]) / np.sqrt(2)
    right = np.array([1.0, 0.0, -1.0]) / np.sqrt(2)
    ball = (0.0, 0.0, 1.0)
    neighbour = (0.2, 0.0, 1.0)  # a second 10 cm ball touching the first
    registry = ObjectRegistry()
    first = registry.assign(1, sphere_cap(ball, 0.1, left), EMPTY)
    other = registry.assign(2, sphere_cap(neighbour, 0.1, left), EMPTY)
    again = registry.assign(3, sphere_cap(ball, 0.1, right), EMPTY)  # the same ball, seen from 90 deg away
    assert (first, other, again) == (1, 2, 1)
    assert registry.selections(1) == (1, 3) and registry.selections(2) == (2,)
    assert point_overlap(sphere_cap(ball, 0.1, left), sphere_cap(neighbour, 0.1, left), 0.01) < 0.1


def test_without_depth_the_mask_overlap_decides_and_a_rejection_leaves_the_object() -> None:
    a = np.zeros((40, 40), dtype=bool)
    a[5:20, 5:20] = True
    b = np.roll(a, 2, axis=1)  # nearly the same region
    c = np.roll(a, 18, axis=0)  # another region
    registry = ObjectRegistry()
    assert [registry.assign(i, None, m) for i, m in ((1, a), (2, b), (3, c))] == [1, 1, 2]
    assert registry.remove(1) == 1 and registry.selections(1) == (2,)
    assert registry.remove(3) == 2 and registry.selections(2) == ()
    assert registry.assign(4, None, c) == 3  # an id is never reused
    assert registry.object_of(2) == 1 and registry.object_of(3) is None


def test_identity_params_are_checked() -> None:
    with pytest.raises(InputError):
        IdentityParams(match_distance_m=0.0)
    with pytest.raises(InputError):
        IdentityParams(min_point_overlap=1.5)
