"""Reading recipes from YAML: `${VAR:-default}` expansion, validation, errors that name the file.

Must not fetch anything or touch a database: a recipe is validated on its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pricefleet.errors import RecipeError
from pricefleet.sites.schema import Recipe

__all__ = ["load_recipe", "load_recipes", "parse_recipe"]

_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is None:
                raise RecipeError(f"{where}: ${{{name}}} is not set and has no default")
            return default

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [_expand(item, where) for item in value]
    if isinstance(value, dict):
        return {key: _expand(item, where) for key, item in value.items()}
    return value


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    """A recipe from YAML text; RecipeError naming `source` and each bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a mapping of fields, got {type(data).__name__}")
    try:
        return Recipe.model_validate(_expand(data, source))
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '(recipe)'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise RecipeError(f"{source}: " + "; ".join(problems)) from None


def load_recipe(path: Path) -> Recipe:
    """The recipe in a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_recipe(text, str(path))


def load_recipes(directory: Path) -> dict[str, Recipe]:
    """Every `*.yaml` recipe in a directory, by id; duplicate ids are an error."""
    recipes: dict[str, Recipe] = {}
    for path in sorted(directory.glob("*.y*ml")):
        recipe = load_recipe(path)
        if recipe.id in recipes:
            raise RecipeError(f"{path}: id {recipe.id!r} is already used by another recipe")
        recipes[recipe.id] = recipe
    return recipes
