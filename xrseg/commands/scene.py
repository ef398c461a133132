"""``xrseg scene``: generate synthetic ground-truth sessions from scene recipes.

    xrseg scene generate RECIPE --out PATH [--seed N] [--accuracy-deg A] [--precision-deg P] [--overwrite]
    xrseg scene list

RECIPE is a recipe JSON file or the name of a bundled recipe in the repository's scenes/ folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xrseg.tools.scenes.recipe import BUNDLED_RECIPES, resolve_recipe


def _generate(args: argparse.Namespace) -> int:
    from xrseg.tools.scenes import generate_session, load_recipe

    recipe = load_recipe(resolve_recipe(args.recipe)).with_overrides(
        seed=args.seed, accuracy_deg=args.accuracy_deg, precision_deg=args.precision_deg
    )
    plan = generate_session(recipe, args.out, overwrite=args.overwrite, progress=None)
    error = recipe.gaze_error
    print(
        f"{args.out}: {len(plan.layout.objects)} objects, {len(plan.fixations)} fixations, "
        f"{plan.frame_timestamps_ns.size} frames, {plan.head_timestamps_ns.size} head poses, "
        f"{plan.gaze.timestamps_ns.size} gaze samples (seed {recipe.seed}, accuracy {error.accuracy_deg:g} deg, "
        f"precision {error.precision_deg:g} deg)"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from xrseg.tools.scenes import load_recipe

    for path in sorted(BUNDLED_RECIPES.glob("*.json")):
        recipe = load_recipe(path)
        print(f"{path.stem:<12} {recipe.name:<16} {recipe.description}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scene", help="generate synthetic ground-truth sessions from scene recipes")
    commands = parser.add_subparsers(dest="scene_command", metavar="SCENE_COMMAND", required=True)
    generate = commands.add_parser("generate", help="render a recipe into a recorded session")
    generate.add_argument("recipe", help="recipe JSON file, or the name of a bundled recipe (see `scene list`)")
    generate.add_argument("--out", required=True, type=Path, help="session directory to create")
    generate.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    generate.add_argument("--accuracy-deg", type=float, default=None, help="eye-tracker bias in degrees")
    generate.add_argument("--precision-deg", type=float, default=None, help="eye-tracker noise, degrees RMS")
    generate.add_argument("--overwrite", action="store_true", help="replace an existing session at --out")
    generate.set_defaults(func=_generate)
    listing = commands.add_parser("list", help="list the bundled recipes")
    listing.set_defaults(func=_list)
