import pytest

from vadpipe.errors import RecipeMismatchError
from vadpipe.recipe import Recipe, load_recipe, save_recipe


def _recipe(**changes):
    base = Recipe(backbone="i3d-inception", weights_sha256="ab" * 32, feature_dim=1024,
                  value_range=(-1.0, 1.0), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return base.replace(**changes)


def test_roundtrip_and_stable_id(tmp_path):
    recipe = _recipe(crop="ten", extra=(("pool", "mean"),))
    save_recipe(tmp_path, recipe)
    loaded = load_recipe(tmp_path)
    assert loaded == recipe and loaded.recipe_id == recipe.recipe_id
    assert recipe.num_crops == 10 and _recipe().num_crops == 1


def test_informational_fields_do_not_change_identity():
    assert _recipe().recipe_id == _recipe(vadpipe_version="9.9", storage_dtype="float16").recipe_id
    _recipe().require_match(_recipe(storage_dtype="float16"), "features", "checkpoint")


def test_resize_rule_is_recorded_and_keeps_the_ids_recipes_had_before_it():
    """The short-side resize's interpolation is written into recipe.json and checkpoints; a recipe.json written
    before the field (no "resize", its stored id) still loads with that id: the bench caches and old features
    stay valid. The id below is today's Ped1 cache's (its recipe.json, stop 62), not recomputed here."""
    ped1 = _recipe(weights_sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
                   crop="none", crop_size=0, resize_short_side=316)
    assert ped1.to_dict()["resize"] == "bilinear-antialias" and ped1.recipe_id == "ec6b7c0106cb"
    before = ped1.to_dict()
    del before["resize"]
    assert Recipe.from_dict(before) == ped1


@pytest.mark.parametrize("field,value", [("weights_sha256", "cd" * 32), ("resize_short_side", 128),
                                         ("crop", "ten"), ("fps", "25"), ("snippet_len", 8),
                                         ("compute_dtype", "bfloat16"), ("mean", (0.5, 0.5, 0.5)),
                                         ("regions", "2x2"), ("layers", (("Mixed_4f", 832),)), ("light", "mean")])
def test_mismatch_is_refused_and_named(field, value):
    """Either way round: fields left out of the id when empty (regions, layers, light) differ as much."""
    other = _recipe(**{field: value})
    assert other.recipe_id != _recipe().recipe_id
    for expected, found in ((_recipe(), other), (other, _recipe())):
        with pytest.raises(RecipeMismatchError) as err:
            expected.require_match(found, "features in a/", "checkpoint b.pt")
        message = str(err.value)
        assert field in message and "features in a/" in message and "\n" not in message
