"""Scene recipes: the JSON description of a synthetic session, parsed into frozen dataclasses.

The schema is documented in ``scenes/README.md``. Every section is optional except ``name``; a missing key
takes the default below. Unknown keys, wrong types and out-of-range values raise :class:`InputError` naming
the offending key (``recipe tabletop.json: scanpath.fixation_ms: ...``).

World frame of every scene: metres, +y up, the floor at y = 0; the viewer stands (or sits) at x = z = 0 and
faces -z. Object placement uses ``distance_m`` (3D distance from the viewer's nominal eye to the object's
centre) and ``azimuth_deg`` (horizontal angle from -z, positive to the right).
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from xrseg.errors import InputError

SHAPES = ("box", "sphere", "cylinder", "cone", "torus", "capsule")
TEXTURES = ("solid", "checker", "stripes", "noise")
SUPPORTS = ("table", "floor", "any")
RGB_ENCODINGS = ("jpeg", "png")

T = TypeVar("T")


def _range(lo: float, hi: float) -> dict[str, Any]:
    return {"min": lo, "max": hi}


@dataclass(frozen=True)
class CameraSpec:
    """The headset camera: image size, horizontal field of view and OpenCV radial distortion (k1, k2)."""

    width_px: int = field(default=640, metadata=_range(16, 4096))
    height_px: int = field(default=480, metadata=_range(16, 4096))
    hfov_deg: float = field(default=70.0, metadata=_range(20.0, 120.0))
    k1: float = field(default=-0.04, metadata=_range(-0.3, 0.3))
    k2: float = field(default=0.01, metadata=_range(-0.3, 0.3))
    camera_above_eye_m: float = field(default=0.03, metadata=_range(-0.2, 0.2))
    camera_forward_of_eye_m: float = field(default=0.06, metadata=_range(-0.2, 0.2))


@dataclass(frozen=True)
class RatesSpec:
    """Stream rates in Hz: camera frames, head poses (60-90 Hz on headsets) and gaze samples."""

    frame_hz: float = field(default=10.0, metadata=_range(1.0, 120.0))
    head_hz: float = field(default=72.0, metadata=_range(10.0, 1000.0))
    gaze_hz: float = field(default=120.0, metadata=_range(30.0, 1000.0))


@dataclass(frozen=True)
class RoomSpec:
    """A box-shaped room around the viewer; ``behind_m`` is the gap from the viewer to the back wall."""

    width_m: float = field(default=4.0, metadata=_range(1.0, 30.0))
    depth_m: float = field(default=5.0, metadata=_range(1.0, 30.0))
    height_m: float = field(default=2.6, metadata=_range(1.8, 10.0))
    behind_m: float = field(default=1.0, metadata=_range(0.3, 10.0))


@dataclass(frozen=True)
class TableSpec:
    """A table in front of the viewer, centred on x = 0; ``gap_m`` is from the viewer to its near edge."""

    width_m: float = field(default=1.4, metadata=_range(0.3, 10.0))
    depth_m: float = field(default=0.9, metadata=_range(0.3, 10.0))
    height_m: float = field(default=0.74, metadata=_range(0.2, 1.5))
    gap_m: float = field(default=0.25, metadata=_range(0.0, 5.0))


@dataclass(frozen=True)
class ObjectSpec:
    """One explicitly placed object. ``color`` is RGB in 0..1 (None: picked from the palette)."""

    shape: str = field(default="box", metadata={"choices": SHAPES})
    size_m: float = field(default=0.2, metadata=_range(0.02, 2.0))
    distance_m: float = field(default=1.0, metadata=_range(0.2, 20.0))
    azimuth_deg: float = field(default=0.0, metadata=_range(-180.0, 180.0))
    yaw_deg: float = field(default=0.0, metadata=_range(-360.0, 360.0))
    texture: str = field(default="checker", metadata={"choices": TEXTURES})
    color: tuple[float, float, float] | None = field(default=None, metadata=_range(0.0, 1.0))
    name: str = ""


@dataclass(frozen=True)
class PlacementSpec:
    """Random placement of ``count`` objects (used when ``objects`` is absent).

    Objects on the floor stand on a box-shaped stand (part of the room, instance id 0) whose height is drawn
    from ``floor_stand_m`` ([0, 0]: right on the floor).
    """

    count: int = field(default=8, metadata=_range(1, 64))
    distance_m: tuple[float, float] = field(default=(0.5, 1.2), metadata=_range(0.2, 20.0))
    azimuth_deg: tuple[float, float] = field(default=(-35.0, 35.0), metadata=_range(-180.0, 180.0))
    size_m: tuple[float, float] = field(default=(0.1, 0.3), metadata=_range(0.02, 2.0))
    shapes: tuple[str, ...] = field(default=SHAPES, metadata={"choices": SHAPES})
    textures: tuple[str, ...] = field(
        default=("solid", "checker", "stripes", "noise"), metadata={"choices": TEXTURES}
    )
    support: str = field(default="table", metadata={"choices": SUPPORTS})
    min_gap_m: float = field(default=0.04, metadata=_range(0.0, 1.0))
    floor_stand_m: tuple[float, float] = field(default=(0.0, 0.0), metadata=_range(0.0, 2.0))


@dataclass(frozen=True)
class TrajectorySpec:
    """Head motion: nominal eye height, sway amplitude, how far the head turns toward targets and how fast."""

    eye_height_m: float = field(default=1.2, metadata=_range(0.3, 2.5))
    sway_m: float = field(default=0.02, metadata=_range(0.0, 0.3))
    head_gain: float = field(default=0.7, metadata=_range(0.0, 1.0))
    turn_time_s: float = field(default=0.45, metadata=_range(0.05, 5.0))
    oscillation_deg: float = field(default=0.6, metadata=_range(0.0, 10.0))


@dataclass(frozen=True)
class ScanpathSpec:
    """Scripted gaze: fixations on objects, saccades between them, drift, blinks and optional SELECT events."""

    fixation_ms: tuple[float, float] = field(default=(200.0, 800.0), metadata=_range(50.0, 10000.0))
    saccade_ms: tuple[float, float] = field(default=(30.0, 60.0), metadata=_range(5.0, 300.0))
    drift_deg: float = field(default=0.05, metadata=_range(0.0, 2.0))
    blinks_per_min: float = field(default=4.0, metadata=_range(0.0, 60.0))
    blink_ms: tuple[float, float] = field(default=(100.0, 150.0), metadata=_range(20.0, 1000.0))
    vergence_noise: float = field(default=0.05, metadata=_range(0.0, 1.0))
    select_events: bool = True
    select_before_end_ms: float = field(default=80.0, metadata=_range(0.0, 1000.0))
    max_view_angle_deg: float = field(default=45.0, metadata=_range(5.0, 90.0))


@dataclass(frozen=True)
class GazeErrorSpec:
    """Eye-tracker error: a constant bias of ``accuracy_deg`` and Gaussian noise of ``precision_deg`` RMS."""

    accuracy_deg: float = field(default=1.0, metadata=_range(0.0, 20.0))
    precision_deg: float = field(default=0.5, metadata=_range(0.0, 20.0))


@dataclass(frozen=True)
class OutputSpec:
    """How frames are stored: RGB as JPEG (``jpeg_quality``, progressive or not) or PNG; every PNG (depth,
    instance ids, PNG RGB) at zlib level ``png_compression``. All but ``jpeg_quality`` are lossless choices."""

    rgb_encoding: str = field(default="jpeg", metadata={"choices": RGB_ENCODINGS})
    jpeg_quality: int = field(default=90, metadata=_range(1, 100))
    jpeg_progressive: bool = True
    png_compression: int = field(default=9, metadata=_range(0, 9))


@dataclass(frozen=True)
class Recipe:
    """A whole scene recipe. ``objects`` (explicit) wins over ``placement`` (random) when both are given."""

    name: str
    description: str = ""
    seed: int = field(default=0, metadata=_range(0, 2**63 - 1))
    duration_s: float = field(default=7.0, metadata=_range(0.5, 600.0))
    camera: CameraSpec = CameraSpec()
    rates: RatesSpec = RatesSpec()
    room: RoomSpec | None = RoomSpec()
    table: TableSpec | None = TableSpec()
    objects: tuple[ObjectSpec, ...] | None = None
    placement: PlacementSpec = PlacementSpec()
    trajectory: TrajectorySpec = TrajectorySpec()
    scanpath: ScanpathSpec = ScanpathSpec()
    gaze_error: GazeErrorSpec = GazeErrorSpec()
    output: OutputSpec = OutputSpec()

    def with_overrides(
        self, *, seed: int | None = None, accuracy_deg: float | None = None, precision_deg: float | None = None
    ) -> Recipe:
        """A copy with the command-line overrides applied (each validated like the recipe's own value)."""
        recipe = self
        if seed is not None:
            recipe = replace(recipe, seed=_coerce(seed, int, "seed", _field_meta(Recipe, "seed")))
        error = recipe.gaze_error
        if accuracy_deg is not None:
            meta = _field_meta(GazeErrorSpec, "accuracy_deg")
            error = replace(error, accuracy_deg=_coerce(accuracy_deg, float, "accuracy_deg", meta))
        if precision_deg is not None:
            meta = _field_meta(GazeErrorSpec, "precision_deg")
            error = replace(error, precision_deg=_coerce(precision_deg, float, "precision_deg", meta))
        return replace(recipe, gaze_error=error)


def _field_meta(cls: type, name: str) -> typing.Mapping[str, Any]:
    return next(f.metadata for f in fields(cls) if f.name == name)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str, meta: typing.Mapping[str, Any]) -> Any:
    """Check ``value`` (decoded JSON) against the annotation ``tp`` and the field's range/choices metadata."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0], where, meta)
    if is_dataclass(tp) and isinstance(tp, type):
        return parse_section(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list, got {json.dumps(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            if not value:
                raise InputError(f"{where} must not be empty")
            return tuple(_coerce(v, args[0], f"{where}[{i}]", meta) for i, v in enumerate(value))
        if len(value) != len(args):
            raise InputError(f"{where} must be a list of {len(args)} values, got {len(value)}")
        items = tuple(
            _coerce(v, a, f"{where}[{i}]", meta) for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
        if len(items) == 2 and all(isinstance(v, int | float) for v in items) and items[0] > items[1]:
            raise InputError(f"{where} must be [low, high] with low <= high, got {list(items)}")
        return items
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {json.dumps(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{where} must be a string, got {json.dumps(value)}")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise InputError(f"{where} must be one of {', '.join(choices)}; got {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where} must be a number, got {json.dumps(value)}")
        if tp is int and (not isinstance(value, int) and not float(value).is_integer()):
            raise InputError(f"{where} must be an integer, got {value}")
        number = int(value) if tp is int else float(value)
        if not math.isfinite(number):
            raise InputError(f"{where} must be finite, got {value}")
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and hi is not None and not lo <= number <= hi:
            raise InputError(f"{where} must be in [{lo}, {hi}], got {value}")
        return number
    raise TypeError(f"unsupported recipe field type {_type_name(tp)} at {where}")  # programming error


def parse_section(cls: type[T], data: Any, where: str) -> T:
    """Build the dataclass ``cls`` from a decoded JSON object, with defaults for missing keys."""
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a JSON object, got {json.dumps(data)[:60]}")
    hints = get_type_hints(cls)
    record_fields = fields(typing.cast(Any, cls))
    known = [f.name for f in record_fields]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(known)})")
    kwargs: dict[str, Any] = {}
    for f in record_fields:
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{where}.{f.name}".lstrip("."), f.metadata)
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required key is missing
        missing = [
            f.name
            for f in record_fields
            if f.name not in kwargs and f.default is MISSING and f.default_factory is MISSING
        ]
        raise InputError(f"{where}: missing required key {missing[0] if missing else ''!r}") from err


def recipe_from_dict(data: Any, source: str = "recipe") -> Recipe:
    """Parse and validate a decoded recipe. ``source`` prefixes every error message."""
    try:
        if not isinstance(data, dict):
            raise InputError("the recipe must be a JSON object")
        if "name" not in data:
            raise InputError("missing required key 'name'")
        recipe = parse_section(Recipe, data, "")
        _check_consistency(recipe)
    except InputError as err:
        raise InputError(f"{source}: {err}") from err
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe JSON file; raises InputError for a missing file, bad JSON or a bad value."""
    recipe_path = Path(path)
    try:
        text = recipe_path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputError(f"recipe {recipe_path} does not exist") from err
    except OSError as err:
        raise InputError(f"cannot read recipe {recipe_path}: {err.strerror}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"recipe {recipe_path.name}: invalid JSON at line {err.lineno}: {err.msg}") from err
    return recipe_from_dict(data, f"recipe {recipe_path.name}")


def _check_consistency(recipe: Recipe) -> None:
    if not recipe.name or any(c in recipe.name for c in "/\\\0"):
        raise InputError(f"name must be a non-empty string without slashes, got {recipe.name!r}")
    if recipe.room is None and recipe.table is None:
        raise InputError("a scene needs a room or a table (both are null)")
    support = recipe.placement.support
    if recipe.objects is None and support == "table" and recipe.table is None:
        raise InputError("placement.support is 'table' but table is null")
    if recipe.objects is None and support == "floor" and recipe.room is None:
        raise InputError("placement.support is 'floor' but room is null (no floor)")
    eye = recipe.trajectory.eye_height_m
    if recipe.room is not None and eye >= recipe.room.height_m - 0.1:
        raise InputError(f"trajectory.eye_height_m {eye} is above the room's ceiling")
    if recipe.table is not None and eye <= recipe.table.height_m + 0.1:
        raise InputError(f"trajectory.eye_height_m {eye} must be at least 0.1 m above the table")
    if recipe.room is not None and recipe.table is not None:
        room, table = recipe.room, recipe.table
        if (
            table.width_m / 2 > room.width_m / 2 - 0.05
            or table.gap_m + table.depth_m > room.depth_m - room.behind_m
        ):
            raise InputError("the table does not fit into the room")
    fix_lo = recipe.scanpath.fixation_ms[0]
    if recipe.duration_s * 1000.0 < fix_lo:
        raise InputError(f"duration_s {recipe.duration_s} is shorter than one fixation ({fix_lo} ms)")


BUNDLED_RECIPES = Path(__file__).resolve().parents[3] / "scenes"
"""Where the bundled recipes live in a source checkout."""


def resolve_recipe(name: str) -> Path:
    """A recipe path: ``name`` itself when it exists, else the bundled ``scenes/<name>.json``."""
    path = Path(name)
    if path.exists():
        return path
    bundled = BUNDLED_RECIPES / f"{name.removesuffix('.json')}.json"
    if path.parent == Path(".") and bundled.is_file():
        return bundled
    known = ", ".join(sorted(p.stem for p in BUNDLED_RECIPES.glob("*.json"))) or "none"
    raise InputError(f"recipe {name} does not exist (bundled recipes: {known})")
