"""One small model per family that people bring to compress for the edge, with learnable
synthetic data (seeded; nothing is downloaded). Each builder returns a :class:`ZooModel`.

The models are tiny on purpose (the whole matrix runs in minutes on 2 cores), but they have
the structure that breaks tools: BatchNorm after conv, depthwise kernels, residual adds,
recurrent layers, a UNet with a custom Python loss and an IoU metric, a regression head,
custom and Lambda layers, layers renamed after building, Keras 3 models (one with operator
residuals and keras.ops, an LSTM encoder-decoder), and transfer learning with models used as
layers in both Kerases.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np

import compresswidgets  # noqa: F401 - sets the Keras environment first
from compresswidgets import _keras

_SEED = 20261202


@dataclass
class ZooModel:
    """A compiled (or not) tf_keras model, its data and how it is judged."""

    family: str
    model: Any
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    metric: Callable[[np.ndarray, np.ndarray], float] | None = None
    metric_name: str | None = None
    greater_is_better: bool = True
    #: what tfmot cannot do on this family, by technique: a phrase the error must contain
    refuses: dict[str, str] = field(default_factory=dict)
    #: layers QAT leaves in float (tfmot has no 8-bit scheme for them), named in its notes
    qat_float: tuple[str, ...] = ()

    def workbench_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.metric is not None:
            out.update(metric=self.metric, metric_name=self.metric_name,
                       greater_is_better=self.greater_is_better)
        return out


def _rng() -> np.random.Generator:
    return np.random.default_rng(_SEED)


def _split(x: np.ndarray, y: np.ndarray, test: int) -> tuple[np.ndarray, ...]:
    return x[test:], y[test:], x[:test], y[:test]


def _images(n: int, size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class (0..3) is the brightest quadrant."""
    rng = _rng()
    x = rng.uniform(0, 0.5, (n, size, size, channels)).astype(np.float32)
    y = rng.integers(0, 4, n)
    h = size // 2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * h:(r + 1) * h, q * h:(q + 1) * h, :] += 0.5
    return x, y.astype(np.int64)


def _fit(model: Any, data: tuple, epochs: int, batch_size: int = 32) -> None:
    model.fit(data[0], data[1], epochs=epochs, batch_size=batch_size, verbose=0)


# --------------------------------------------------------------------------- families
def residual() -> ZooModel:
    """A small hand-written residual net: Conv-BN-ReLU blocks with skip connections."""
    k = _keras.keras()
    layers = k.layers
    inputs = k.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=0.8)(x)
    x = layers.ReLU()(x)
    for _ in range(2):
        y = layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
        y = layers.BatchNormalization(momentum=0.8)(y)
        y = layers.ReLU()(y)
        y = layers.DepthwiseConv2D(3, padding="same")(y)
        x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = k.Model(inputs, outputs, name="resnet_tiny")
    data = _split(*_images(384, 16, 3), test=96)
    model.compile(k.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=6)
    return ZooModel("residual", model, data)


def _sequences(n: int, steps: int = 30, channels: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Sensor-like sequences; the class (0..2) is where in time the burst happens."""
    rng = _rng()
    x = rng.normal(0, 0.3, (n, steps, channels)).astype(np.float32)
    y = rng.integers(0, 3, n)
    third = steps // 3
    for i, c in enumerate(y):
        x[i, int(c) * third:(int(c) + 1) * third, :2] += 1.0
    return x, y.astype(np.int64)


def lstm() -> ZooModel:
    """Input((30, 6)) -> LSTM(32) -> Dense(3): a sequence classifier for a Raspberry Pi."""
    k = _keras.keras()
    model = k.Sequential([k.Input((30, 6)), k.layers.LSTM(32, name="lstm"),
                          k.layers.Dense(3, activation="softmax", name="head")],
                         name="lstm_classifier")
    data = _split(*_sequences(480), test=96)
    model.compile(k.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=6)
    return ZooModel("lstm", model, data, refuses={"qat": "recurrent"})


def gru() -> ZooModel:
    k = _keras.keras()
    model = k.Sequential([k.Input((30, 6)), k.layers.GRU(24),
                          k.layers.Dense(3, activation="softmax")], name="gru_classifier")
    data = _split(*_sequences(480), test=96)
    model.compile(k.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=5)
    return ZooModel("gru", model, data, refuses={"qat": "recurrent", "int8": "GRU and SimpleRNN",
                                                  "int8-only": "GRU and SimpleRNN"})


def bidirectional() -> ZooModel:
    k = _keras.keras()
    model = k.Sequential([k.Input((30, 6)), k.layers.Bidirectional(k.layers.LSTM(16)),
                          k.layers.Dense(3, activation="softmax")], name="bilstm")
    data = _split(*_sequences(480), test=96)
    model.compile(k.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=5)
    return ZooModel("bidirectional", model, data, refuses={"qat": "recurrent"})


def conv1d_lstm() -> ZooModel:
    k = _keras.keras()
    layers = k.layers
    model = k.Sequential([k.Input((30, 6)), layers.Conv1D(16, 3, activation="relu"),
                          layers.MaxPooling1D(2), layers.LSTM(16),
                          layers.Dense(3, activation="softmax")], name="conv1d_lstm")
    data = _split(*_sequences(480), test=96)
    model.compile(k.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=5)
    return ZooModel("conv1d_lstm", model, data, refuses={"qat": "recurrent"})


def focal_tversky(y_true: Any, y_pred: Any) -> Any:
    """Focal Tversky loss: a custom Python loss function, as segmentation write-ups use."""
    tf = _keras.tf()
    y_true = tf.cast(y_true, y_pred.dtype)
    tp = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    fn = tf.reduce_sum(y_true * (1 - y_pred), axis=(1, 2, 3))
    fp = tf.reduce_sum((1 - y_true) * y_pred, axis=(1, 2, 3))
    tversky = (tp + 1.0) / (tp + 0.7 * fn + 0.3 * fp + 1.0)
    return tf.reduce_mean(tf.pow(1.0 - tversky, 0.75))


def iou(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Intersection over union of the masks thresholded at 0.5."""
    t, p = np.asarray(y_true) > 0.5, np.asarray(y_pred) > 0.5
    union = np.logical_or(t, p).sum()
    return float(np.logical_and(t, p).sum() / union) if union else 1.0


def _masks(n: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images with one bright square each; the mask is the square."""
    rng = _rng()
    x = rng.normal(0.2, 0.1, (n, size, size, 1)).astype(np.float32)
    y = np.zeros((n, size, size, 1), np.float32)
    for i in range(n):
        s = int(rng.integers(6, 14))
        r, c = rng.integers(0, size - s, 2)
        x[i, r:r + s, c:c + s] += 0.6
        y[i, r:r + s, c:c + s] = 1.0
    return x, y


def unet() -> ZooModel:
    """A small UNet compiled with a custom Python loss (focal Tversky), judged by IoU."""
    k = _keras.keras()
    layers = k.layers
    inputs = k.Input((32, 32, 1))
    c1 = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    p1 = layers.MaxPooling2D()(c1)
    c2 = layers.Conv2D(16, 3, padding="same", activation="relu")(p1)
    p2 = layers.MaxPooling2D()(c2)
    b = layers.Conv2D(32, 3, padding="same", activation="relu")(p2)
    u2 = layers.Conv2DTranspose(16, 2, strides=2, padding="same")(b)
    c3 = layers.Conv2D(16, 3, padding="same", activation="relu")(
        layers.Concatenate()([u2, c2]))
    u1 = layers.UpSampling2D()(c3)
    c4 = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.Concatenate()([u1, c1]))
    outputs = layers.Conv2D(1, 1, activation="sigmoid")(c4)
    model = k.Model(inputs, outputs, name="unet_tiny")
    data = _split(*_masks(320), test=64)
    model.compile(k.optimizers.Adam(3e-3), loss=focal_tversky)
    _fit(model, data, epochs=8, batch_size=16)
    return ZooModel("unet", model, data, metric=iou, metric_name="IoU")


def neg_mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return -float(np.mean(np.abs(np.asarray(y_true).reshape(len(y_true), -1)
                                 - np.asarray(y_pred).reshape(len(y_pred), -1))))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return -neg_mae(y_true, y_pred)


def regression() -> ZooModel:
    """A tabular regression MLP with a scalar output, judged by MAE (lower is better)."""
    k = _keras.keras()
    rng = _rng()
    x = rng.normal(0, 1, (1280, 12)).astype(np.float32)
    w = rng.normal(0, 1, 12).astype(np.float32)
    y = (np.tanh(x @ w / 3) * 4 + 0.5 * x[:, 0] ** 2).astype(np.float32)[:, None]
    model = k.Sequential([k.Input((12,)), k.layers.Dense(64, activation="relu"),
                          k.layers.Dense(64, activation="relu"), k.layers.Dense(1)],
                         name="regressor")
    data = _split(x, y, test=256)
    model.compile(k.optimizers.Adam(3e-3), "mse")
    _fit(model, data, epochs=15)
    return ZooModel("regression", model, data, metric=mae, metric_name="MAE",
                    greater_is_better=False)


class ChannelScale(_keras.keras().layers.Layer):
    """A custom layer with a weight of its own (tfmot cannot wrap it)."""

    def build(self, input_shape: Any) -> None:
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],),
                                     initializer="ones")

    def call(self, inputs: Any) -> Any:
        return inputs * self.scale


def custom_layers() -> ZooModel:
    """A CNN with a custom layer and a Lambda layer between tfmot-friendly layers."""
    k = _keras.keras()
    layers = k.layers
    inputs = k.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, activation="relu")(inputs)
    x = ChannelScale(name="channel_scale")(x)
    x = layers.Lambda(lambda t: t * 0.5, name="halve")(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = k.Model(inputs, outputs, name="custom_cnn")
    data = _split(*_images(384, 16, 3), test=96)
    model.compile(k.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=6)
    return ZooModel("custom_layers", model, data, qat_float=("channel_scale",))


def renamed() -> ZooModel:
    """A functional CNN whose layers were renamed with ``layer._name = ...`` after building
    (tf_keras's own clone_model then fails with a raw tf.nest error)."""
    k = _keras.keras()
    layers = k.layers
    inputs = k.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = k.Model(inputs, outputs)
    for layer, name in zip(model.layers[1:], ("stem", "pool", "features", "flat", "head"),
                           strict=True):
        layer._name = name
    data = _split(*_images(384, 16, 3), test=96)
    model.compile(k.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=4)
    return ZooModel("renamed", model, data)


def smoothed_crossentropy(y_true: Any, y_pred: Any) -> Any:
    """A custom loss written with Keras 3 ops (label smoothing by hand)."""
    import keras

    ops = keras.ops
    onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), 4) * 0.9 + 0.025
    return -ops.mean(ops.sum(onehot * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1))


def keras3() -> ZooModel:
    """A Keras 3 model (``import keras``, what TensorFlow installs): Conv-BN-ReLU, a depthwise
    conv on a residual add, compiled with Keras 3's Adam and a loss written in ``keras.ops``.
    tfmot cannot wrap it: the Workbench works on its verified tf_keras twin."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(_SEED % 2**31)
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=0.8)(x)
    x = layers.ReLU()(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Add()([x, layers.Activation("relu")(y)])
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="keras3_cnn")
    data = _split(*_images(384, 16, 3), test=96)
    model.compile(keras.optimizers.Adam(3e-3), loss=smoothed_crossentropy,
                  metrics=["accuracy"])
    _fit(model, data, epochs=6)
    return ZooModel("keras3", model, data)


def attention_keras3() -> ZooModel:
    """A Keras 3 transformer block as keras.io writes it: the residuals are operators
    (``LayerNormalization()(x + attention)``) and the pooling is ``keras.ops.mean``; these
    weightless operations run as themselves in the tf_keras twin."""
    import keras

    layers, ops = keras.layers, keras.ops
    keras.utils.set_random_seed(_SEED % 2**31)
    inputs = keras.Input((12, 6), name="sensor_window")
    x = layers.Dense(16, name="embed")(inputs)
    attention = layers.MultiHeadAttention(2, 8, name="attention")(x, x)
    x = layers.LayerNormalization(name="norm_1")(x + attention)
    ffn = layers.Dense(16, name="ffn_out")(layers.Dense(64, activation="relu", name="ffn_in")(x))
    x = layers.LayerNormalization(name="norm_2")(x + ffn)
    pooled = ops.mean(x, axis=1)
    last = x[:, -1]
    x = layers.Concatenate()([pooled, 0.5 * last])
    outputs = layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="attention_block")
    data = _split(*_sequences(384, steps=12), test=96)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=6)
    return ZooModel("attention_keras3", model, data, qat_float=("attention", "norm_1"))


def transfer_keras3() -> ZooModel:
    """Keras 3 transfer learning, the commonest edge classifier: a Keras application used as
    a layer (a nested backbone, ``weights=None`` here, ImageNet weights for users) under a new
    head. Its layers are inlined so that every technique reaches the backbone: the twin is
    the flat tf_keras MobileNetV2 (BatchNorm after conv, depthwise convs, residual adds)."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(_SEED % 2**31)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                          input_shape=(32, 32, 3))
    for layer in base.layers:  # its BatchNorm momentum (0.999) needs thousands of steps
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = 0.8
    inputs = keras.Input((32, 32, 3))
    x = layers.GlobalAveragePooling2D()(base(inputs))
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(4, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="transfer_keras3")
    data = _split(*_images(320, 32, 3), test=64)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=4)
    return ZooModel("transfer_keras3", model, data)


def transfer_tf_keras() -> ZooModel:
    """tf_keras transfer learning with models as layers: a functional backbone (Conv-BN-ReLU,
    a depthwise residual) and a Sequential head. tfmot leaves nested models whole; they are
    inlined, so pruning reaches the backbone."""
    k = _keras.keras()
    layers = k.layers
    image = k.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(image)
    x = layers.BatchNormalization(momentum=0.8, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.Add(name="skip")([x, y])
    x = layers.Conv2D(32, 3, activation="relu", name="expand")(x)
    backbone = k.Model(image, x, name="backbone")
    head = k.Sequential([layers.GlobalAveragePooling2D(), layers.Dense(32, activation="relu"),
                         layers.Dense(4, activation="softmax")], name="classifier")
    inputs = k.Input((16, 16, 3))
    model = k.Model(inputs, head(backbone(inputs)), name="transfer_tf_keras")
    data = _split(*_images(384, 16, 3), test=96)
    model.compile(k.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    _fit(model, data, epochs=6)
    return ZooModel("transfer_tf_keras", model, data)


def lstm_autoencoder_keras3() -> ZooModel:
    """An LSTM encoder-decoder written in Keras 3 with the functional API (LSTM ->
    RepeatVector -> LSTM(return_sequences) -> TimeDistributed(Dense)), reconstructing sensor
    windows; judged by MAE. Its twin's fused LSTMs are what converts."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(_SEED % 2**31)
    steps, channels = 12, 4
    rng = _rng()
    t = np.linspace(0, 2 * np.pi, steps)
    x = np.sin(rng.uniform(0.5, 2.0, (320, 1, channels)) * t[None, :, None]
               + rng.uniform(0, 2 * np.pi, (320, 1, 1)))
    x = (x + rng.normal(0, 0.05, x.shape)).astype(np.float32)
    inputs = keras.Input((steps, channels))
    h = layers.LSTM(32, name="encoder")(inputs)
    h = layers.RepeatVector(steps, name="repeat")(h)
    h = layers.LSTM(32, return_sequences=True, name="decoder")(h)
    outputs = layers.TimeDistributed(layers.Dense(channels), name="reconstruct")(h)
    model = keras.Model(inputs, outputs, name="lstm_autoencoder")
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    data = _split(x, x, test=64)
    _fit(model, data, epochs=3)
    return ZooModel("lstm_autoencoder_keras3", model, data, refuses={"qat": "recurrent"})


FAMILIES: dict[str, Callable[[], ZooModel]] = {
    "transfer_keras3": transfer_keras3, "residual": residual, "lstm": lstm, "gru": gru,
    "bidirectional": bidirectional, "conv1d_lstm": conv1d_lstm, "unet": unet,
    "regression": regression, "custom_layers": custom_layers, "renamed": renamed,
    "keras3": keras3, "attention_keras3": attention_keras3,
    "transfer_tf_keras": transfer_tf_keras, "lstm_autoencoder_keras3": lstm_autoencoder_keras3,
}
