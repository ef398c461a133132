"""Scene geometry: the room, the table and the objects, as Open3D meshes in world coordinates.

World frame: metres, +y up, floor at y = 0, the viewer at x = z = 0 facing -z, nominal eye at
(0, ``eye_height_m``, 0). Objects get ids 1..N (0 is the room, the table and the background). Each object's
mesh is built in its own local frame (bottom centre at the origin, +y up), then placed on its support (the
table top or the floor) with a yaw about +y; its texture is evaluated in that local frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import open3d as o3d

from xrseg.errors import InputError
from xrseg.geometry import invert_transform
from xrseg.tools.scenes.materials import Material, distinct_colors
from xrseg.tools.scenes.recipe import ObjectSpec, PlacementSpec, Recipe, RoomSpec, TableSpec
from xrseg.types import Transform, Vec3

logger = logging.getLogger(__name__)

TABLE_TOP_THICKNESS_M = 0.04
WALL_THICKNESS_M = 0.05


@dataclass(frozen=True)
class Surface:
    """Something the renderer draws: a world-coordinate mesh, its material and its instance id (0 = room)."""

    mesh: o3d.geometry.TriangleMesh
    material: Material
    instance_id: int = 0
    name: str = ""


@dataclass(frozen=True)
class SceneObject:
    """A ground-truth object: ``surface.mesh`` is in world coordinates; ``centre_m`` its bounding-box centre."""

    object_id: int
    name: str
    category: str
    surface: Surface
    world_from_object: Transform
    centre_m: Vec3
    size_m: float

    @property
    def mesh(self) -> o3d.geometry.TriangleMesh:
        return self.surface.mesh


@dataclass(frozen=True)
class SceneLayout:
    """Every surface of a scene plus the viewer's nominal eye position (3 float64, world metres)."""

    objects: tuple[SceneObject, ...]
    background: tuple[Surface, ...]
    eye_nominal_m: Vec3

    def surfaces(self) -> list[Surface]:
        return [*self.background, *(obj.surface for obj in self.objects)]

    def object_by_id(self, object_id: int) -> SceneObject:
        for obj in self.objects:
            if obj.object_id == object_id:
                return obj
        raise KeyError(object_id)


def _translation(x: float, y: float, z: float) -> Transform:
    matrix = np.eye(4)
    matrix[:3, 3] = (x, y, z)
    return matrix


def _rotation_y(angle_rad: float) -> Transform:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    matrix = np.eye(4)
    matrix[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
    return matrix


_Z_TO_Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation taking Open3D's +z primitive axis (cylinder, cone, torus) to +y (x stays, z -> y, y -> -z)."""


def _box(min_xyz: tuple[float, float, float], max_xyz: tuple[float, float, float]) -> o3d.geometry.TriangleMesh:
    size = np.subtract(max_xyz, min_xyz)
    mesh = o3d.geometry.TriangleMesh.create_box(float(size[0]), float(size[1]), float(size[2]))
    mesh.translate(np.asarray(min_xyz, dtype=np.float64))
    return mesh


def shape_mesh(shape: str, size_m: float, rng: np.random.Generator) -> o3d.geometry.TriangleMesh:
    """A closed mesh of ``shape`` whose largest extent is ``size_m``, bottom centre at the origin, +y up.

    Proportions are drawn from ``rng`` (boxes get random aspect ratios, cylinders are tall or squat...).
    """
    s = float(size_m)
    if shape == "box":
        dims = [s, s * float(rng.uniform(0.45, 1.0)), s * float(rng.uniform(0.45, 1.0))]
        rng.shuffle(dims)
        mesh = o3d.geometry.TriangleMesh.create_box(dims[0], dims[1], dims[2])
    elif shape == "sphere":
        mesh = o3d.geometry.TriangleMesh.create_sphere(radius=s / 2, resolution=24)
    elif shape == "cylinder":
        if rng.uniform() < 0.5:
            radius, height = s * float(rng.uniform(0.2, 0.4)), s
        else:
            radius, height = s / 2, s * float(rng.uniform(0.3, 0.8))
        mesh = o3d.geometry.TriangleMesh.create_cylinder(radius=radius, height=height, resolution=48, split=1)
        mesh.rotate(_Z_TO_Y, center=np.zeros(3))
    elif shape == "cone":
        mesh = o3d.geometry.TriangleMesh.create_cone(
            radius=s * float(rng.uniform(0.25, 0.45)), height=s, resolution=48
        )
        mesh.rotate(_Z_TO_Y, center=np.zeros(3))
    elif shape == "torus":
        tube = s / 2 * float(rng.uniform(0.22, 0.35))
        mesh = o3d.geometry.TriangleMesh.create_torus(
            torus_radius=s / 2 - tube, tube_radius=tube, radial_resolution=40, tubular_resolution=16
        )
        if rng.uniform() < 0.5:  # lying flat, else standing on its rim facing the viewer
            mesh.rotate(_Z_TO_Y, center=np.zeros(3))
    elif shape == "capsule":
        radius = s * float(rng.uniform(0.15, 0.28))
        length = s - 2 * radius
        mesh = o3d.geometry.TriangleMesh.create_cylinder(radius=radius, height=length, resolution=32, split=1)
        for end in (-length / 2, length / 2):
            cap = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=16)
            cap.translate((0.0, 0.0, end))
            mesh += cap
        mesh.rotate(_Z_TO_Y, center=np.zeros(3))
    else:
        raise InputError(f"unknown shape {shape!r}")
    box = mesh.get_axis_aligned_bounding_box()
    low, high = box.get_min_bound(), box.get_max_bound()
    mesh.translate((-(low[0] + high[0]) / 2, -low[1], -(low[2] + high[2]) / 2))
    mesh.compute_triangle_normals()
    return mesh


def _room_surfaces(room: RoomSpec) -> list[Surface]:
    x0, x1 = -room.width_m / 2, room.width_m / 2
    z0, z1 = -(room.depth_m - room.behind_m), room.behind_m
    h, w = room.height_m, WALL_THICKNESS_M
    floor = Material((0.46, 0.46, 0.48), "checker", scale_m=0.5, contrast=0.25)
    wall = Material((0.86, 0.85, 0.8), "noise", scale_m=0.3, contrast=0.12, seed=11)
    side = Material((0.8, 0.83, 0.86), "noise", scale_m=0.3, contrast=0.12, seed=12)
    ceiling = Material((0.93, 0.93, 0.92), "solid")
    return [
        Surface(_box((x0 - w, -w, z0 - w), (x1 + w, 0.0, z1 + w)), floor, name="floor"),
        Surface(_box((x0 - w, h, z0 - w), (x1 + w, h + w, z1 + w)), ceiling, name="ceiling"),
        Surface(_box((x0 - w, 0.0, z0 - w), (x1 + w, h, z0)), wall, name="front wall"),
        Surface(_box((x0 - w, 0.0, z1), (x1 + w, h, z1 + w)), wall, name="back wall"),
        Surface(_box((x0 - w, 0.0, z0), (x0, h, z1)), side, name="left wall"),
        Surface(_box((x1, 0.0, z0), (x1 + w, h, z1)), side, name="right wall"),
    ]


def _table_surfaces(table: TableSpec) -> list[Surface]:
    x0, x1 = -table.width_m / 2, table.width_m / 2
    z0, z1 = -(table.gap_m + table.depth_m), -table.gap_m
    h = table.height_m
    wood = Material((0.76, 0.7, 0.6), "stripes", scale_m=0.035, contrast=0.1, stripe_dir=(1.0, 0.0, 0.15))
    legs = Material((0.35, 0.33, 0.32), "solid")
    surfaces = [Surface(_box((x0, h - TABLE_TOP_THICKNESS_M, z0), (x1, h, z1)), wood, name="table top")]
    leg = 0.05
    for lx in (x0 + 0.03, x1 - 0.03 - leg):
        for lz in (z0 + 0.03, z1 - 0.03 - leg):
            mesh = _box((lx, 0.0, lz), (lx + leg, h - TABLE_TOP_THICKNESS_M, lz + leg))
            surfaces.append(Surface(mesh, legs, name="table leg"))
    return surfaces


@dataclass(frozen=True)
class _Support:
    name: str
    height_m: float


def _support_at(recipe: Recipe, x: float, z: float, radius: float, allowed: str) -> _Support | None:
    """The surface an object of footprint ``radius`` at (x, z) stands on, or None if it fits on none."""
    table, room = recipe.table, recipe.room
    if table is not None and allowed in ("table", "any"):
        tx0, tx1 = -table.width_m / 2, table.width_m / 2
        tz0, tz1 = -(table.gap_m + table.depth_m), -table.gap_m
        if tx0 + radius <= x <= tx1 - radius and tz0 + radius <= z <= tz1 - radius:
            return _Support("table", table.height_m)
    if room is not None and allowed in ("floor", "any"):
        if math.hypot(x, z) < 0.35 + radius:  # the viewer's own feet
            return None
        if table is not None:
            tx0, tx1 = -table.width_m / 2 - radius, table.width_m / 2 + radius
            tz0, tz1 = -(table.gap_m + table.depth_m) - radius, -table.gap_m + radius
            if tx0 <= x <= tx1 and tz0 <= z <= tz1:
                return None
        margin = radius + 0.05
        if not (-room.width_m / 2 + margin <= x <= room.width_m / 2 - margin):
            return None
        if not (-(room.depth_m - room.behind_m) + margin <= z <= room.behind_m - margin):
            return None
        return _Support("floor", 0.0)
    return None


def _footprint(mesh: o3d.geometry.TriangleMesh) -> tuple[float, float]:
    """(horizontal radius, height) of a local-frame mesh."""
    vertices = np.asarray(mesh.vertices)
    return float(np.max(np.hypot(vertices[:, 0], vertices[:, 2]))), float(vertices[:, 1].max())


def _place(
    recipe: Recipe,
    distance_m: float,
    azimuth_deg: float,
    radius: float,
    height: float,
    allowed: str,
    stand_m: float = 0.0,
) -> tuple[float, float, _Support] | None:
    """(x, z, support) putting the object's centre ``distance_m`` from the nominal eye, or None.

    An object on the floor stands on a stand ``stand_m`` high (the support's height is then ``stand_m``).
    """
    candidates: list[_Support] = []
    if recipe.table is not None and allowed in ("table", "any"):
        candidates.append(_Support("table", recipe.table.height_m))
    if recipe.room is not None and allowed in ("floor", "any"):
        candidates.append(_Support("floor", stand_m))
    azimuth = math.radians(azimuth_deg)
    for candidate in candidates:
        dy = recipe.trajectory.eye_height_m - (candidate.height_m + height / 2)
        if distance_m <= abs(dy) + 0.02:
            continue
        horizontal = math.sqrt(distance_m**2 - dy**2)
        x, z = horizontal * math.sin(azimuth), -horizontal * math.cos(azimuth)
        support = _support_at(recipe, x, z, radius + (0.03 if stand_m > 0 else 0.0), allowed)
        if support is not None and support.name == candidate.name:
            return x, z, candidate
    return None


@dataclass(frozen=True)
class _Draft:
    spec: ObjectSpec
    mesh: o3d.geometry.TriangleMesh  # local frame
    x: float
    z: float
    radius: float
    support: _Support


def _overlaps(drafts: list[_Draft], x: float, z: float, radius: float, gap: float) -> bool:
    return any(math.hypot(d.x - x, d.z - z) < d.radius + radius + gap for d in drafts)


def _random_drafts(recipe: Recipe, placement: PlacementSpec, rng: np.random.Generator) -> list[_Draft]:
    drafts: list[_Draft] = []
    # Every allowed shape once (in random order) before any repeats, so a scene has varied shapes.
    rounds = -(-placement.count // len(placement.shapes))
    shapes = [str(shape) for _ in range(rounds) for shape in rng.permutation(placement.shapes)]
    for index in range(placement.count):
        for _attempt in range(400):
            spec = ObjectSpec(
                shape=shapes[index],
                size_m=float(rng.uniform(*placement.size_m)),
                distance_m=float(rng.uniform(*placement.distance_m)),
                azimuth_deg=float(rng.uniform(*placement.azimuth_deg)),
                yaw_deg=float(rng.uniform(-180.0, 180.0)),
                texture=str(rng.choice(placement.textures)),
            )
            mesh = shape_mesh(spec.shape, spec.size_m, rng)
            radius, height = _footprint(mesh)
            stand = float(rng.uniform(*placement.floor_stand_m))
            spot = _place(recipe, spec.distance_m, spec.azimuth_deg, radius, height, placement.support, stand)
            if spot is None or _overlaps(drafts, spot[0], spot[1], radius, placement.min_gap_m):
                continue
            drafts.append(_Draft(spec, mesh, spot[0], spot[1], radius, spot[2]))
            break
        else:
            raise InputError(
                f"could not place object {index + 1} of {placement.count}: make placement.distance_m or "
                "placement.azimuth_deg wider, the table larger, or use fewer or smaller objects"
            )
    return drafts


def _explicit_drafts(recipe: Recipe, specs: tuple[ObjectSpec, ...], rng: np.random.Generator) -> list[_Draft]:
    drafts: list[_Draft] = []
    for index, spec in enumerate(specs):
        mesh = shape_mesh(spec.shape, spec.size_m, rng)
        radius, height = _footprint(mesh)
        spot = _place(recipe, spec.distance_m, spec.azimuth_deg, radius, height, "any")
        if spot is None:
            raise InputError(
                f"objects[{index}]: nothing to stand on at distance_m {spec.distance_m} azimuth_deg "
                f"{spec.azimuth_deg} (not on the table, not on the floor inside the room)"
            )
        if _overlaps(drafts, spot[0], spot[1], radius, 0.0):
            raise InputError(f"objects[{index}] overlaps an earlier object")
        drafts.append(_Draft(spec, mesh, spot[0], spot[1], radius, spot[2]))
    return drafts


def build_layout(recipe: Recipe, rng: np.random.Generator) -> SceneLayout:
    """Build the room, the table and the objects of ``recipe`` (random choices drawn from ``rng``)."""
    background: list[Surface] = []
    if recipe.room is not None:
        background += _room_surfaces(recipe.room)
    if recipe.table is not None:
        background += _table_surfaces(recipe.table)
    if recipe.objects is not None:
        drafts = _explicit_drafts(recipe, recipe.objects, rng)
    else:
        drafts = _random_drafts(recipe, recipe.placement, rng)
    palette = distinct_colors(len(drafts), rng)
    stand_material = Material((0.42, 0.44, 0.5), "solid")
    for draft in drafts:
        if draft.support.name == "floor" and draft.support.height_m > 0:
            half = draft.radius + 0.03
            low, high = (
                (draft.x - half, 0.0, draft.z - half),
                (draft.x + half, draft.support.height_m, draft.z + half),
            )
            background.append(Surface(_box(low, high), stand_material, name="stand"))
    objects = []
    for index, draft in enumerate(drafts):
        object_id = index + 1
        world_from_object = _translation(draft.x, draft.support.height_m, draft.z) @ _rotation_y(
            math.radians(draft.spec.yaw_deg)
        )
        color = draft.spec.color if draft.spec.color is not None else palette[index]
        material = Material(
            base_rgb=(float(color[0]), float(color[1]), float(color[2])),
            texture=draft.spec.texture,
            scale_m=max(draft.spec.size_m / 4.0, 0.01),
            contrast=0.45,
            local_from_world=invert_transform(world_from_object),
            stripe_dir=tuple(float(v) for v in rng.normal(size=3)),  # type: ignore[arg-type]
            seed=object_id,
        )
        mesh = o3d.geometry.TriangleMesh(draft.mesh)
        mesh.transform(world_from_object)
        mesh.compute_triangle_normals()
        name = draft.spec.name or f"{draft.spec.shape}-{object_id}"
        box = mesh.get_axis_aligned_bounding_box()
        centre: npt.NDArray[np.float64] = np.asarray(box.get_center(), dtype=np.float64)
        surface = Surface(mesh, material, object_id, name)
        objects.append(
            SceneObject(object_id, name, draft.spec.shape, surface, world_from_object, centre, draft.spec.size_m)
        )
        logger.debug(
            "object %d %s on the %s at %.2f m", object_id, name, draft.support.name, draft.spec.distance_m
        )
    eye = np.array([0.0, recipe.trajectory.eye_height_m, 0.0])
    return SceneLayout(tuple(objects), tuple(background), eye)
