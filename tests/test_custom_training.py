"""Fine-tuning minimises the user's own loss, as compiled: a Python function from a notebook
(in the kernel), a keras.losses.Loss subclass from an importable module (in the worker)."""

from __future__ import annotations

import numpy as np
import pytest

import compresswidgets as cw
from compresswidgets import _jobs, _keras, _process
from compresswidgets._training import compile_settings

LAYERS = ["hidden", "out"]
STEPS = 32  # 1,000 training samples in batches of 32


def _model_and_data():
    """A small classifier with linear outputs (logits), and data it has not seen."""
    k = _keras.keras()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1200, 8)).astype(np.float32)
    y = rng.integers(0, 4, 1200)
    model = k.Sequential([k.Input((8,)), k.layers.Dense(64, activation="relu", name="hidden"),
                          k.layers.Dense(4, name="out")])
    return model, (x[:1000], y[:1000], x[1000:], y[1000:])


def _distance_to(model, x, target):
    return float(np.mean(np.abs(np.asarray(model(x, training=False)) - target)))


class TowardConstant(_keras.keras().losses.Loss):
    """Pulls every output towards ``target``, whatever the labels: a loss no default
    would stand in for, so its effect proves it was the one minimised."""

    def __init__(self, target: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.target = target

    def call(self, y_true, y_pred):
        tf = _keras.tf()
        return tf.reduce_mean(tf.square(y_pred - self.target), axis=-1)

    def get_config(self):
        return {**super().get_config(), "target": self.target}


def outputs_mean(y_true, y_pred):
    """A user metric, importable from this module."""
    return _keras.tf().reduce_mean(y_pred)


def test_a_notebook_loss_function_is_minimised_in_the_kernel(monkeypatch):
    tf = _keras.tf()
    k = _keras.keras()
    model, data = _model_and_data()
    calls = tf.Variable(0, dtype=tf.int64)

    def toward_five(y_true, y_pred):  # defined in a notebook cell: not importable
        calls.assign_add(1)
        return tf.reduce_mean(tf.square(y_pred - 5.0))

    model.compile(k.optimizers.Adam(2e-2), loss=toward_five, metrics=["accuracy"])
    settings = compile_settings(model, cw.Workbench(model, data).data, None, 1e-3)
    assert not settings.portable and settings.loss_code == "toward_five"
    monkeypatch.setattr(_jobs, "technique", lambda *a, **kw: pytest.fail("sent to the worker"))
    monkeypatch.setenv("COMPRESSWIDGETS_IN_PROCESS", "")
    wb = cw.Workbench(model, data)
    before = _distance_to(wb.original.keras_model, data[2], 5.0)
    p = wb.prune(0.5, epochs=2, layers=LAYERS)
    assert int(calls.numpy()) == 2 * STEPS  # the user's function, once per batch
    assert _distance_to(p.keras_model, data[2], 5.0) < 0.5 * before
    assert "loss=toward_five" in p.code


def test_a_loss_subclass_from_a_module_is_minimised_in_the_worker(monkeypatch):
    k = _keras.keras()
    model, data = _model_and_data()
    model.compile(k.optimizers.Adam(2e-2), loss=TowardConstant(5.0),
                  metrics=["accuracy", outputs_mean])
    wb = cw.Workbench(model, data)
    settings = compile_settings(model, wb.data, None, 1e-3)
    assert settings.portable, settings
    assert settings.loss["ref"]["qualname"] == "TowardConstant"
    assert settings.loss["config"]["target"] == 5.0
    jobs = []
    real_call = _process.call

    def counting(request, *args, **kwargs):
        jobs.append(request[0])
        return real_call(request, *args, **kwargs)

    monkeypatch.setattr(_process, "call", counting)
    monkeypatch.setenv("COMPRESSWIDGETS_IN_PROCESS", "")
    before = _distance_to(wb.original.keras_model, data[2], 5.0)
    reports = []
    p = wb.prune(0.5, epochs=2, layers=LAYERS, progress=reports.append)
    assert "technique" in jobs  # fine-tuned in the worker process
    assert _distance_to(p.keras_model, data[2], 5.0) < 0.5 * before
    assert "outputs_mean" in reports[-1].logs  # the user's metrics were compiled too
    assert "TowardConstant(**{" in p.code and "outputs_mean" in p.code


def test_the_metric_name_and_direction_reach_the_tables(keras):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x @ rng.normal(size=6)).astype(np.float32)[:, None]
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    wb = cw.Workbench(model, (x[:200], y[:200], x[200:], y[200:]))  # continuous targets
    assert (wb.metric.name, wb.metric.greater_is_better, wb.metric.fraction) == ("MAE", False,
                                                                                False)
    expected = float(np.mean(np.abs(y[200:] - model.predict(x[200:], verbose=0))))
    assert wb.original.accuracy == pytest.approx(expected, rel=1e-5)
    rows = wb.compare()
    assert rows[0]["metric_name"] == "MAE" and "MAE" in str(rows)
    with pytest.raises(ValueError, match="greater_is_better=True contradicts"):
        cw.Workbench(model, (x[:200], y[:200], x[200:], y[200:]), greater_is_better=True)
