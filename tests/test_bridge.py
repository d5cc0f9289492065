"""The Keras 3 -> tf_keras bridge: every layer family translated and verified numerically,
weights copied by name, the untranslatable cases refused with the layer named, and the way
back to Keras 3."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _helpers import weights_bytes

import compresswidgets as cw
from compresswidgets import _bridge, _keras

L = keras.layers


def _seq(shape, *layers, name=None):
    return keras.Sequential([keras.Input(shape), *layers], name=name)


def _residual_unsafe_names():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", kernel_regularizer=keras.regularizers.l2(1e-4))(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    y = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.Add()([x, y])
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="dense 1")(x))


def _merges_nested():
    inputs = keras.Input((6,))
    a = L.Dense(4, name="a(b)")(inputs)
    b = L.Dense(4, name="c d")(inputs)
    inner_seq = _seq((8,), L.Dense(5), name="inner_seq")
    i2 = keras.Input((5,))
    inner_fn = keras.Model(i2, L.Dense(3)(i2), name="inner_fn")
    x = L.Multiply()([L.Concatenate()([a, b]), L.Concatenate()([b, a])])
    return keras.Model(inputs, inner_fn(inner_seq(x)))


def _hard_ops():
    """MobileNetV3's hard sigmoid, written as operations on tensors: (x + 3) * (1 / 6)."""
    inputs = keras.Input((6,))
    x = L.Dense(4)(inputs)
    x = L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    return keras.Model(inputs, L.Dense(2)(x))


FAMILIES = {
    "conv_bn_depthwise_residual": (_residual_unsafe_names, (8, 8, 3)),
    "separable_transpose_padding_pooling": (lambda: _seq(
        (8, 8, 3), L.SeparableConv2D(4, 3), L.Conv2DTranspose(2, 3, strides=2),
        L.ZeroPadding2D(1), L.UpSampling2D(), L.MaxPooling2D(), L.AveragePooling2D(2),
        L.Flatten(), L.Dropout(0.2), L.Dense(3)), (8, 8, 3)),
    "conv1d_layernorm_reshape": (lambda: _seq(
        (16, 4), L.Conv1D(4, 3, padding="causal"), L.LayerNormalization(),
        L.GlobalMaxPooling1D(), L.Reshape((2, 2)), L.Flatten(), L.Dense(2)), (16, 4)),
    "conv3d": (lambda: _seq((4, 4, 4, 1), L.Conv3D(2, 3), L.Flatten(), L.Dense(2)),
               (4, 4, 4, 1)),
    "lstm_gru": (lambda: _seq((10, 3), L.LSTM(4, return_sequences=True), L.GRU(4),
                              L.Dense(2)), (10, 3)),
    "bidirectional": (lambda: _seq((10, 3), L.Bidirectional(L.LSTM(4)), L.Dense(2)), (10, 3)),
    "embedding": (lambda: _seq((10,), L.Embedding(20, 4), L.GlobalAveragePooling1D(),
                               L.Dense(2)), None),
    "rescaling_normalization_activations": (lambda: _seq(
        (5,), L.Rescaling(0.5, offset=1.0), L.Normalization(mean=[1.0] * 5, variance=[2.0] * 5),
        L.Dense(4, activation="silu"), L.Activation("gelu"), L.LeakyReLU(0.2),
        L.Dense(4, activation="hard_sigmoid"), L.Activation("hard_silu"), L.Dense(2)), (5,)),
    "merges_nested_models": (_merges_nested, (6,)),
    "operations_on_tensors": (_hard_ops, (6,)),
    "lambda_with_keras3_ops": (lambda: _seq(
        (4,), L.Lambda(lambda t: keras.ops.square(t) + 1.0), L.Dense(2)), (4,)),
}


def _inputs(shape):
    rng = np.random.default_rng(0)
    if shape is None:
        return rng.integers(0, 20, (8, 10)).astype("int32")
    return rng.uniform(-2, 2, (8, *shape)).astype("float32")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_layer_family_is_translated_and_verified(family):
    make, shape = FAMILIES[family]
    model, x = make(), _inputs(shape)
    before = weights_bytes(model)
    bridged = _bridge.bridge(model, x)
    twin = bridged.model
    assert _keras.keras_flavour(twin) == "tf_keras"
    assert bridged.max_error <= _bridge.TOLERANCE
    ours = np.asarray(model(x, training=False))
    theirs = np.asarray(twin(x, training=False))
    assert np.max(np.abs(ours - theirs)) <= 1e-5 * max(1.0, float(np.max(np.abs(ours))))
    assert twin.count_params() == model.count_params()
    assert weights_bytes(model) == before  # the user's model is only read


def test_unsafe_names_get_safe_twins_and_map_back():
    model = _merges_nested()
    bridged = _bridge.bridge(model, _inputs((6,)))
    plain = {safe: user for safe, user in bridged.names.items() if "/" not in user}
    assert plain == {"a_b": "a(b)", "c_d": "c d"}
    # the nested models are inlined: their layers are named by path, safely for TensorFlow
    assert {user.split("/")[0] for user in bridged.names.values() if "/" in user} == {
        "inner_seq", "inner_fn"}
    assert set(bridged.inlined) == {"inner_seq", "inner_fn"}
    assert not any(type(layer).__name__ in ("Functional", "Sequential")
                   for layer in bridged.model.layers)
    assert bridged.safe_name("c d") == "c_d" and bridged.user_name("a_b") == "a(b)"
    np.testing.assert_array_equal(bridged.model.get_layer("c_d").kernel.numpy(),
                                  model.get_layer("c d").kernel.numpy())
    assert any("'c_d' for 'c d'" in n for n in bridged.notes)


def test_keras_applications_are_bridged():
    for build in (lambda: keras.applications.MobileNetV2(alpha=0.35, input_shape=(32, 32, 3),
                                                          weights=None, classes=4),
                  lambda: keras.applications.MobileNetV3Small(input_shape=(32, 32, 3),
                                                              weights=None, classes=4)):
        model = build()
        x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
        bridged = _bridge.bridge(model, x)
        assert bridged.max_error <= _bridge.TOLERANCE, model.name
        assert bridged.model.count_params() == model.count_params()
        # every Keras 3 layer has its twin (the operations x + 3 become tf_keras TFOpLambdas)
        assert {layer.name for layer in model.layers} <= {
            layer.name for layer in bridged.model.layers}


def test_a_difference_is_refused_with_the_first_layer_that_differs():
    model = _residual_unsafe_names()
    x = _inputs((8, 8, 3))
    bridged = _bridge.bridge(model, x)
    twin = bridged.model
    bn = next(layer for layer in twin.layers if type(layer).__name__ == "BatchNormalization")
    bn.gamma.assign(bn.gamma.numpy() * 1.5)  # a translation that computes something else
    with pytest.raises(cw.BridgeError, match=f"first differ at layer '{bn.name}'"):
        _bridge.verify(model, twin, x, {u: s for s, u in bridged.names.items()})


@keras.saving.register_keras_serializable("tests")
class Scale(L.Layer):
    def build(self, shape):
        self.s = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.s


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(2)

    def call(self, x):
        return self.dense(x)


def test_what_cannot_be_translated_is_named():
    model = _seq((4,), L.Dense(3), Scale(name="my_scale"), L.Dense(2))
    with pytest.raises(cw.BridgeError, match=r"'my_scale' \(tests>Scale: a custom layer\)") as e:
        _bridge.bridge(model, _inputs((4,)))
    assert "post-training quantization" in str(e.value)
    sub = Subclassed()
    sub(np.zeros((1, 4), "float32"))
    with pytest.raises(cw.BridgeError, match=r"subclassed Keras 3 model.*functional API"):
        _bridge.bridge(sub, _inputs((4,)))
    with pytest.raises(cw.BridgeError, match="needs no bridge"):
        _bridge.bridge(_keras.keras().Sequential([_keras.keras().layers.Dense(2)]), None)


def test_the_twin_goes_back_to_keras3_with_its_weights():
    model = _residual_unsafe_names()
    x = _inputs((8, 8, 3))
    bridged = _bridge.bridge(model, x)
    conv = next(layer for layer in bridged.model.layers if type(layer).__name__ == "Conv2D")
    kernel = conv.kernel.numpy()
    kernel[np.abs(kernel) < np.median(np.abs(kernel))] = 0.0  # as pruning leaves it
    conv.kernel.assign(kernel)
    back = _bridge.to_keras3(bridged.model, model, x, bridged.names)
    assert _keras.keras_flavour(back) == "keras3"
    assert [layer.name for layer in back.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(back.get_layer(conv.name).kernel.numpy(), kernel)
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(bridged.model(x)), atol=1e-6)


def test_another_backend_is_refused_with_the_fix(monkeypatch):
    model = _seq((4,), L.Dense(2))
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(cw.BridgeError, match=r"'jax' backend.*KERAS_BACKEND=tensorflow"):
        _bridge.bridge(model, _inputs((4,)))
