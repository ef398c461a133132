"""Procedural surface colour: a base colour modulated by a texture evaluated in the surface's own frame.

Textures are functions of the 3D point in the object's local frame (so they move with the object and do not
swim when the camera moves): ``solid``, ``checker`` (3D cells), ``stripes`` (bands along a direction) and
``noise`` (two octaves of hashed value noise). ``contrast`` in 0..1 says how dark the dark parts get.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.types import Transform, as_transform

TEXTURE_KINDS = ("solid", "checker", "stripes", "noise")

_CELL_OFFSET = np.array([0.2718, 0.3141, 0.1414])
"""Shifts checker and stripe cell borders off the planes that primitives are built on (a face lying exactly on
a border would flicker between two cells from float rounding)."""


@dataclass(frozen=True)
class Material:
    """How a surface looks.

    ``base_rgb`` is linear-ish RGB in 0..1; ``local_from_world`` (4x4 float64) maps world points into the frame
    the texture is evaluated in; ``scale_m`` is the texture's cell size / stripe width / noise feature size;
    ``stripe_dir`` is a unit 3-vector in the local frame; ``seed`` varies the noise pattern.
    """

    base_rgb: tuple[float, float, float]
    texture: str = "solid"
    scale_m: float = 0.05
    contrast: float = 0.45
    local_from_world: Transform = field(default_factory=lambda: np.eye(4))
    stripe_dir: tuple[float, float, float] = (0.0, 1.0, 0.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.texture not in TEXTURE_KINDS:
            raise InputError(f"texture must be one of {', '.join(TEXTURE_KINDS)}, got {self.texture!r}")
        if not self.scale_m > 0:
            raise InputError(f"texture scale_m must be positive, got {self.scale_m}")
        if len(self.base_rgb) != 3 or not all(0.0 <= c <= 1.0 for c in self.base_rgb):
            raise InputError(f"base_rgb must be 3 values in 0..1, got {self.base_rgb}")
        object.__setattr__(self, "local_from_world", as_transform(self.local_from_world, "local_from_world"))
        direction = np.asarray(self.stripe_dir, dtype=np.float64)
        norm = float(np.linalg.norm(direction))
        if direction.shape != (3,) or not norm > 0:
            raise InputError(f"stripe_dir must be a non-zero 3-vector, got {self.stripe_dir}")
        object.__setattr__(self, "stripe_dir", tuple(float(v) for v in direction / norm))

    def albedo(self, points_world_m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Nx3 float64 RGB in 0..1 for Nx3 float64 world points (before lighting)."""
        matrix = self.local_from_world
        local = points_world_m @ matrix[:3, :3].T + matrix[:3, 3]
        factor = texture_factor(self.texture, local / self.scale_m, self.contrast, self.stripe_dir, self.seed)
        base = np.asarray(self.base_rgb, dtype=np.float64)
        result: npt.NDArray[np.float64] = factor[:, None] * base[None, :]
        return result


def texture_factor(
    texture: str,
    cells: npt.NDArray[np.float64],
    contrast: float,
    stripe_dir: tuple[float, float, float] = (0.0, 1.0, 0.0),
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """N float64 brightness factors in [1 - contrast, 1] for Nx3 points in texture cells (local / scale)."""
    if texture == "solid":
        return np.ones(cells.shape[0], dtype=np.float64)
    if texture == "checker":
        parity = np.floor(cells + _CELL_OFFSET).astype(np.int64).sum(axis=1) % 2
        return np.where(parity == 0, 1.0, 1.0 - contrast)
    if texture == "stripes":
        along = (cells + _CELL_OFFSET) @ np.asarray(stripe_dir, dtype=np.float64)
        return np.where(np.floor(along).astype(np.int64) % 2 == 0, 1.0, 1.0 - contrast)
    if texture == "noise":
        value = 0.65 * value_noise(cells, seed) + 0.35 * value_noise(cells * 2.7 + 17.0, seed + 1)
        result: npt.NDArray[np.float64] = 1.0 - contrast * value
        return result
    raise InputError(f"unknown texture {texture!r}")


def _hash01(
    ix: npt.NDArray[np.int64], iy: npt.NDArray[np.int64], iz: npt.NDArray[np.int64], seed: int
) -> npt.NDArray:
    """Deterministic pseudo-random float64 in [0, 1) per integer lattice point (a 32-bit integer hash)."""
    mask = np.uint64(0xFFFFFFFF)
    h = (
        ix.astype(np.uint64) * np.uint64(73856093)
        ^ iy.astype(np.uint64) * np.uint64(19349663)
        ^ iz.astype(np.uint64) * np.uint64(83492791)
        ^ np.uint64((seed * 2654435761) & 0xFFFFFFFF)
    ) & mask
    h = ((h ^ (h >> np.uint64(16))) * np.uint64(0x45D9F3B)) & mask
    h = ((h ^ (h >> np.uint64(16))) * np.uint64(0x45D9F3B)) & mask
    h = h ^ (h >> np.uint64(16))
    return h.astype(np.float64) / float(2**32)


def value_noise(points: npt.NDArray[np.float64], seed: int = 0) -> npt.NDArray[np.float64]:
    """Smooth 3D value noise in [0, 1): N float64 for Nx3 float64 points (lattice spacing 1)."""
    base = np.floor(points)
    frac = points - base
    smooth = frac * frac * (3.0 - 2.0 * frac)
    i = base.astype(np.int64)
    result = np.zeros(points.shape[0], dtype=np.float64)
    for dx in (0, 1):
        wx = smooth[:, 0] if dx else 1.0 - smooth[:, 0]
        for dy in (0, 1):
            wy = smooth[:, 1] if dy else 1.0 - smooth[:, 1]
            for dz in (0, 1):
                wz = smooth[:, 2] if dz else 1.0 - smooth[:, 2]
                result += wx * wy * wz * _hash01(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, seed)
    return result


def distinct_colors(count: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """``count`` saturated RGB colours (0..1) with hues spread evenly round the wheel, in random order.

    Saturation is at least 0.6 so objects never blend into the low-saturation table, floor and walls.
    """
    offset = float(rng.uniform(0.0, 1.0))
    hues = [(offset + i / count) % 1.0 for i in range(count)]
    order = rng.permutation(count)
    colors = []
    for k in order:
        saturation = float(rng.uniform(0.6, 0.9))
        value = float(rng.uniform(0.7, 0.95))
        colors.append(colorsys.hsv_to_rgb(hues[int(k)], saturation, value))
    return [(float(r), float(g), float(b)) for r, g, b in colors]
