"""The embedded demo model: architecture, accuracy, cache behaviour, no network."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import weights_bytes

import compresswidgets as cw
from compresswidgets import _keras
from compresswidgets import demo as demo_module

pytestmark = pytest.mark.slow  # make test-fast leaves this module out


def test_data_split_is_fixed_and_complete():
    data = cw.demo_data()
    assert isinstance(data, cw.DemoData)
    x_train, y_train, x_test, y_test = data  # unpacks like a plain tuple
    assert x_train.shape == (1347, 8, 8, 1) and x_test.shape == (450, 8, 8, 1)
    assert len(y_train) + len(y_test) == 1797
    assert x_train.dtype == np.float32 and x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert set(np.unique(y_test)) == set(range(10))
    again = cw.demo_data()
    np.testing.assert_array_equal(again.y_test, y_test)


def test_demo_model_architecture_and_accuracy(demo):
    model, data = demo
    assert model.count_params() == 32810
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "Conv2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert [layer.filters for layer in model.layers[:3]] == [64, 32, 32]
    assert model.layers[-1].units == 10
    assert _keras.keras_flavour(model) == "tf_keras"  # what tfmot wraps, not Keras 3
    probs = model.predict(data.x_test, verbose=0)
    assert probs.shape == (len(data.x_test), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)  # a softmax
    accuracy = float(np.mean(probs.argmax(axis=1) == data.y_test))
    assert accuracy >= 0.95
    # the split is scikit-learn's digits, 8x8 in [0, 1], every class in both splits
    assert data.x_train.shape[1:] == (8, 8, 1)
    assert 0.0 <= data.x_train.min() <= data.x_train.max() <= 1.0
    assert set(np.unique(data.y_train)) == set(np.unique(data.y_test)) == set(range(10))
    assert model.optimizer is not None  # compiled, ready to evaluate or fine-tune


def test_second_call_uses_the_cache_and_returns_a_new_model(demo, monkeypatch):
    model, _ = demo

    def no_training(*args, **kwargs):
        raise AssertionError("demo_model() retrained although a valid cache exists")

    monkeypatch.setattr(demo_module, "_train", no_training)
    again, _ = cw.demo_model()
    assert again is not model
    assert weights_bytes(again) == weights_bytes(model)
    assert demo_module._cache_file().is_file()
    again.layers[0].kernel.assign_add(np.ones((3, 3, 1, 64), np.float32))
    assert weights_bytes(again) != weights_bytes(model)  # separate objects, separate weights


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04truncated zip"])
def test_corrupt_cache_is_harmless(tmp_path, monkeypatch, demo, content):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = demo_module._cache_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    model, data = cw.demo_model()
    assert model.count_params() == 32810
    probs = model.predict(data.x_test, verbose=0)
    assert np.mean(probs.argmax(axis=1) == data.y_test) >= 0.95
    assert path.stat().st_size > 100_000  # rewritten with real weights


def test_stale_cache_with_wrong_shapes_is_ignored(tmp_path, monkeypatch, demo):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = demo_module._cache_file()
    path.parent.mkdir(parents=True)
    np.savez(path, meta=np.array('{"version": 1, "count": 1}'), w0=np.zeros(3))
    model, _ = cw.demo_model()
    assert model.count_params() == 32810
    assert np.abs(model.layers[0].kernel.numpy()).sum() > 0


def test_cache_honours_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo_module.cache_dir() == tmp_path / "xdg" / "compresswidgets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert demo_module.cache_dir() == tmp_path / "home" / ".cache" / "compresswidgets"
