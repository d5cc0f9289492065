"""Recipes that replay: wb.recipe() as JSON, Workbench.replay on a fresh model, the text
form, and malformed recipes refused before anything is made."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _helpers import weights_bytes

import compresswidgets as cw
from compresswidgets import recipe as rc
from compresswidgets.techniques._common import kernel_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def made(demo):
    model, data = demo
    wb = cw.Workbench(model, data)
    pruned = wb.prune(0.8, epochs=1, seed=3)
    clustered = wb.cluster(8, preserve_sparsity=True, epochs=0, base=pruned)
    wb.quantize("int8", base=clustered, representative_samples=50)
    wb.quantize("float16", base=pruned)
    return wb


def test_a_seed_is_in_the_recipe_and_the_code(made):
    pruned = made["prune 80%"]
    assert pruned.recipe["seed"] == 3
    assert "keras.utils.set_random_seed(3)" in pruned.code


def test_the_recipe_is_plain_json_with_a_step_per_variant(made):
    recipe = made.recipe()
    assert json.loads(json.dumps(recipe)) == recipe
    assert recipe["format"] == rc.FORMAT and recipe["batch_size"] == made.batch_size
    steps = {s["name"]: s for s in recipe["variants"]}
    assert list(steps) == ["prune 80%", "prune 80% > cluster 8", "prune 80% > cluster 8 > int8",
                           "prune 80% > float16"]
    assert steps["prune 80%"] == {
        "name": "prune 80%", "parent": "original", "technique": "prune",
        "target_sparsity": 0.8, "schedule": "polynomial", "structure": None,
        "layers": ["conv2d_1", "conv2d_2", "dense"], "epochs": 1, "seed": 3}
    assert steps["prune 80% > cluster 8 > int8"]["mode"] == "int8"
    assert "epochs" not in steps["prune 80% > float16"]  # post-training: no fine-tuning
    only = made.recipe([made["prune 80% > float16"]])
    assert [s["name"] for s in only["variants"]] == ["prune 80%", "prune 80% > float16"]


def test_replay_rebuilds_the_same_variants(made, demo, tmp_path):
    model, data = demo
    before = weights_bytes(model)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(made.recipe()))
    again = cw.Workbench.replay(str(path), model, data)
    assert [v.name for v in again.variants] == [v.name for v in made.variants]
    for old, new in zip(made.variants[1:], again.variants[1:], strict=True):
        assert new.parent.name == old.parent.name
        assert new.technique == old.technique
        assert abs(new.accuracy - old.accuracy) <= 0.02, (new.name, new.accuracy, old.accuracy)
        assert abs(new.gzipped_bytes - old.gzipped_bytes) <= 0.02 * old.gzipped_bytes
        assert new.size_bytes == old.size_bytes
        if not new.is_quantized:
            for name in new.recipe["layers"]:
                a = kernel_of(new.keras_model.get_layer(name)).numpy()
                b = kernel_of(old.keras_model.get_layer(name)).numpy()
                assert np.mean(a == 0) == pytest.approx(np.mean(b == 0), abs=0.005), name
                assert np.unique(a).size == np.unique(b).size or new.technique == "prune"
    assert weights_bytes(model) == before


def test_the_text_form_is_a_chain(demo):
    model, data = demo
    wb = cw.Workbench.replay("prune 0.6 epochs=0, cluster 16 epochs=0 preserve_sparsity=true, "
                             "quantize dynamic", model, data)
    names = [v.name for v in wb.variants]
    assert names == ["original", "step 1: prune 0.6 epochs=0",
                     "step 2: cluster 16 epochs=0 preserve_sparsity=true",
                     "step 3: quantize dynamic"]
    last = wb.variants[-1]
    assert last.recipe["mode"] == "dynamic" and last.parent.technique == "cluster"
    assert last.parent.parent.recipe["target_sparsity"] == 0.6


@pytest.mark.parametrize(("recipe", "kind", "message"), [
    ("distill 0.5", ValueError, r"starts with 'distill'.*Expected one of prune, cluster"),
    ("prune 0.5 0.6", ValueError, r"two values without a name"),
    ("prune 0.5 speed=2", ValueError, r"has 'speed', which prune does not take"),
    ("prune 0.5,, quantize int8", ValueError, r"empty step \(number 2\)"),
    ({"format": "other", "variants": []}, ValueError, r"'format' is 'other'"),
    ({"format": rc.FORMAT}, ValueError, r"no field 'variants'"),
    ({"format": rc.FORMAT, "variants": [{"name": "a", "parent": "b", "technique": "prune",
                                         "target_sparsity": 0.5}]},
     ValueError, r"starts from 'b', which no earlier step makes"),
    ({"format": rc.FORMAT, "variants": [{"name": "a", "parent": "original",
                                         "technique": "quantize"}]},
     ValueError, r"has no 'mode'"),
    (42, TypeError, r"but got .*42"),
    ("missing.json", FileNotFoundError, r"No recipe file at 'missing.json'"),
])
def test_a_malformed_recipe_names_the_field(demo, recipe, kind, message):
    model, data = demo
    with pytest.raises(kind, match=message):
        cw.Workbench.replay(recipe, model, data)


def test_the_studio_offers_the_recipe_to_copy_and_save(made):
    import base64
    import re

    from _helpers import HOSTILE

    made.quantize("dynamic", base="prune 80%", name=HOSTILE)
    studio = cw.Studio(made)
    shown = studio._recipe.value
    href = re.search(r'href="data:application/json;base64,([^"]+)"', shown).group(1)
    assert json.loads(base64.b64decode(href)) == json.loads(json.dumps(made.recipe(),
                                                                      default=str))
    assert 'download="recipe.json"' in shown and "cw.Workbench.replay(" in shown
    assert HOSTILE not in shown and "&lt;img src=x" in shown  # escaped in the <pre>
