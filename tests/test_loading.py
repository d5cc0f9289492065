"""cw.load_model: the formats a user brings, and a clear error for each thing that goes wrong."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _helpers import weights_bytes

import compresswidgets as cw
from compresswidgets import _keras


@pytest.fixture(scope="module")
def saved(demo, tmp_path_factory):
    model, _ = demo
    folder = tmp_path_factory.mktemp("models")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras calls .h5 legacy
        model.save(folder / "demo.h5")
    model.save(folder / "demo.keras")
    model.save(folder / "demo_savedmodel", save_format="tf")
    return folder


@pytest.mark.parametrize("name", ["demo.h5", "demo.keras", "demo_savedmodel"])
def test_formats_load_as_tf_keras_with_their_weights(saved, demo, name):
    model, data = demo
    loaded = cw.load_model(saved / name)
    assert _keras.keras_flavour(loaded) == "tf_keras"
    assert weights_bytes(loaded) == weights_bytes(model)
    assert loaded.optimizer is not None  # compiled: the Workbench fine-tunes with it
    wb = cw.Workbench(loaded, data)
    assert wb.prune(0.5, epochs=0).sparsity > 0.3


def test_a_missing_path_names_what_is_there(saved):
    with pytest.raises(FileNotFoundError) as info:
        cw.load_model(saved / "demo.kears")
    message = str(info.value)
    assert "demo.kears" in message and "demo.keras" in message and "demo.h5" in message


def test_not_a_model(saved, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"without saved_model\.pb"):
        cw.load_model(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not a Keras model file"):
        cw.load_model(tmp_path / "notes.txt")
    with pytest.raises(TypeError, match="takes a path"):
        cw.load_model(42)


def test_a_keras3_file_loads_with_keras3_and_goes_through_the_bridge(tmp_path, demo):
    import keras

    k3 = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                           keras.layers.Dense(10, activation="softmax")])
    k3.save(tmp_path / "k3.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", cw.KerasSetupWarning)  # nothing to warn about now
        loaded = cw.load_model(tmp_path / "k3.keras")
    assert _keras.keras_flavour(loaded) == "keras3"
    assert np.allclose(loaded.get_weights()[0], k3.get_weights()[0])
    wb = cw.Workbench(loaded, demo[1])  # straight into the bridge
    assert wb.bridge is not None and wb.original.recipe["bridged_from"] == "keras3"
    assert wb.prune(0.5, epochs=0).sparsity == pytest.approx(0.5, abs=0.01)
    assert wb.quantize("dynamic").is_quantized  # post-training quantization works


def test_a_subclassed_model_needs_its_class(tmp_path, keras, demo):
    class Small(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.flat = keras.layers.Flatten()
            self.out = keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.flat(x))

    model = Small()
    model(demo[1].x_train[:2])
    model.save(tmp_path / "small.keras")
    with pytest.raises(ValueError, match="custom_objects"):
        cw.load_model(tmp_path / "small.keras")
    loaded = cw.load_model(tmp_path / "small.keras", custom_objects={"Small": Small})
    assert isinstance(loaded, Small)


def test_a_savedmodel_without_keras(tmp_path):
    tf = _keras.tf()

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4])])
        def double(self, x):
            return x * 2

    tf.saved_model.save(Doubler(), str(tmp_path / "plain"))
    with pytest.raises(ValueError, match="without a Keras model"):
        cw.load_model(tmp_path / "plain")
