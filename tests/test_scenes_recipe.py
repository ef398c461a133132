"""Scene recipes: parsing, defaults, overrides and clear errors for bad recipes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from xrseg.cli import main
from xrseg.errors import InputError
from xrseg.tools.scenes.recipe import load_recipe, recipe_from_dict

SCENES = Path(__file__).resolve().parents[1] / "scenes"
BUNDLED = sorted(SCENES.glob("*.json"))


def test_bundled_recipes_load_with_the_documented_defaults() -> None:
    names = {path.stem for path in BUNDLED}
    assert {"tabletop", "room", "desk-near", "clutter", "far"} <= names
    for path in BUNDLED:
        recipe = load_recipe(path)
        assert recipe.output.rgb_encoding == "jpeg" and recipe.output.jpeg_quality >= 90
        assert recipe.output.png_compression == 9 and recipe.output.jpeg_progressive  # the (lossless) defaults
        if (path.parent / recipe.name).is_dir():  # a bundled session: small, a 1 deg tracker
            assert recipe.gaze_error.accuracy_deg == 1.0 and recipe.gaze_error.precision_deg == 0.5
            assert recipe.camera.width_px * recipe.camera.height_px <= 480 * 360  # keeps the bundle small
            assert recipe.rates.frame_hz >= 5 and recipe.camera.width_px * recipe.camera.height_px >= 480 * 360
        else:  # the harder recipes eval-suite generates: short fixations, a click 150 ms before each ends
            assert recipe.scanpath.fixation_ms == (200.0, 400.0) and recipe.scanpath.select_before_end_ms == 150
            assert recipe.camera.width_px >= 640 and recipe.rates.frame_hz >= 10


def test_minimal_recipe_takes_defaults_and_overrides_apply() -> None:
    recipe = recipe_from_dict({"name": "x"})
    assert recipe.seed == 0 and recipe.placement.count == 8 and recipe.table is not None
    assert recipe.scanpath.fixation_ms == (200.0, 800.0) and recipe.rates.gaze_hz == 120.0
    changed = recipe.with_overrides(seed=9, accuracy_deg=2.0, precision_deg=0.25)
    assert (changed.seed, changed.gaze_error.accuracy_deg, changed.gaze_error.precision_deg) == (9, 2.0, 0.25)
    assert recipe.seed == 0  # the original is untouched
    with pytest.raises(InputError, match="accuracy_deg must be in"):
        recipe.with_overrides(accuracy_deg=-1.0)


def test_explicit_objects_and_nulls_parse() -> None:
    recipe = recipe_from_dict(
        {
            "name": "explicit",
            "room": None,
            "objects": [{"shape": "sphere", "size_m": 0.2, "distance_m": 0.8, "color": [1, 0, 0]}],
        }
    )
    assert recipe.room is None and recipe.objects is not None
    assert recipe.objects[0].shape == "sphere" and recipe.objects[0].color == (1.0, 0.0, 0.0)


BASE: dict[str, Any] = {"name": "bad"}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"seed": 1}, "missing required key 'name'"),
        (_with("colour", "red"), "unknown key 'colour'"),
        (_with("camera.width_px", "640"), "camera.width_px must be a number"),
        (_with("camera.width_px", 10.5), "camera.width_px must be an integer"),
        (_with("camera.hfov_deg", 179), r"camera.hfov_deg must be in \[20.0, 120.0\]"),
        (_with("placement.count", 0), "placement.count must be in"),
        (_with("placement.distance_m", [1.2, 0.5]), "low <= high"),
        (_with("placement.distance_m", [0.5]), "list of 2 values"),
        (_with("placement.shapes", ["box", "pyramid"]), r"placement.shapes\[1\] must be one of"),
        (_with("placement.shapes", []), "must not be empty"),
        (_with("scanpath.select_events", "yes"), "must be true or false"),
        (_with("output.rgb_encoding", "webp"), "must be one of jpeg, png"),
        (_with("output.png_compression", 10), r"output.png_compression must be in \[0, 9\]"),
        (_with("output.jpeg_progressive", 1), "output.jpeg_progressive must be true or false"),
        (_with("gaze_error.precision_deg", float("nan")), "must be finite"),
        (_with("objects", [{"shape": "box", "sise_m": 0.2}]), r"objects\[0\]: unknown key 'sise_m'"),
        ({"name": "x", "room": None, "table": None}, "needs a room or a table"),
        ({"name": "x", "table": None}, "placement.support is 'table' but table is null"),
        ({"name": "x", "trajectory": {"eye_height_m": 0.8}}, "above the table"),
        ({"name": "x", "duration_s": 0.5, "scanpath": {"fixation_ms": [600, 800]}}, "shorter than one fixation"),
        ({"name": "a/b"}, "without slashes"),
    ],
)
def test_bad_recipes_give_clear_input_errors(data: Any, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        recipe_from_dict(data, "recipe test.json")
    assert str(info.value).startswith("recipe test.json: ")
    assert "\n" not in str(info.value)


def test_recipe_files_missing_or_not_json(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_recipe(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n "seed": }')
    with pytest.raises(InputError, match="invalid JSON at line 2"):
        load_recipe(broken)


def test_command_reports_bad_recipe_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "bad.json"
    recipe.write_text(json.dumps({"name": "x", "placement": {"count": 100}}))
    code = main(["scene", "generate", str(recipe), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "xrseg: error: recipe bad.json: placement.count must be in [1, 64], got 100"
    assert not (tmp_path / "out").exists()
    assert main(["scene", "generate", "no-such-recipe", "--out", str(tmp_path / "o2")]) == 2
    assert "bundled recipes:" in capsys.readouterr().err


def test_unplaceable_objects_are_an_input_error(tmp_path: Path) -> None:
    from xrseg.tools.scenes import plan_scene

    recipe = recipe_from_dict(
        {"name": "crowded", "placement": {"count": 30, "size_m": [0.35, 0.4], "distance_m": [0.5, 0.6]}}
    )
    with pytest.raises(InputError, match="could not place object"):
        plan_scene(recipe)
