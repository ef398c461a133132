"""Small angular offsets of gaze directions: (right, up) radians in the tangent plane of a direction.

Eye-tracker error is stated as such an offset (a constant bias plus noise); the scene generator applies it and
:mod:`xrseg.select.recalibration` estimates and removes it. Directions are head-frame unit vectors, +y up.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["angular_offsets", "offset_directions", "tangent_basis"]


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return result


def tangent_basis(directions: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(right, up): Nx3 float64 unit vectors perpendicular to N head-frame unit directions.

    ``right = d x (0, 1, 0)`` and ``up = right x d``; for straight ahead (0, 0, -1) they are +x and +y.
    Undefined for directions along +-y (never reached by a gaze within 90 degrees of straight ahead).
    """
    d = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    right = _unit(np.cross(d, np.array([0.0, 1.0, 0.0])))
    up = np.cross(right, d)
    return right, up


def offset_directions(directions: npt.ArrayLike, offsets_rad: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rotate N unit directions by Nx2 angular offsets (right, up) in radians (the exponential map).

    The result is at exactly ``|offset|`` radians from the input, toward ``right * ox + up * oy``.
    """
    d = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    offsets = np.atleast_2d(np.asarray(offsets_rad, dtype=np.float64))
    right, up = tangent_basis(d)
    angle = np.linalg.norm(offsets, axis=1)
    tangent = right * offsets[:, :1] + up * offsets[:, 1:2]
    safe = np.where(angle > 0, angle, 1.0)
    result: npt.NDArray[np.float64] = np.cos(angle)[:, None] * d + (np.sin(angle) / safe)[:, None] * tangent
    return result


def angular_offsets(directions: npt.ArrayLike, others: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Nx2 float64 (right, up) radians taking each unit direction to the other (inverse of
    :func:`offset_directions`); NaN rows where either is not finite."""
    d = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    o = np.atleast_2d(np.asarray(others, dtype=np.float64))
    right, up = tangent_basis(d)
    x, y = np.sum(o * right, axis=1), np.sum(o * up, axis=1)
    along = np.sum(o * d, axis=1)
    sine = np.hypot(x, y)
    angle = np.arctan2(sine, along)
    scale = np.where(sine > 0, angle / np.where(sine > 0, sine, 1.0), 1.0)
    return np.column_stack([x * scale, y * scale])
