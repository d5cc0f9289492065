"""Keras 3 models, all the way: the Workbench bridges them once, every technique and chain
works on the twin, the result goes back to Keras 3 (and a .keras file), the code runs, the
panels and the Studio work, and what cannot be bridged is said where the user looks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from _helpers import table_rows, weights_bytes

import compresswidgets as cw
from compresswidgets import _keras
from compresswidgets.techniques._common import kernel_of

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

L = keras.layers


def _demo_cnn(names=("conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1")):
    """The demo architecture in Keras 3 (the demo's trained weights go in)."""
    return keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(64, 3, activation="relu", name=names[0]),
        L.Conv2D(32, 3, activation="relu", name=names[1]),
        L.Conv2D(32, 3, activation="relu", name=names[2]), L.Flatten(),
        L.Dense(32, activation="relu", name=names[3]),
        L.Dense(10, activation="softmax", name=names[4])])


@pytest.fixture(scope="module")
def k3(demo):
    model = _demo_cnn()
    model.set_weights(demo[0].get_weights())
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    before = weights_bytes(model)
    return model, cw.Workbench(model, demo[1]), before


def test_the_workbench_bridges_once_and_converts_the_keras3_model_itself(k3):
    _, wb, _ = k3
    assert wb.bridge is not None and wb.bridge.max_error <= 1e-5
    assert _keras.keras_flavour(wb.original.keras_model) == "tf_keras"
    assert wb.original.export_model is not wb.original.keras_model  # Keras 3's own export
    assert _keras.keras_flavour(wb.original.export_model) == "keras3"
    assert wb.original.recipe["bridged_from"] == "keras3"
    assert wb.original.keras_accuracy > 0.9
    assert wb.original.tflite_accuracy == pytest.approx(wb.original.keras_accuracy, abs=0.005)
    d = wb.quantize("dynamic")
    assert "bridged_from" not in d.recipe  # converted from the Keras 3 model, not the twin
    assert d.accuracy >= wb.original.keras_accuracy - 0.01


def test_prune_cluster_and_pcqat_chain_on_a_keras3_model(k3):
    _, wb, _ = k3
    p = wb.prune(0.8, epochs=1)
    assert p.recipe["bridged_from"] == "keras3"
    for name in p.recipe["layers"]:
        kernel = kernel_of(p.keras_model.get_layer(name)).numpy()
        assert abs(float(np.mean(kernel == 0)) - 0.8) <= 0.02, name
    c = wb.cluster(8, epochs=1, base=p, preserve_sparsity=True)
    for name in c.recipe["layers"]:
        assert len(np.unique(kernel_of(c.keras_model.get_layer(name)).numpy())) <= 8, name
    q = wb.quantize("qat", epochs=1, base=c)  # PCQAT
    assert q.is_quantized and q.recipe["bridged_from"] == "keras3"
    assert q.accuracy > 0.8 and q.size_bytes < 0.4 * wb.original.size_bytes
    assert p.gzipped_bytes < wb.original.gzipped_bytes
    report = wb.benchmark([wb.original, q], runs=5, warmup=1)
    assert [r.variant for r in report.rows] == ["original", q.name]
    assert all(r.median_ms > 0 and r.size_bytes for r in report.rows)


def test_a_variant_goes_back_to_keras3_and_into_a_keras_file(k3, tmp_path):
    model, wb, _ = k3
    p = wb.prune(0.5, epochs=0, name="pruned for keras3")
    back = p.to_keras3()
    assert _keras.keras_flavour(back) == "keras3"
    assert [layer.name for layer in back.layers] == [layer.name for layer in model.layers]
    for name in p.recipe["layers"]:
        np.testing.assert_array_equal(back.get_layer(name).kernel.numpy(),
                                      kernel_of(p.keras_model.get_layer(name)).numpy())
    p.save(tmp_path)
    loaded = keras.saving.load_model(tmp_path / "pruned_for_keras3.keras")
    x = wb.data.x_test[:64]
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(p.keras_model(x)), atol=1e-5)
    assert (tmp_path / "pruned_for_keras3.tflite").is_file()
    q = wb.quantize("float16", base=p)
    with pytest.raises(ValueError, match=r"quantized.*its float parent"):
        q.to_keras3()


def test_the_code_of_a_bridged_variant_runs_in_a_fresh_process(k3, tmp_path):
    model, wb, _ = k3
    p = wb.prune(0.6, epochs=1, name="pruned for the code")
    assert "cw.to_tf_keras(keras3_model, x_test)" in p.code
    model.save(tmp_path / "mine.keras")
    np.savez(tmp_path / "data.npz", **dict(zip(("x_train", "y_train", "x_test", "y_test"),
                                               wb.data, strict=True)))
    # the user's own lines (the code leaves them as comments), then the code as shown
    script = textwrap.dedent("""
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import keras as keras3
        import numpy as np
        model = keras3.saving.load_model("mine.keras")
        x_train, y_train, x_test, y_test = (np.load("data.npz")[k] for k in
                                            ("x_train", "y_train", "x_test", "y_test"))
    """) + p.code + textwrap.dedent(f"""
        import json
        print(json.dumps({{"classes": [type(layer).__name__ for layer in model.layers],
                          "sparsity": {{n: float(np.mean(model.get_layer(n).kernel.numpy() == 0))
                                       for n in {list(p.recipe["layers"])!r}}},
                          "tflite": len(tflite_model)}}))
    """)
    (tmp_path / "variant.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "variant.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    made = json.loads(out.stdout.strip().splitlines()[-1])
    assert made["classes"] == [type(layer).__name__ for layer in p.keras_model.layers]
    assert made["sparsity"] and all(abs(v - 0.6) <= 0.02 for v in made["sparsity"].values())
    assert abs(made["tflite"] - p.size_bytes) < 0.05 * p.size_bytes


def test_the_users_keras3_model_is_untouched(k3):
    model, wb, before = k3
    assert len(wb.variants) > 1  # after everything above
    assert weights_bytes(model) == before


def test_names_tensorflow_rejects_are_mapped_and_shown_as_written(demo):
    model = _demo_cnn(("conv a", "conv2d_1", "conv2d_2", "features(32)", "head <out>"))
    model.set_weights(demo[0].get_weights())
    before = weights_bytes(model)
    wb = cw.Workbench(model, demo[1])
    assert wb.original.size_bytes > 0  # the twin converts (Keras 3's export cannot)
    assert wb.original.tflite_accuracy > 0.9
    p = wb.prune(0.5, epochs=0, layers=["features(32)", "conv2d_1"])
    assert sorted(p.recipe["layers"]) == ["conv2d_1", "features_32"]
    assert wb.user_name("features_32") == "features(32)"
    panel = cw.PruningPanel(wb)
    labels = [b.description for b in panel._layers.children]
    assert any(label.startswith("head <out> ·") for label in labels), labels
    panel.base = p.name
    panel._show(p)
    assert "head <out>" in str(table_rows(panel._result.value))
    assert "<out>" not in panel._result.value  # escaped
    assert weights_bytes(model) == before


@keras.saving.register_keras_serializable("tests_k3")
class Gain(L.Layer):
    def build(self, shape):
        self.g = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.g


def test_an_unbridgeable_keras3_model_says_why_in_the_panels(demo):
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), Gain(name="gain"),
                              L.Dense(10, activation="softmax")])
    before = weights_bytes(model)
    studio = cw.Studio(model, demo[1])  # builds (it used to raise a TraitError)
    wb = studio.workbench
    assert wb.bridge is None and "'gain' (tests_k3>Gain: a custom layer)" in str(wb.bridge_error)
    for panel in (studio.prune, studio.cluster):
        assert "BridgeError" in panel._error.value and "gain" in panel._error.value
        panel.apply()
        panel.wait()
        assert "BridgeError" in panel._error.value and len(wb.variants) == 1
    studio.quantize.mode = "qat"
    assert "BridgeError" in studio.quantize._error.value
    studio.quantize.mode = "dynamic"
    assert studio.quantize._error.value == ""
    studio.quantize.apply()
    studio.quantize.wait()
    assert studio.quantize.made and len(wb.variants) == 2  # post-training quantization works
    assert weights_bytes(model) == before


def test_the_studio_applies_a_technique_on_a_keras3_model(demo):
    model = _demo_cnn()
    model.set_weights(demo[0].get_weights())
    studio = cw.Studio(model, demo[1])
    studio.prune.target_sparsity = 0.5
    studio.prune.epochs = 0
    studio.prune.apply()
    studio.prune.wait()
    assert studio.prune._error.value == "", studio.prune._error.value
    made = studio.workbench[studio.prune.made]
    assert made.recipe["bridged_from"] == "keras3" and made.sparsity > 0.3
    assert made.name in studio.cluster._base.options  # offered at once in the other tabs
