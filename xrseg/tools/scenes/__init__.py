"""Synthetic ground-truth scenes: recipes, ray-cast rendering, head motion, scripted gaze and session output.

``xrseg scene generate RECIPE --out PATH`` is the command; :func:`generate_session` the library entry point.
"""

from xrseg.tools.scenes.generate import ScenePlan, generate_session, plan_scene, write_session
from xrseg.tools.scenes.recipe import Recipe, load_recipe, recipe_from_dict

__all__ = [
    "Recipe",
    "ScenePlan",
    "generate_session",
    "load_recipe",
    "plan_scene",
    "recipe_from_dict",
    "write_session",
]
