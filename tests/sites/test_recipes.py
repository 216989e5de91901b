"""Site recipes: the shipped ones load; a broken one is refused with the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricefleet.errors import RecipeError
from pricefleet.sites import load_recipe, load_recipes, parse_recipe

RECIPES = Path(__file__).parents[2] / "recipes"
MINIMAL = """
id: shop
name: Shop
base_url: https://shop.example/
discovery:
  sitemap:
    product_url: "/p/"
"""


def test_shipped_recipes_load() -> None:
    """Every recipe in recipes/ is valid: the five demo shops and Mercadona."""
    recipes = load_recipes(RECIPES)
    assert set(recipes) == {
        "demo-jsonld",
        "demo-microdata",
        "demo-api",
        "demo-spa",
        "demo-plain",
        "mercadona",
    }
    assert recipes["demo-spa"].fetch.mode == "browser"
    assert recipes["mercadona"].fetch.allow_private_network is False
    assert all(r.fetch.allow_private_network for k, r in recipes.items() if k.startswith("demo"))


def test_variables_expand_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """`${VAR:-default}` takes the environment's value, else the default, else an error."""
    monkeypatch.setenv("PRICEFLEET_DEMO_URL", "http://127.0.0.1:9999")
    recipe = load_recipe(RECIPES / "demo-jsonld.yaml")
    assert recipe.base_url == "http://127.0.0.1:9999/jsonld/"
    monkeypatch.delenv("PRICEFLEET_DEMO_URL")
    assert load_recipe(RECIPES / "demo-jsonld.yaml").base_url == "http://127.0.0.1:8100/jsonld/"
    with pytest.raises(RecipeError, match=r"\$\{NOPE_NOT_SET\} is not set"):
        parse_recipe(MINIMAL.replace("https://shop.example/", "${NOPE_NOT_SET}"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: Shop", "name: Shop\nspeed: 9"), r"speed: Extra inputs are not permitted"),
        (('product_url: "/p/"', 'product_url: "(["'), r"discovery.sitemap.product_url: .*regular"),
        (("name: Shop", "name: Shop\nschedule: {every: soon}"), r"schedule.every: .*duration"),
        (
            ("name: Shop", "name: Shop\nextraction: {mode: css, fields: {name: h1}}"),
            r"needs fields \['price'\]",
        ),
        (
            ("name: Shop", "name: Shop\nextraction: {fields: {colour: h1}}"),
            r"unknown fields \['colour'\]",
        ),
        (
            ("name: Shop", "name: Shop\npoliteness: {requests_per_second: 0}"),
            r"politeness.requests_per_second",
        ),
        (
            ("name: Shop", "name: Shop\nfetch: {proxies: [nope]}"),
            r"fetch.proxies: .*http://host:port",
        ),
        (('  sitemap:\n    product_url: "/p/"\n', "  {}\n"), r"discovery: .*at least one"),
        (("id: shop", "id: Shop Name"), r"id: String should match pattern"),
    ],
)
def test_broken_recipes_name_file_and_field(change: tuple[str, str], message: str) -> None:
    """Each mistake is reported with the source name and the path of the bad field."""
    old, new = change
    assert old in MINIMAL
    with pytest.raises(RecipeError, match=rf"^broken\.yaml: .*{message}"):
        parse_recipe(MINIMAL.replace(old, new), "broken.yaml")


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    """A missing file, bad YAML or a YAML list are refused with the file named."""
    with pytest.raises(RecipeError, match=r"missing\.yaml: cannot read"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed")
    with pytest.raises(RecipeError, match=r"bad\.yaml: not valid YAML"):
        load_recipe(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml: a recipe is a mapping"):
        load_recipe(bad)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    """Two recipes with one id in a directory is an error naming the second file."""
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text(MINIMAL)
    with pytest.raises(RecipeError, match=r"b\.yaml: id 'shop' is already used"):
        load_recipes(tmp_path)
