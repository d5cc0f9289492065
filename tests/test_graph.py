"""Models as people write them today: weightless Keras 3 operations (``h + attention``,
``keras.ops.mean``, ``x[:, 0]``, ``1.0 - x``) and models used as layers (a Keras application as
a backbone, a Sequential block), in both Kerases: the graph module, the bridge's twin, and the
bound on a config tf_keras cannot rebuild."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
from _helpers import weights_bytes

import compresswidgets as cw
from compresswidgets import _bridge, _graph, _keras
from compresswidgets.techniques._common import kernel_of

L = keras.layers
rng = np.random.default_rng(7)


def _tokens(n=24):
    return rng.normal(size=(n, 8, 16)).astype("float32")


def _operators_model():
    inputs = keras.Input((8, 16), name="tokens")
    attention = L.MultiHeadAttention(2, 8, name="attention")(inputs, inputs)
    h = L.LayerNormalization(name="norm")(inputs + attention)
    ffn = L.Dense(16, name="ffn")(h)
    h = h + keras.ops.tanh(ffn) * 0.5
    first = h[:, 0]
    z = L.Concatenate()([keras.ops.mean(h, axis=1), 1.0 - first, keras.ops.maximum(first, 0.0)])
    return keras.Model(inputs, L.Dense(3, name="head")(z), name="ops_model")


def _transfer(k, backbone_inputs=(16, 16, 3)):
    """A backbone model used as a layer, under a Sequential head (both nested)."""
    image = k.Input(backbone_inputs)
    x = k.layers.Conv2D(8, 3, padding="same", name="conv")(image)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.ReLU()(x)
    x = x + k.layers.Conv2D(8, 3, padding="same", name="conv_res")(x)  # an operator inside
    backbone = k.Model(image, k.layers.Conv2D(8, 3, name="conv_2")(x), name="backbone")
    head = k.Sequential([k.layers.GlobalAveragePooling2D(), k.layers.Dense(4, name="dense")],
                        name="head")
    inputs = k.Input(backbone_inputs)
    return k.Model(inputs, head(backbone(inputs)), name="transfer")


def _images(n=16, size=16):
    return rng.uniform(size=(n, size, size, 3)).astype("float32")


# -- the graph module -----------------------------------------------------------------------


def _legacy(layers, outputs):
    entries = [{"class_name": "InputLayer", "name": "x", "config": {"name": "x"},
                "inbound_nodes": []}]
    for name, inputs in layers:
        entries.append({"class_name": "Dense", "name": name, "config": {"name": name},
                        "inbound_nodes": [[[n, i, 0, {}] for n, i in inputs]]})
    return {"name": "m", "layers": entries, "input_layers": [["x", 0, 0]],
            "output_layers": [[o, 0, 0] for o in outputs]}


def test_a_buildable_graph_passes_and_its_refs_are_read_in_call_order():
    config = _legacy([("a", [("x", 0)]), ("b", [("a", 0), ("x", 0)])], ["b"])
    _graph.check_buildable(config)
    assert _graph.refs(config["layers"][2]["inbound_nodes"][0]) == [("a", 0, 0), ("x", 0, 0)]
    # a tensor keyword, as tf_keras writes a TFOpLambda's y: read and rewritten too
    op = [["a", 0, 0, {"y": ["x", 0, 0], "name": None}]]
    assert _graph.refs(op) == [("a", 0, 0), ("x", 0, 0)]
    assert _graph.map_refs(op, lambda r: ("p/" + r[0], *r[1:]))[0][3]["y"] == ["p/x", 0, 0]
    keras3_node = {"args": [[{"class_name": "__keras_tensor__",
                              "config": {"keras_history": ["p", 0, 1]}}, 2.0]],
                   "kwargs": {"value": {"class_name": "__keras_tensor__",
                                        "config": {"keras_history": ["q", 1, 0]}}}}
    assert _graph.refs(keras3_node) == [("p", 0, 1), ("q", 1, 0)]
    moved = _graph.map_refs(keras3_node, lambda r: ("z", r[1], r[2]))
    assert _graph.refs(moved) == [("z", 0, 1), ("z", 1, 0)]
    assert _graph.refs(keras3_node)[0][0] == "p"  # a copy: the config given is unchanged


@pytest.mark.parametrize("layers, outputs, message", [
    ([("a", [("b", 0)]), ("b", [("a", 0)])], ["b"], "never made"),       # a cycle
    ([("a", [("x", 0)]), ("b", [("a", 1)])], ["b"], "call 1 of 'a'"),    # a call that is not
    ([("a", [("ghost", 0)])], ["a"], "'ghost', which is not a layer"),  # a layer that is not
])
def test_a_graph_tf_keras_would_loop_on_is_refused_at_once(layers, outputs, message):
    start = time.monotonic()
    with pytest.raises(_graph.GraphError, match=message):
        _graph.check_buildable(_legacy(layers, outputs))
    assert time.monotonic() - start < 5  # not a timing claim: it must not loop


def test_the_bridge_says_so_in_bounded_time_instead_of_hanging(monkeypatch):
    """A translation tf_keras cannot rebuild (here made so on purpose: a node wired to itself)
    ends in a BridgeError, where tf_keras' from_config would loop forever."""
    model = _operators_model()
    real = _bridge._Translation.model

    def broken(self, kind, config):
        out = real(self, kind, config)
        head = next(e for e in out["layers"] if e["name"] == "head")
        head["inbound_nodes"] = [[["head", 0, 0, {}]]]
        return out

    monkeypatch.setattr(_bridge._Translation, "model", broken)
    with pytest.raises(cw.BridgeError, match=r"'head'.*never made.*loop forever"):
        _bridge.bridge(model, _tokens())


# -- weightless operations --------------------------------------------------------------------


def test_operators_and_keras_ops_run_as_themselves_in_the_twin():
    model = _operators_model()
    before = weights_bytes(model)
    x = _tokens()
    bridged = _bridge.bridge(model, x)
    assert bridged.max_error <= _bridge.TOLERANCE
    ops = [layer for layer in bridged.model.layers if type(layer).__name__ == "KerasOperation"]
    assert len(ops) >= 7  # +, tanh, *, +, [:, 0], mean, -, maximum
    np.testing.assert_allclose(bridged.model(x), model(x), rtol=1e-5, atol=1e-5)
    assert weights_bytes(model) == before
    # it travels as JSON, as the worker and a sweep's executor rebuild it
    rebuilt = _keras.keras().models.model_from_json(bridged.model.to_json())
    rebuilt.set_weights(bridged.model.get_weights())
    np.testing.assert_allclose(rebuilt(x), model(x), rtol=1e-5, atol=1e-5)
    from compresswidgets import _jobs
    assert _jobs.portable(bridged.model)


def test_a_keras3_model_with_operators_is_pruned_and_written_back():
    model = _operators_model()
    x, y = _tokens(96), rng.integers(0, 3, 96)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    wb = cw.Workbench(model, (x[:64], y[:64], x[64:], y[64:]))
    assert wb.bridge_error is None
    p = wb.prune(0.5, epochs=1, layers=["ffn", "attention"])
    for name in ("ffn", "attention"):
        kernel = kernel_of(p.keras_model.get_layer(name)).numpy()
        assert abs(float(np.mean(kernel == 0)) - 0.5) <= 0.02, name
    back = p.to_keras3()
    np.testing.assert_allclose(back(x[64:]), p.keras_model(x[64:]), rtol=1e-4, atol=1e-5)


# -- nested models ----------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_nested_models_are_inlined_with_paths_in_both_kerases(flavour):
    k = keras if flavour == "keras3" else _keras.keras()
    model = _transfer(k)
    x = _images()
    before = weights_bytes(model)
    assert _bridge.needs_bridge(model)
    bridged = _bridge.bridge(model, x)
    assert bridged.max_error <= _bridge.TOLERANCE
    assert set(bridged.inlined) == {"backbone", "head"}
    assert not any(type(layer).__name__ in _graph.MODELS for layer in bridged.model.layers)
    assert bridged.model.count_params() == model.count_params()
    conv = bridged.safe_name("backbone/conv")
    assert bridged.user_name(conv) == "backbone/conv" and "/" not in conv
    np.testing.assert_array_equal(bridged.model.get_layer(conv).kernel.numpy(),
                                  model.get_layer("backbone").get_layer("conv").kernel.numpy())
    assert weights_bytes(model) == before


def test_a_flat_tf_keras_model_needs_no_bridge():
    k = _keras.keras()
    inputs = k.Input((4,))
    assert not _bridge.needs_bridge(k.Model(inputs, k.layers.Dense(2)(inputs)))


def test_a_shared_nested_model_stays_nested_with_its_shared_weights():
    encoder = keras.Sequential([keras.Input((6,)), L.Dense(4, name="enc")], name="encoder")
    a, b = keras.Input((6,)), keras.Input((6,))
    model = keras.Model([a, b], L.Dense(1)(L.Concatenate()([encoder(a), encoder(b)])))
    x = rng.normal(size=(8, 6)).astype("float32")
    bridged = _bridge.bridge(model, [x, x[::-1]])
    assert bridged.inlined == ()
    assert bridged.max_error <= _bridge.TOLERANCE


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_pruning_reaches_the_backbone_and_the_users_structure_comes_back(flavour, tmp_path):
    k = keras if flavour == "keras3" else _keras.keras()
    model = _transfer(k)
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _images(96), rng.integers(0, 4, 96)
    wb = cw.Workbench(model, (x[:64], y[:64], x[64:], y[64:]))
    p = wb.prune(0.5, epochs=0, layers=["backbone/conv_2"])
    safe = wb.bridge.safe_name("backbone/conv_2")  # the twin's name, for TensorFlow
    assert p.recipe["layers"] == [safe] and wb.user_name(safe) == "backbone/conv_2"
    kernel = kernel_of(p.keras_model.get_layer(safe))
    assert abs(float(np.mean(kernel.numpy() == 0)) - 0.5) <= 0.02
    assert "backbone/conv_2" in {wb.user_name(row["layer"]) for row in p.layers}  # tables
    if flavour == "keras3":  # written back into the user's own nested architecture
        back = p.to_keras3()
        assert type(back.get_layer("backbone")).__name__ == "Functional"
        inner = back.get_layer("backbone").get_layer("conv_2").kernel.numpy()
        assert abs(float(np.mean(inner == 0)) - 0.5) <= 0.02
    else:
        assert "bridged_from" not in p.recipe
        assert "cw.to_tf_keras(model, x_test)" in p.code
        # the .keras file is the user's nested architecture with the pruned weights
        (tmp_path / "p.keras").write_bytes(p.keras_file())
        back = k.models.load_model(tmp_path / "p.keras", compile=False)
        assert type(back.get_layer("backbone")).__name__ == "Functional"
        inner = back.get_layer("backbone").get_layer("conv_2").kernel.numpy()
        assert abs(float(np.mean(inner == 0)) - 0.5) <= 0.02
        np.testing.assert_allclose(back(x[64:]), p.keras_model(x[64:]), rtol=1e-4, atol=1e-5)


def test_keras3_transfer_learning_on_an_application_does_not_hang():
    """The issue's case: Workbench() never returned on this model."""
    base = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                          input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(base(inputs))))
    x = _images(8, 32)
    bridged = _bridge.bridge(model, x)
    assert bridged.max_error <= _bridge.TOLERANCE
    assert bridged.inlined == (base.name,)
    names = set(bridged.names.values())
    assert f"{base.name}/block_1_project" in names and f"{base.name}/Conv1" in names
