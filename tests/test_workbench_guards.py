"""The user's model is sacred; bad input is refused clearly and nothing is lost."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import weights_bytes

import compresswidgets as cw

pytestmark = pytest.mark.slow  # make test-fast leaves this module out


@pytest.fixture(scope="module")
def wb(demo):
    return cw.Workbench(*demo)


def test_every_technique_and_mode_leaves_the_live_model_alone(demo):
    model, data = demo
    weights = weights_bytes(model)
    predictions = model.predict(data.x_test, verbose=0)
    wb = cw.Workbench(model, data)
    # no training where the technique allows it: what counts is that none touches `model`
    p = wb.prune(0.5, epochs=0)
    wb.prune(0.5, epochs=0, schedule="constant")
    wb.prune(0.5, structure="2:4", epochs=0)
    c = wb.cluster(8, epochs=0, layers=lambda layer: True)  # every clusterable layer
    wb.cluster(8, preserve_sparsity=True, epochs=0, base=p)
    for mode in ("dynamic", "float16", "int8", "int8-only", "int16x8"):
        wb.quantize(mode)
    wb.quantize("qat", epochs=1)
    cqat = wb.quantize("qat", epochs=1, base=c)
    assert cqat.recipe["scheme"] == "cqat"
    assert all(row["distinct"] <= 8 for row in cqat.layers)  # the clusters survived QAT
    assert len(wb.variants) == 13
    assert weights_bytes(model) == weights
    np.testing.assert_array_equal(model.predict(data.x_test, verbose=0), predictions)
    assert [type(layer).__name__ for layer in model.layers][0] == "Conv2D"  # no wrappers
    assert len(model.weights) == 10


def test_progress_reports_and_a_stop_leaves_no_variant(wb):
    seen = []

    def progress(report):
        seen.append((report.technique, report.epoch, report.batch, report.batches))
        if len(seen) == 5:
            report.stop()

    before = wb.variants
    with pytest.raises(cw.TrainingStopped,
                       match=r"stopped at epoch 1/3, batch \d+/43.*No variant") as stopped:
        wb.prune(0.7, epochs=3, progress=progress)
    assert wb.variants == before
    # fine-tuning runs in the worker process: the stop lands at a batch boundary after the
    # fifth report, within the first epoch, and every batch it trained was reported
    batch = int(str(stopped.value).split("batch ")[1].split("/")[0])
    assert 5 <= batch < 43 and len(seen) == batch
    assert seen[:2] == [("Pruning", 1, 1, 43), ("Pruning", 1, 2, 43)]
    with pytest.raises(cw.TrainingStopped):
        wb.cluster(8, epochs=2, progress=lambda r: r.stop())
    with pytest.raises(cw.TrainingStopped):
        wb.quantize("qat", epochs=2, progress=lambda r: r.stop())
    assert wb.variants == before


def test_a_failing_progress_callback_stops_the_run_and_raises(wb):
    def broken(report):
        raise KeyError("callback bug")

    before = wb.variants
    with pytest.raises(KeyError, match="callback bug"):
        wb.prune(0.5, epochs=2, progress=broken)
    assert wb.variants == before
    assert wb.prune(0.5, epochs=1).sparsity > 0.45  # the worker is in step afterwards


def test_full_progress_is_reported(wb):
    reports = []
    v = wb.prune(0.3, epochs=1, progress=reports.append)
    assert len(reports) == 43 and reports[-1].fraction == 1.0
    assert "loss" in reports[-1].logs
    assert wb.variants[-1] is v


def test_custom_metric_for_regression(keras):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = (x @ rng.normal(size=6)).astype(np.float32)
    model = keras.Sequential([keras.layers.Dense(16, activation="relu", input_shape=(6,)),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=3, verbose=0)

    def neg_mse(y_true, y_pred):
        return -float(np.mean((y_true.reshape(-1) - y_pred.reshape(-1)) ** 2))

    wb = cw.Workbench(model, (x[:150], y[:150], x[150:], y[150:]), metric=neg_mse)
    expected = neg_mse(y[150:], model.predict(x[150:], verbose=0))
    assert wb.original.accuracy == pytest.approx(expected, rel=1e-5)
    p = wb.prune(0.5, epochs=1)
    assert p.accuracy < 0 and p.sparsity == pytest.approx(0.5, abs=0.02)


def refused(wb, fn, exc, pattern):
    before = wb.variants
    with pytest.raises(exc, match=pattern):
        fn()
    assert wb.variants == before


@pytest.mark.parametrize("value,exc", [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError),
                                       ("0.5", TypeError), (float("nan"), ValueError),
                                       (float("inf"), ValueError), (None, TypeError)])
def test_bad_target_sparsity(wb, value, exc):
    refused(wb, lambda: wb.prune(value), exc, r"target_sparsity.*got")


def test_bad_pruning_options(wb):
    refused(wb, lambda: wb.prune(0.5, schedule="cubic"), ValueError,
            r"Unknown schedule 'cubic'.*'polynomial', 'constant'")
    refused(wb, lambda: wb.prune(0.5, structure="1:4"), ValueError, r"Unknown structure")
    refused(wb, lambda: wb.prune(0.7, structure="2:4"), ValueError, r"always gives 50 %")
    refused(wb, lambda: wb.prune(0.5, layers=["nope"]), ValueError,
            r"no layer named 'nope'.*Expected names from: conv2d")
    refused(wb, lambda: wb.prune(0.5, layers=["flatten"]), ValueError,
            r"cannot be applied to layer.*'flatten' \(Flatten\)")
    refused(wb, lambda: wb.prune(0.5, epochs=-1), ValueError, r"epochs")


@pytest.mark.parametrize("clusters", [1, 0, -4])
def test_too_few_clusters(wb, clusters):
    refused(wb, lambda: wb.cluster(clusters), ValueError, r"clusters must be in \[2")


def test_more_clusters_than_weights(wb):
    refused(wb, lambda: wb.cluster(400, layers=["dense_1"]), ValueError,
            r"clusters=400 is more than the 320 weights of layer 'dense_1'")
    refused(wb, lambda: wb.cluster(8, init="kmeans"), ValueError, r"Unknown init 'kmeans'")


def test_unknown_mode_and_missing_representative_data(wb):
    refused(wb, lambda: wb.quantize("int4"), ValueError, r"Unknown quantization mode 'int4'")
    for mode in ("int8", "int8-only", "int16x8"):
        refused(wb, lambda mode=mode: wb.quantize(mode, representative_samples=0), ValueError,
                r"needs representative data.*representative_samples=100")


def test_quantized_variants_cannot_be_a_base(wb):
    q = wb.quantize("dynamic")
    refused(wb, lambda: wb.prune(0.5, base=q), ValueError, r"already quantized")
    other = cw.Workbench(wb.original.keras_model, wb.data)
    refused(wb, lambda: wb.prune(0.5, base=other.original), ValueError,
            r"base must be a variant of this Workbench")


@pytest.mark.parametrize("data,exc,pattern", [
    ("not data", TypeError, r"data must be \(x_train, y_train, x_test, y_test\)"),
    ((np.zeros((0, 8, 8, 1)), np.zeros(0), np.zeros((5, 8, 8, 1)), np.zeros(5)), ValueError,
     r"x_train is empty"),
    ((np.zeros((10, 8, 8, 1)), np.zeros(9), np.zeros((5, 8, 8, 1)), np.zeros(5)), ValueError,
     r"x_train has 10 samples but y_train has 9"),
    ((np.zeros((10, 64)), np.zeros(10), np.zeros((5, 64)), np.zeros(5)), ValueError,
     r"samples have shape \(64,\), but the model expects inputs of shape \(8, 8, 1\)"),
    ((np.array([["a"] * 64] * 4), np.zeros(4), np.zeros((4, 64)), np.zeros(4)), TypeError,
     r"data.x_train has dtype <U1, expected numbers"),
    ({"x_train": np.zeros((4, 8, 8, 1))}, ValueError, r"without y_train, x_test, y_test"),
])
def test_bad_data(demo, data, exc, pattern):
    with pytest.raises(exc, match=pattern):
        cw.Workbench(demo[0], data)


def test_not_a_model(demo):
    with pytest.raises(TypeError, match=r"Workbench\(\) expects a Keras model"):
        cw.Workbench("model.h5", demo[1])


def test_qat_on_an_unsupported_layer_names_it_and_the_alternative(keras, demo):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, name="hidden")(x)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(x))
    wb = cw.Workbench(model, demo[1])
    # named explicitly: refused, with the alternative
    refused(wb, lambda: wb.quantize("qat", layers=["hidden", "norm"]), ValueError,
            r"QAT cannot quantize 'norm' \(LayerNormalization\).*Leave them out.*mode='int8'")
    q = wb.quantize("qat", layers=["hidden", "out"], epochs=1)
    assert q.recipe["layers"] == ["hidden", "out"]
    # by default (as the panel ticks it): the rest is quantized, and the note says what not
    d = wb.quantize("qat", epochs=1)
    assert d.recipe["layers"][-2:] == ["hidden", "out"] and "norm" not in d.recipe["layers"]
    assert any("left float: 'norm' (LayerNormalization)" in n and "mode='int8'" in n
               for n in d.notes), d.notes


def test_subclassed_models_get_ptq_only(keras, demo):
    class Small(keras.Model):
        def __init__(self):
            super().__init__(name="small")
            self.flat, self.out = keras.layers.Flatten(), keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.flat(x))

    model = Small()
    model(np.zeros((1, 8, 8, 1), np.float32))
    wb = cw.Workbench(model, demo[1])
    refused(wb, lambda: wb.prune(0.5), ValueError,
            r"Sequential and functional models only.*subclassed.*functional API")
    refused(wb, lambda: wb.cluster(8), ValueError, r"subclassed")
    assert wb.quantize("dynamic").size_bytes > 0


def test_a_keras3_model_that_cannot_be_bridged_gets_ptq_only(demo):
    import keras as keras3

    class Relu(keras3.layers.Layer):  # a custom Keras 3 layer has no tf_keras twin
        def call(self, x):
            return keras3.ops.relu(x)

    # the demo architecture in Keras 3 with the demo's trained weights
    layers = keras3.layers
    model = keras3.Sequential([
        keras3.Input((8, 8, 1)), layers.Conv2D(64, 3, activation="relu"),
        layers.Conv2D(32, 3, activation="relu"), layers.Conv2D(32, 3, activation="relu"),
        layers.Flatten(), layers.Dense(32), Relu(name="act"),
        layers.Dense(10, activation="softmax")])
    model.set_weights(demo[0].get_weights())
    wb = cw.Workbench(model, demo[1])
    assert wb.bridge is None and "'act' (Relu: a custom layer)" in str(wb.bridge_error)
    for fn in (lambda: wb.prune(0.5), lambda: wb.cluster(4), lambda: wb.quantize("qat")):
        refused(wb, fn, cw.BridgeError, r"works on a flat tf_keras twin of this model.*")
    # the .tflite carries the weights (tf.saved_model.save on Keras 3 used to drop them)
    assert wb.original.tflite_accuracy == pytest.approx(wb.original.keras_accuracy, abs=0.005)
    assert wb.original.keras_accuracy > 0.9
    q = wb.quantize("dynamic")
    assert q.accuracy >= wb.original.keras_accuracy - 0.01
    assert q.size_bytes < 0.4 * wb.original.size_bytes


def test_converter_failure_is_surfaced(keras, demo):
    tf = cw._keras.tf()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Reshape((8, 8))(inputs)
    x = keras.layers.Lambda(lambda t: tf.linalg.inv(t + tf.eye(8)), name="invert")(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    wb = cw.Workbench(model, demo[1])
    refused(wb, lambda: wb.quantize("dynamic"), cw.ConversionError,
            r"The TFLite converter failed \(dynamic\).*")
    assert wb.original.keras_model is not None  # the Keras side is kept
    with pytest.raises(cw.ConversionError):
        wb.original.size_bytes  # noqa: B018 - the float conversion fails the same way


def test_two_four_needs_input_channels_in_fours(wb):
    refused(wb, lambda: wb.prune(0.5, structure="2:4", layers=["conv2d"]), ValueError,
            r"multiple of 4; 'conv2d' has 1")


def test_quantization_error_of_square_and_depthwise_kernels(keras, demo):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, name="square_in")(x)
    x = keras.layers.Dense(64, name="square")(x)  # 64 x 64: a layout mix-up would not show
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(x))
    wb = cw.Workbench(model, demo[1])
    errors = {e.layer: e for e in wb.quantize("int8").quantization_error}
    assert {"conv", "dw", "square", "out"} <= set(errors)
    for name in ("conv", "dw", "square", "out"):
        assert errors[name].snr_db > 25, errors[name]  # a transposed kernel would be ~0 dB


def test_models_the_worker_cannot_rebuild_are_tuned_in_the_kernel(keras, demo, monkeypatch):
    class Scale(keras.layers.Layer):  # a custom layer: model_from_json cannot know it
        def build(self, input_shape):
            self.factor = self.add_weight(name="factor", shape=(), initializer="ones")

        def call(self, x):
            return x * self.factor

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = Scale(name="scale")(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    from compresswidgets import _jobs

    calls = []

    def no_worker(*args, **kwargs):
        calls.append(args)
        raise AssertionError("this model cannot be rebuilt in the worker")

    monkeypatch.setattr(_jobs, "technique", no_worker)
    wb = cw.Workbench(model, demo[1])
    assert not wb._offloadable(model, cw._training.compile_settings(model, wb.data, None, 1e-3))
    reports = []
    p = wb.prune(0.5, epochs=1, progress=reports.append, layers=["hidden", "out"])
    assert [r["layer"] for r in p.layers] == ["hidden", "out"]
    assert min(r["sparsity"] for r in p.layers) >= 0.49
    assert len(reports) == 43 and not calls  # all in this process


def test_in_process_switch(demo, monkeypatch):
    monkeypatch.setenv("COMPRESSWIDGETS_IN_PROCESS", "1")
    wb = cw.Workbench(*demo)
    assert not wb._offloadable(wb.original.keras_model,
                               cw._training.compile_settings(demo[0], wb.data, None, 1e-3))
    seen = []

    def stop_at_three(report):
        seen.append(report)
        if len(seen) == 3:
            report.stop()

    with pytest.raises(cw.TrainingStopped, match="batch 3/43"):  # in-process: exact
        wb.cluster(8, epochs=1, progress=stop_at_three)


def test_layer_selection_by_predicate(wb):
    v = wb.prune(0.5, epochs=0, layers=lambda layer: layer.name.startswith("dense"))
    assert v.recipe["layers"] == ["dense", "dense_1"]
    sparsity = {r["layer"]: r["sparsity"] for r in v.layers}
    assert sparsity["conv2d_1"] == 0.0 and abs(sparsity["dense"] - 0.5) <= 0.01
    refused(wb, lambda: wb.prune(0.5, layers=lambda layer: False), ValueError,
            r"matches no layer that can be handled")


def test_generated_code_starts_from_the_demo_only_for_the_demo_model(keras, demo):
    model, data = demo
    assert "cw.demo_model()" in cw.Workbench(model, data).original.code
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    code = cw.Workbench(other, data).original.code  # the demo's data, another model
    assert "cw.demo_model()" not in code and "# model = keras.models.load_model(...)" in code


def test_multi_input_models_are_refused_with_the_way_out(keras, demo):
    image, extra = keras.Input((8, 8, 1), name="image"), keras.Input((3,), name="extra")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(image), extra])
    model = keras.Model([image, extra], keras.layers.Dense(10, activation="softmax")(x))
    weights = weights_bytes(model)
    with pytest.raises(ValueError, match=r"has 2 inputs \('image', 'extra'\).*one input and "
                                         r"one output.*concatenate the inputs"):
        cw.Workbench(model, demo[1])
    assert weights_bytes(model) == weights
