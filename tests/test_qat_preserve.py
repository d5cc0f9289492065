"""What a technique must keep, measured in the .tflite it makes.

QAT on a pruned and/or clustered base (PQAT, CQAT, PCQAT) keeps the base's zeros and its
clusters in the int8 kernels; ``keep_float`` keeps a Conv2DTranspose's TRANSPOSE_CONV float
(float32 weights and output) as it keeps a Conv2D, or refuses with the reason.

The demo Workbench gets 256 training samples (one epoch is a few seconds); the UNet is tiny.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import op_input_types

import compresswidgets as cw
from compresswidgets import _keras
from compresswidgets import tflite as tfl
from compresswidgets.techniques import quantization

#: The demo's kernels that the default selection prunes and clusters (conv2d and dense_1
#: are under 1,024 weights: left as they are, without zeros).
SELECTED = ("conv2d_1", "conv2d_2", "dense")
CLUSTERS = 16


# --------------------------------------------------------------------------- measuring
def int8_kernels(blob: bytes) -> dict[str, np.ndarray]:
    """The int8 kernels (conv and dense weights) of a .tflite by layer name, output channel
    first, as the int8 values the interpreter computes with."""
    it = tfl.interpreter(blob)
    it.allocate_tensors()
    tensors = it.get_tensor_details()
    found = {}
    for op in it._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        weights = tensors[op["inputs"][1]]
        if np.dtype(weights["dtype"]) != np.int8:
            continue
        layer = weights["name"].split(";")[0].split("/")[-2].removeprefix("quant_")
        found[layer] = np.array(it.get_tensor(weights["index"]))
    return found


def zeros(kernel: np.ndarray) -> float:
    return float(np.mean(kernel == 0))


def most_distinct(kernel: np.ndarray) -> int:
    """The most distinct int8 values in one output channel: a clustered kernel has at most
    its clusters in each (per-channel int8 gives each channel its own scale, so the union
    over channels can hold more)."""
    return max(int(np.unique(channel).size) for channel in kernel.reshape(len(kernel), -1))


def float_sparsity(variant: cw.Variant, layer: str) -> float:
    return next(r["sparsity"] for r in variant.layers if r["layer"] == layer)


# --------------------------------------------------------------------------- QAT
@pytest.fixture(scope="module")
def wb(demo):
    model, data = demo
    x_train, y_train, x_test, y_test = data
    return cw.Workbench(model, (x_train[:256], y_train[:256], x_test, y_test))


@pytest.fixture(scope="module")
def pruned(wb):
    return wb.prune(0.8, epochs=1, seed=0)


@pytest.fixture(scope="module")
def pruned_clustered(wb, pruned):
    return wb.cluster(CLUSTERS, preserve_sparsity=True, epochs=0, base=pruned)


def test_pqat_keeps_the_sparsity(wb, pruned):
    q = wb.quantize("qat", epochs=1, base=pruned, seed=0)
    assert q.recipe["scheme"] == "pqat"
    assert q.sparsity == pytest.approx(pruned.sparsity, abs=0.02)
    kernels = int8_kernels(q.tflite)
    for layer in SELECTED:
        assert zeros(kernels[layer]) >= float_sparsity(pruned, layer) - 0.02, layer
    assert not [n for n in q.notes if n.startswith("QAT")]


def test_cqat_keeps_the_clusters(wb):
    clustered = wb.cluster(CLUSTERS, epochs=0)
    q = wb.quantize("qat", epochs=1, base=clustered, seed=0)
    assert q.recipe["scheme"] == "cqat"
    distinct = {r["layer"]: r["distinct"] for r in q.layers}
    kernels = int8_kernels(q.tflite)
    for layer in SELECTED:
        assert distinct[layer] <= CLUSTERS, layer          # the QAT model's float kernel
        assert most_distinct(kernels[layer]) <= CLUSTERS, layer   # and the .tflite's int8
    assert not [n for n in q.notes if n.startswith("QAT")]


def test_pcqat_keeps_the_sparsity_and_the_clusters(wb, pruned_clustered, keras, demo,
                                                   tmp_path, monkeypatch):
    base = pruned_clustered
    q = wb.quantize("qat", epochs=1, base=base, seed=0)
    assert q.recipe["scheme"] == "pcqat"
    assert base.sparsity > 0.7
    assert q.sparsity == pytest.approx(base.sparsity, abs=0.02)
    kernels = int8_kernels(q.tflite)
    for layer in SELECTED:
        assert zeros(kernels[layer]) >= float_sparsity(base, layer) - 0.02, layer
        assert most_distinct(kernels[layer]) <= CLUSTERS, layer
    assert not [n for n in q.notes if n.startswith("QAT")]

    # the variant's code does the same: its .tflite keeps the zeros too
    monkeypatch.chdir(tmp_path)  # the code writes model.tflite where it runs
    model, data = demo
    users_model = keras.models.clone_model(model)
    users_model.set_weights(model.get_weights())
    namespace = {"model": users_model, "x_train": data.x_train[:256],
                 "y_train": data.y_train[:256], "x_test": data.x_test, "y_test": data.y_test}
    exec(compile(q.code, "code of the PCQAT variant", "exec"), namespace)
    theirs = int8_kernels(namespace["tflite_model"])
    for layer in SELECTED:
        assert zeros(theirs[layer]) >= float_sparsity(base, layer) - 0.02, layer


def test_pcqat_gives_each_layer_its_own_weight_quantizer(wb, pruned_clustered):
    """tfmot 0.8.1 shares one quantizer between all Conv2D layers: conv2d (not pruned, no
    zeros) switched sparsity preservation off for conv2d_1 and conv2d_2 through it."""
    model = pruned_clustered.keras_model
    params = quantization.validate(
        model, wb.data, mode="qat", representative_samples=100, epochs=1, layers=None,
        batch_size=32, lineage=["original", "prune", "cluster"])
    qat = quantization.build_qat(model, params)
    quantizers = {layer.layer.name: layer.quantize_config.weight_quantizer
                  for layer in qat.layers if hasattr(layer, "quantize_config")
                  and hasattr(layer.quantize_config, "weight_quantizer")}
    assert len({id(q) for q in quantizers.values()}) == len(quantizers)
    assert all(quantizers[n].preserve_sparsity for n in SELECTED)
    assert not quantizers["conv2d"].preserve_sparsity  # no zeros: plain CQAT there


def test_a_qat_shortfall_is_a_note():
    # (sparsity, distinct in the kernel, most distinct in an output channel)
    before = {"conv2d_1": (0.8, 16, 16), "conv2d": (0.0, 576, 9), "dense": (0.8, 16, 14)}
    after = {"conv2d_1": (0.0, 16, 16), "conv2d": (0.0, 576, 9), "dense": (0.79, 90, 40)}
    notes = quantization.check(before, after, "pcqat")
    assert len(notes) == 2
    assert "'conv2d_1' at 0.0% sparsity, where its base had 80.0%" in notes[0]
    assert "left 40 distinct values in an output channel of layer 'dense'" in notes[1]
    assert quantization.check(before, after, "pqat") == [notes[0].replace("PCQAT", "PQAT")]
    assert quantization.check(before, after, "default") == []


# --------------------------------------------------------------------------- keep_float
@pytest.fixture(scope="module")
def unet_wb():
    """A tiny UNet (two Conv2DTranspose up-steps), one epoch on noisy squares."""
    k = _keras.keras()
    k.utils.set_random_seed(3)
    layers = k.layers
    rng = np.random.default_rng(3)
    x = rng.normal(0.2, 0.1, (160, 16, 16, 1)).astype(np.float32)
    y = np.zeros_like(x)
    for i in range(len(x)):
        r, c = rng.integers(0, 10, 2)
        x[i, r:r + 6, c:c + 6] += 0.6
        y[i, r:r + 6, c:c + 6] = 1.0
    inputs = k.Input((16, 16, 1))
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu", name="down1")(inputs)
    c2 = layers.Conv2D(8, 3, padding="same", activation="relu", name="down2")(
        layers.MaxPooling2D(name="pool1")(c1))
    b = layers.Conv2D(8, 3, padding="same", activation="relu", name="bottom")(
        layers.MaxPooling2D(name="pool2")(c2))
    u2 = layers.Conv2DTranspose(8, 2, strides=2, padding="same", name="up2")(b)
    c3 = layers.Conv2D(8, 3, padding="same", activation="relu", name="mix2")(
        layers.Concatenate(name="cat2")([u2, c2]))
    u1 = layers.Conv2DTranspose(4, 2, strides=2, padding="same", name="up1")(c3)
    c4 = layers.Conv2D(4, 3, padding="same", activation="relu", name="mix1")(
        layers.Concatenate(name="cat1")([u1, c1]))
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(c4)
    model = k.Model(inputs, outputs, name="unet_tiny")
    model.compile(k.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x[32:], y[32:], epochs=1, batch_size=16, verbose=0)
    return cw.Workbench(model, (x[32:], y[32:], x[:32], y[:32]))


@pytest.fixture(scope="module")
def unet_int8(unet_wb):
    return unet_wb.quantize("int8", representative_samples=32)


def _kinds(blob: bytes) -> dict[str, tuple[str, set[str]]]:
    """Output tensor -> (op, dtypes of its inputs and outputs) of each conv op."""
    it = tfl.interpreter(blob)
    it.allocate_tensors()
    tensors = it.get_tensor_details()
    out = {}
    for op in it._get_ops_details():
        if op["op_name"] in ("CONV_2D", "TRANSPOSE_CONV"):
            used = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
            out[tensors[op["outputs"][0]]["name"]] = (
                op["op_name"], {np.dtype(tensors[i]["dtype"]).name for i in used})
    return out


def _signature(blob: bytes) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((op, tuple(sorted(dtypes))) for op, dtypes in _kinds(blob).values())


def test_keep_float_keeps_conv2d_transpose_float(unet_wb, unet_int8, tmp_path, monkeypatch):
    wb = unet_wb
    q = wb.quantize("int8", keep_float=["up1", "up2"], representative_samples=32)
    kinds = _kinds(q.tflite)
    assert sorted(op for op, _ in kinds.values()) == ["CONV_2D"] * 6 + ["TRANSPOSE_CONV"] * 2
    for tensor, (op, dtypes) in kinds.items():
        if op == "TRANSPOSE_CONV":  # float weights, input and output (int32: its shape)
            assert dtypes == {"float32", "int32"}, tensor
            assert "/up1/" in tensor or "/up2/" in tensor
        else:  # the rest is int8 (int32 biases)
            assert dtypes == {"int8", "int32"}, tensor
    names = [layer.name for layer in wb.original.keras_model.layers]
    assert tfl.quantized_ops(q.tflite, "up1", names) == []
    assert tfl.quantized_ops(q.tflite, "up2", names) == []
    assert q.accuracy == pytest.approx(unet_int8.accuracy, abs=0.02)
    assert {e.layer for e in q.layer_errors if e.op == "TRANSPOSE_CONV"} == set()

    # the variant's code makes the same .tflite: the same ops, tensor types and size
    monkeypatch.chdir(tmp_path)
    model = wb.original.keras_model
    namespace = {"model": model, "x_train": wb.data.x_train, "y_train": wb.data.y_train}
    exec(compile(q.code, "code of the keep-float variant", "exec"), namespace)
    made = namespace["tflite_model"]
    assert _signature(made) == _signature(q.tflite)
    assert sorted(map(sorted, op_input_types(made).values())) == sorted(
        map(sorted, op_input_types(q.tflite).values()))
    assert abs(len(made) - q.size_bytes) <= 0.02 * q.size_bytes


def test_keep_float_of_one_conv2d_transpose_of_two_is_refused(unet_wb):
    wb = unet_wb
    before = len(wb.variants)
    with pytest.raises(ValueError) as caught:
        wb.quantize("int8", keep_float=["up2"], representative_samples=32)
    message = str(caught.value)
    assert "keep_float=['up2']" in message and "TRANSPOSE_CONV" in message  # what
    assert "'up1'" in message and "by its name" in message                   # why
    assert "add 'up1' to keep_float" in message                              # the fix
    assert len(wb.variants) == before


def test_a_kept_layer_left_quantized_is_named(unet_wb, unet_int8):
    """The check every keep_float conversion passes: an int8 TRANSPOSE_CONV is found and
    refused with the layer, the op and the fix."""
    wb = unet_wb
    blob = unet_int8.tflite
    names = [layer.name for layer in wb.original.keras_model.layers]
    found = tfl.quantized_ops(blob, "up1", names)
    assert [op for op, _ in found] == ["TRANSPOSE_CONV"]
    assert tfl.quantized_ops(blob, "pool1", names)  # an int8 MAX_POOL_2D is quantized too
    with pytest.raises(ValueError) as caught:
        tfl.check_kept_float(blob, ["up1"], names)
    message = str(caught.value)
    assert "layer 'up1'" in message and "TRANSPOSE_CONV" in message
    assert "float32 weights and outputs" in message and "Leave 'up1' out" in message
