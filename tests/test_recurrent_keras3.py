"""Recurrent models written in Keras 3 (issue 28): pruning reaches its target on bridged LSTM
and GRU layers, the original converts as compactly as the same architecture in tf_keras,
full integer converts (or says precisely why not), and dynamic range quantizes an LSTM or the
variant's notes say why it could not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter

import keras
import numpy as np
import pytest
from _helpers import weights_bytes

import compresswidgets as cw
from compresswidgets import _bridge, _keras
from compresswidgets import tflite as tfl

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

L = keras.layers
T, F = 20, 4
SEED = 20261208


def _waves(n: int = 320, test: int = 64) -> tuple[np.ndarray, ...]:
    """Noisy sine waves of random phase and frequency per channel: an autoencoder's data."""
    rng = np.random.default_rng(SEED)
    t = np.linspace(0, 2 * np.pi, T)
    x = np.sin(rng.uniform(0.5, 2.0, (n, 1, F)) * t[None, :, None]
               + rng.uniform(0, 2 * np.pi, (n, 1, 1)))
    x = (x + rng.normal(0, 0.05, x.shape)).astype(np.float32)
    return x[test:], x[test:], x[:test], x[:test]


def _sequences(n: int = 320, test: int = 64) -> tuple[np.ndarray, ...]:
    """Sensor-like sequences; the class (0..2) is where in time the burst happens."""
    rng = np.random.default_rng(SEED)
    x = rng.normal(0, 0.3, (n, 30, 6)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for i, c in enumerate(y):
        x[i, int(c) * 10:(int(c) + 1) * 10, :2] += 1.0
    return x[test:], y[test:].astype(np.int64), x[:test], y[:test].astype(np.int64)


def _autoencoder(k, functional: bool):
    """Seed 002's LSTM encoder-decoder, in either Keras (``k``), Sequential or functional."""
    layers = [k.layers.LSTM(32, name="encoder"), k.layers.RepeatVector(T, name="repeat"),
              k.layers.LSTM(32, return_sequences=True, name="decoder"),
              k.layers.TimeDistributed(k.layers.Dense(F), name="reconstruct")]
    if not functional:
        return k.Sequential([k.Input((T, F)), *layers], name="lstm_autoencoder")
    x = inputs = k.Input((T, F))
    for layer in layers:
        x = layer(x)
    return k.Model(inputs, x, name="lstm_autoencoder")


@pytest.fixture(scope="module")
def autoencoder():
    """The functional Keras 3 autoencoder (the spelling whose LSTMs pruned to 0 %), trained a
    little, its Workbench, and the same architecture in tf_keras with the same weights."""
    keras.utils.set_random_seed(SEED)
    model = _autoencoder(keras, functional=True)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    data = _waves()
    model.fit(data[0], data[1], epochs=3, batch_size=32, verbose=0)
    before = weights_bytes(model)
    same = _autoencoder(_keras.keras(), functional=True)
    same.set_weights(model.get_weights())
    return model, cw.Workbench(model, data), same, before


def _ops(blob: bytes) -> Counter:
    return Counter(tfl.op_names(blob))


def _kernels(layer) -> dict[str, np.ndarray]:
    return {w.name.rsplit("/", 1)[-1].split(":")[0]: w.numpy() for w in layer.weights
            if w.name.rsplit("/", 1)[-1].split(":")[0] in ("kernel", "recurrent_kernel")}


def test_the_bridge_leaves_out_the_training_flag_keras3_writes_into_a_call():
    """Keras 3 records a call's default training flag in its node (an LSTM's and a Dropout's
    training=False) and overrides it at run time; the twin must not freeze it."""
    inputs = keras.Input((T, F))
    x = L.LSTM(8, return_sequences=True, name="lstm")(inputs)
    x = L.Dropout(0.5, name="drop")(L.Flatten()(x))
    model = keras.Model(inputs, L.Dense(2, name="head")(x))
    assert model.get_config()["layers"][1]["inbound_nodes"][0]["kwargs"]["training"] is False
    twin = _bridge.to_tf_keras(model, _waves(48, 16)[2])
    for entry in twin.get_config()["layers"]:
        for node in entry["inbound_nodes"]:
            for ref in node:
                assert "training" not in ref[3], (entry["name"], ref)
    # training=True reaches the Dropout (and the LSTM), as in the Keras 3 model
    x = np.ones((4, T, F), np.float32)
    y = np.asarray(twin(x, training=True))
    assert not np.allclose(y, np.asarray(twin(x, training=False)))


def test_pruning_reaches_the_target_on_every_bridged_lstm_kernel(autoencoder):
    _, wb, _, _ = autoencoder
    p = wb.prune(0.5, epochs=1)
    assert sorted(p.recipe["layers"]) == ["decoder", "encoder"]
    for name in ("encoder", "decoder"):
        for weight, kernel in _kernels(p.keras_model.get_layer(name)).items():
            assert abs(float(np.mean(kernel == 0)) - 0.5) <= 0.02, (name, weight)
    assert not [n for n in p.notes if "short of" in n], p.notes
    back = p.to_keras3()  # the zeros go back into the user's Keras 3 LSTMs
    kernel = back.get_layer("encoder").cell.kernel.numpy()
    assert abs(float(np.mean(kernel == 0)) - 0.5) <= 0.02


def test_pruning_reaches_the_target_on_a_bridged_gru():
    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((30, 6))
    x = L.GRU(32, name="gru")(inputs)
    model = keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(x))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    wb = cw.Workbench(model, _sequences())
    p = wb.prune(0.5, epochs=1)
    assert p.recipe["layers"] == ["gru"]
    for weight, kernel in _kernels(p.keras_model.get_layer("gru")).items():
        assert abs(float(np.mean(kernel == 0)) - 0.5) <= 0.02, weight


def test_the_keras3_original_converts_as_compactly_as_the_same_model_in_tf_keras(autoencoder):
    _, wb, same, _ = autoencoder
    original = wb.original
    ops = _ops(original.tflite)
    assert ops["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2 and not ops["WHILE"], ops
    reference = tfl.convert(same, "float32")
    assert abs(original.size_bytes - len(reference)) <= 0.05 * len(reference), (
        original.size_bytes, len(reference))
    assert any("converted from the verified tf_keras twin" in n and "'encoder' (LSTM)" in n
               for n in original.notes), original.notes
    assert original.tflite_accuracy == pytest.approx(original.keras_accuracy, rel=1e-3)
    d = wb.quantize("dynamic")
    assert d.recipe["bridged_from"] == "keras3"  # converted from the twin, as its code says
    reference = tfl.convert(same, "dynamic")
    assert abs(d.size_bytes - len(reference)) <= 0.05 * len(reference), (d.size_bytes,
                                                                         len(reference))


def test_int8_of_the_keras3_lstm_autoencoder_converts(autoencoder):
    _, wb, _, _ = autoencoder
    q = wb.quantize("int8")
    ops = _ops(q.tflite)
    assert ops["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2 and not ops["WHILE"], ops
    assert q.size_bytes < 0.5 * wb.original.size_bytes
    # MAE of the reconstruction: int8 stays within a fifth of the float model's
    assert abs(q.accuracy - wb.original.accuracy) <= 0.2 * wb.original.accuracy, (
        q.accuracy, wb.original.accuracy)


def test_int8_of_a_keras3_lstm_converted_as_itself_names_the_loop_and_the_way_out():
    """Without its twin (converted through Keras 3's own export) the LSTM is a WHILE loop,
    whose calibration crashes the converter: refused up front, with the way out."""
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((30, 6)), L.LSTM(8, name="lstm"), L.Dense(3)])
    with pytest.raises(cw.ConversionError) as err:
        tfl.convert(model, "int8", representative=_sequences(40, 8)[0])
    message = str(err.value)
    for part in ("'lstm' (LSTM)", "mode 'int8'", "WHILE loop", "UNIDIRECTIONAL_SEQUENCE_LSTM",
                 "cw.to_tf_keras(model, x_test)", "mode='dynamic'"):
        assert part in message, (part, message)


def _classifier(k) -> tuple:
    """The zoo's LSTM classifier (Input((30, 6)) -> LSTM(32) -> Dense(3)) in Keras ``k``,
    trained a little, and its Workbench."""
    k.utils.set_random_seed(SEED)
    model = k.Sequential([k.Input((30, 6)), k.layers.LSTM(32, name="lstm"),
                          k.layers.Dense(3, activation="softmax", name="head")])
    model.compile(k.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    data = _sequences()
    model.fit(data[0], data[1], epochs=3, verbose=0)
    return model, cw.Workbench(model, data)


@pytest.fixture(scope="module")
def classifier():
    return _classifier(keras)


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_dynamic_range_quantizes_the_lstm_classifier(flavour, request):
    """Its input gate matrices (32x6) are under the converter's 1,024 elements, which left
    the whole LSTM float (the tf_keras model's dynamic .tflite was the float size, 23,592 B);
    now its recurrent ones are stored int8."""
    _, wb = request.getfixturevalue("classifier") if flavour == "keras3" else _classifier(
        _keras.keras())
    d = wb.quantize("dynamic")
    assert d.size_bytes < 0.6 * wb.original.size_bytes, (d.size_bytes, wb.original.size_bytes)
    [lstm] = tfl.lstm_weights(d.tflite)
    assert lstm.storage.count("dequantized") == 4 and lstm.storage.count("float32") == 4
    assert any(n.startswith("LSTM 'lstm' computes in float: its 4 gate matrices") and
               "32×6 = 192" in n for n in d.notes), d.notes
    assert "converter.experimental_new_dynamic_range_quantizer = False" in d.code
    assert abs(d.accuracy - wb.original.accuracy) <= 0.02


def test_the_code_of_a_keras3_lstm_variant_makes_the_same_tflite(classifier, tmp_path):
    """The code converts the twin with the same settings: its .tflite is the variant's size."""
    model, wb = classifier
    d = wb.quantize("dynamic", name="dynamic for the code")
    model.save(tmp_path / "mine.keras")
    np.savez(tmp_path / "data.npz", **dict(zip(("x_train", "y_train", "x_test", "y_test"),
                                               wb.data, strict=True)))
    script = textwrap.dedent("""
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import keras as keras3
        import numpy as np
        model = keras3.saving.load_model("mine.keras")
        x_train, y_train, x_test, y_test = (np.load("data.npz")[k] for k in
                                            ("x_train", "y_train", "x_test", "y_test"))
    """) + d.code + "\nprint(len(tflite_model))\n"
    (tmp_path / "variant.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "variant.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    made = int(out.stdout.strip().splitlines()[-1])
    assert abs(made - d.size_bytes) <= 0.02 * d.size_bytes, (made, d.size_bytes)


def test_dynamic_range_says_why_it_leaves_a_small_lstm_float():
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((30, 6)), L.LSTM(16, name="small"),
                              L.Dense(3, activation="softmax", name="head")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    wb = cw.Workbench(model, _sequences())
    d = wb.quantize("dynamic")
    [lstm] = tfl.lstm_weights(d.tflite)
    assert set(lstm.storage) == {"float32"}  # nothing to quantize: every gate under 1,024
    note = next((n for n in d.notes if n.startswith("Dynamic range left LSTM 'small' float")),
                "")
    assert "16×6 = 96 and 16×16 = 256 weights" in note and "'float16'" in note, d.notes
    assert "experimental_new_dynamic_range_quantizer" not in d.code


def test_the_users_keras3_model_is_untouched(autoencoder):
    model, wb, _, before = autoencoder
    assert len(wb.variants) > 1  # after everything above
    assert weights_bytes(model) == before
