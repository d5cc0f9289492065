"""A variant's code is the code that makes it: executed in a fresh namespace, for every converter
mode, pruning schedule and structure, centroid initialisation and QAT scheme, it gives a
.tflite with the variant's ops, tensor types, input type and size, a model with the variant's
sparsity or clusters, and an accuracy within fine-tuning noise of the variant's.

The Workbench gets 256 training samples of the demo data (so fine-tunes are quick) as a plain
tuple, so its code starts from ``model`` and ``x_train, ...`` that the test provides.
"""

from __future__ import annotations

import numpy as np
import pytest

import compresswidgets as cw
from compresswidgets import _converter
from compresswidgets import tflite as tfl
from compresswidgets.techniques import clustering, quantization
from compresswidgets.techniques._common import kernel_of

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

#: id -> (base, method, arguments). Every converter mode and clustering init is here by
#: construction (below), so a mode added to the table gets its case.
RECIPES: dict[str, tuple[str | None, str, dict]] = {
    **{f"ptq-{mode}": (None, "quantize", {"mode": mode, "representative_samples": 32})
       for mode in quantization.MODES if mode != "qat"},
    "prune-polynomial": (None, "prune", {"target_sparsity": 0.6, "epochs": 1}),
    "prune-constant": (None, "prune", {"target_sparsity": 0.6, "schedule": "constant",
                                       "epochs": 1}),
    "prune-2:4": (None, "prune", {"target_sparsity": 0.5, "structure": "2:4", "epochs": 1}),
    "prune-per-layer": (None, "prune", {"target_sparsity": {"conv2d_1": 0.9, "dense": 0.5},
                                        "epochs": 1}),
    "cluster-per-layer": (None, "cluster", {"clusters": {"conv2d_1": 16, "dense": 4},
                                            "epochs": 0}),
    **{f"cluster-{init}": (None, "cluster", {"clusters": 8, "init": init, "epochs": 0})
       for init in clustering.INITS},
    "cluster-keeping-zeros": ("pruned", "cluster", {"clusters": 8, "preserve_sparsity": True,
                                                    "epochs": 0}),
    "qat-default": (None, "quantize", {"mode": "qat", "epochs": 1}),
    "qat-pqat": ("pruned", "quantize", {"mode": "qat", "epochs": 1}),
    "qat-cqat": ("clustered", "quantize", {"mode": "qat", "epochs": 1}),
    "qat-pcqat": ("pruned_clustered", "quantize", {"mode": "qat", "epochs": 1}),
    "int8-keep-float": (None, "quantize", {"mode": "int8", "representative_samples": 32,
                                           "keep_float": ["conv2d", "dense_1"]}),
    "int8-after-prune-and-cluster": ("pruned_clustered", "quantize",
                                     {"mode": "int8", "representative_samples": 32}),
}


def test_every_mode_and_init_has_a_case():
    modes = {args["mode"] for _, method, args in RECIPES.values() if method == "quantize"}
    assert modes == set(quantization.MODES) == set(_converter.MODES) - {"float32"}
    assert {args.get("init") for _, m, args in RECIPES.values() if m == "cluster"} >= set(
        clustering.INITS)


@pytest.fixture(scope="module")
def small(demo):
    model, data = demo
    x_train, y_train, x_test, y_test = data
    return model, (x_train[:256], y_train[:256], x_test, y_test)


@pytest.fixture(scope="module")
def bases(small):
    model, data = small
    wb = cw.Workbench(model, data)
    made: dict[str, cw.Variant] = {}

    def get(name: str | None) -> cw.Variant:
        if name is None:
            return wb.original
        if name not in made:
            if name == "pruned":
                made[name] = wb.prune(0.6, epochs=1)
            elif name == "clustered":
                made[name] = wb.cluster(8, epochs=0)
            else:
                made[name] = wb.cluster(8, preserve_sparsity=True, epochs=0, base=get("pruned"))
        return made[name]

    return wb, get


def _tensor_types(blob: bytes) -> set[str]:
    return {np.dtype(t["dtype"]).name for t in tfl.interpreter(blob).get_tensor_details()}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_the_code_makes_the_variant(recipe, small, bases, keras, tmp_path, monkeypatch):
    model, (x_train, y_train, x_test, y_test) = small
    wb, get = bases
    base, method, args = RECIPES[recipe]
    v = getattr(wb, method)(base=get(base), **args)

    monkeypatch.chdir(tmp_path)  # the code writes model.tflite where it runs
    users_model = keras.models.clone_model(model)
    users_model.set_weights(model.get_weights())
    namespace = {"model": users_model, "x_train": x_train, "y_train": y_train,
                 "x_test": x_test, "y_test": y_test}
    exec(compile(v.code, f"code of {v.name}", "exec"), namespace)
    made = namespace["tflite_model"]
    assert (tmp_path / "model.tflite").read_bytes() == made

    # the converter settings: the same ops, tensor types, input type and (within names) size
    assert set(tfl.op_names(made)) == set(tfl.op_names(v.tflite)), recipe
    assert _tensor_types(made) == _tensor_types(v.tflite), recipe
    assert tfl.input_dtype(made) == tfl.input_dtype(v.tflite)
    assert abs(len(made) - v.size_bytes) <= 0.05 * v.size_bytes, (len(made), v.size_bytes)
    # fine-tuning is not seeded in the code: one epoch on 256 samples moves a few points;
    # random centroids without fine-tuning are a draw (measured: 0.62 to 0.89)
    if args.get("init") != "random":
        assert tfl.evaluate(made, x_test, y_test) == pytest.approx(v.accuracy, abs=0.06)

    # the weights: the variant's sparsity and clusters, layer by layer
    if v.is_quantized:
        return
    ours, theirs = v.keras_model, namespace["model"]
    assert [type(layer).__name__ for layer in theirs.layers] == [
        type(layer).__name__ for layer in ours.layers]
    for name in v.recipe["layers"]:
        k, mine = kernel_of(theirs.get_layer(name)).numpy(), kernel_of(ours.get_layer(name))
        assert float(np.mean(k == 0)) == pytest.approx(float(np.mean(mine.numpy() == 0)),
                                                       abs=0.02), name
        if method == "cluster":
            asked = args["clusters"]
            asked = asked[name] if isinstance(asked, dict) else asked
            assert np.unique(k).size <= asked + bool(args.get("preserve_sparsity"))
