"""The compression engine on the demo model: real sparsity, clusters, conversions, code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _helpers import HOSTILE, weights_bytes

import compresswidgets as cw
from compresswidgets import tflite as tfl
from compresswidgets.techniques.pruning import achieved

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

KERNELS = ["conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"]


def kernel(model, name):
    layer = model.get_layer(name)
    return layer.kernel.numpy()


@pytest.fixture(scope="module")
def wb(demo):
    model, data = demo
    return cw.Workbench(model, data)


@pytest.fixture(scope="module")
def pruned(wb):
    return wb.prune(target_sparsity=0.8, schedule="polynomial", epochs=2, layers=KERNELS)


@pytest.fixture(scope="module")
def pruned_clustered(wb, pruned):
    return wb.cluster(clusters=16, init="kmeans++", preserve_sparsity=True, epochs=1,
                      layers=KERNELS, base=pruned)


def test_original_is_an_untouched_clone(wb, demo):
    model, _ = demo
    assert wb.original.keras_model is not model
    assert weights_bytes(wb.original.keras_model) == weights_bytes(model)
    assert wb.original.accuracy >= 0.95
    assert wb.variants[0] is wb.original and wb.original.parent is None


def test_polynomial_pruning_reaches_the_target_in_every_layer(wb, pruned):
    sparsity = achieved(pruned.keras_model, tuple(KERNELS))
    assert set(sparsity) == set(KERNELS)
    for name, value in sparsity.items():
        assert abs(value - 0.8) <= 0.01, (name, value)
    assert pruned.notes == ()
    assert pruned.recipe["technique"] == "prune" and pruned.recipe["parent"] == "original"
    assert pruned.recipe["target_sparsity"] == 0.8 and pruned.recipe["epochs"] == 2
    assert pruned.sparsity == pytest.approx(0.8, abs=0.01)
    # no tfmot wrapper is left behind
    assert [type(layer).__name__ for layer in pruned.keras_model.layers] == [
        "Conv2D", "Conv2D", "Conv2D", "Flatten", "Dense", "Dense"]
    # sparsity is what gzip can squeeze
    assert pruned.gzipped_bytes < 0.45 * wb.original.gzipped_bytes
    # every kernel at 80 %, the two small ones too, costs points (measured: 0.75 to 0.89
    # from 0.97, between machines); the default selection costs about 1 (its own test)
    assert wb.original.accuracy - 0.25 <= pruned.accuracy < wb.original.accuracy
    assert pruned.accuracy == pytest.approx(pruned.keras_accuracy, abs=0.01)  # .tflite ~ Keras


def test_the_default_selection_leaves_small_layers_out_and_says_so(wb):
    v = wb.prune(target_sparsity=0.8, epochs=0)
    assert v.recipe["layers"] == ["conv2d_1", "conv2d_2", "dense"]
    assert float(np.mean(kernel(v.keras_model, "conv2d") == 0)) == 0.0
    assert any("Left out by default (under 1,024 weights): conv2d (640), dense_1 (330)" in n
               for n in v.notes), v.notes
    c = wb.cluster(clusters=8, epochs=0)
    assert c.recipe["layers"] == v.recipe["layers"]


def test_constant_schedule_and_layer_selection(wb):
    v = wb.prune(target_sparsity=0.5, schedule="constant", epochs=1, layers=["dense"])
    assert abs(float(np.mean(kernel(v.keras_model, "dense") == 0)) - 0.5) <= 0.01
    assert float(np.mean(kernel(v.keras_model, "conv2d_1") == 0)) == 0.0
    assert v.recipe["layers"] == ["dense"]


def test_one_shot_pruning_zeroes_the_smallest_magnitudes(wb):
    v = wb.prune(target_sparsity=0.6, epochs=0, layers=["conv2d_1", "dense"])
    for name in ("conv2d_1", "dense"):
        before, after = kernel(wb.original.keras_model, name), kernel(v.keras_model, name)
        zeroed = after == 0
        assert abs(zeroed.mean() - 0.6) <= 0.01
        np.testing.assert_array_equal(after[~zeroed], before[~zeroed])  # no training happened
        assert np.abs(before[zeroed]).max() <= np.abs(before[~zeroed]).min()


def test_two_four_structure(wb):
    v = wb.prune(target_sparsity=0.5, structure="2:4", epochs=1, layers=["dense"])
    k = kernel(v.keras_model, "dense")  # (128 in, 32 out): groups of 4 along the inputs
    groups = (k.T.reshape(32, -1, 4) == 0).sum(axis=-1)
    assert groups.min() >= 2
    assert abs(float(np.mean(k == 0)) - 0.5) <= 0.01


def test_clustering_gives_at_most_n_distinct_values(wb):
    v = wb.cluster(clusters=8, init="linear", epochs=1, layers=KERNELS)
    for name in KERNELS:
        assert len(np.unique(kernel(v.keras_model, name))) <= 8
    assert [type(layer).__name__ for layer in v.keras_model.layers][0] == "Conv2D"
    assert v.gzipped_bytes < 0.5 * wb.original.gzipped_bytes


@pytest.mark.parametrize("init", ["random", "density-based", "kmeans++"])
def test_every_centroid_init_without_fine_tuning(wb, init):
    v = wb.cluster(clusters=4, init=init, epochs=0, layers=["dense"])
    assert len(np.unique(kernel(v.keras_model, "dense"))) <= 4
    assert len(np.unique(kernel(v.keras_model, "conv2d_1"))) > 1000  # untouched


def test_sparsity_preserving_clustering_on_a_pruned_base(pruned, pruned_clustered):
    for name in KERNELS:
        k = kernel(pruned_clustered.keras_model, name)
        assert len(np.unique(k)) <= 17
        before = float(np.mean(kernel(pruned.keras_model, name) == 0))
        assert float(np.mean(k == 0)) >= before - 1e-6
    assert all(2 <= r["distinct"] <= 16 for r in pruned_clustered.layers)
    assert pruned_clustered.lineage == [pruned_clustered.parent.parent, pruned,
                                        pruned_clustered]


@pytest.mark.parametrize("mode,dtype", [("dynamic", np.float32), ("float16", np.float32),
                                        ("int8", np.float32), ("int8-only", np.int8),
                                        ("int16x8", np.float32)])
def test_post_training_modes_convert_and_run(wb, mode, dtype):
    q = wb.quantize(mode)
    assert q.keras_model is None and q.is_quantized
    assert tfl.input_dtype(q.tflite) == dtype
    assert q.size_bytes < wb.original.size_bytes
    assert q.accuracy >= wb.original.accuracy - (0.02 if mode in ("dynamic", "float16") else 0.05)
    errors = {e.layer: e for e in q.quantization_error}
    assert "dense" in errors and "conv2d_1" in errors
    if mode == "float16":
        assert errors["dense"].tflite_dtype == "float16" and errors["dense"].snr_db > 60
    else:
        assert errors["dense"].tflite_dtype == "int8" and 25 < errors["dense"].snr_db < 70
    assert q.layers[0]["layer"] == "conv2d" and "snr_db" in q.layers[0]


def test_size_ratios_follow_the_weight_format(wb):
    by_mode = {v.recipe.get("mode"): v for v in wb.variants if v.is_quantized}
    float_size = wb.original.size_bytes
    assert by_mode["dynamic"].size_bytes < 0.4 * float_size
    assert 0.45 * float_size < by_mode["float16"].size_bytes < 0.6 * float_size


def test_qat_stays_close_to_the_float_model(wb):
    q = wb.quantize("qat", epochs=1)
    assert q.recipe["scheme"] == "default"
    assert q.accuracy >= wb.original.accuracy - 0.02
    assert tfl.input_dtype(q.tflite) == np.float32
    assert all(e.tflite_dtype == "int8" for e in q.quantization_error)
    # per layer under the names of the model, not of tfmot's wrappers (quant_dense)
    rows = {r["layer"]: r for r in q.layers}
    assert set(rows) == {r["layer"] for r in wb.original.layers}
    assert all(r["tflite_dtype"] == "int8" and r["snr_db"] > 20 for r in rows.values())
    assert rows["dense"]["class"] == "Dense"


def test_pcqat_keeps_sparsity_and_clusters(wb, pruned_clustered):
    q = wb.quantize("qat", base=pruned_clustered, epochs=1)
    assert q.recipe["scheme"] == "pcqat"
    for row in q.layers:
        assert row["sparsity"] >= 0.79, row
        assert row["distinct"] <= 17, row
    assert q.gzipped_bytes < 0.2 * wb.original.size_bytes


def test_pqat_scheme_on_a_pruned_base(wb, pruned):
    q = wb.quantize("qat", base=pruned, epochs=1)
    assert q.recipe["scheme"] == "pqat"
    assert min(row["sparsity"] for row in q.layers) >= 0.79


def test_variants_keep_creation_order_and_parents(wb, pruned, pruned_clustered):
    names = [v.name for v in wb.variants]
    assert names.index(pruned.name) < names.index(pruned_clustered.name)
    assert pruned_clustered.name == "prune 80% > cluster 16"
    assert pruned_clustered.parent is pruned and pruned.parent is wb.original
    assert [v.name for v in pruned_clustered.lineage] == ["original", "prune 80%",
                                                          "prune 80% > cluster 16"]
    assert wb[pruned.name] is pruned
    # the same recipe again gets a name of its own; the first keeps its own
    again = wb.quantize("float16", base=pruned_clustered)
    twice = wb.quantize("float16", base=pruned_clustered)
    assert (again.name, twice.name) == ("prune 80% > cluster 16 > float16",
                                       "prune 80% > cluster 16 > float16 #2")
    assert wb[again.name] is again and wb[twice.name] is twice
    assert [v.name for v in wb.variants][-2:] == [again.name, twice.name]
    with pytest.raises(KeyError, match="No variant named 'nope'"):
        wb["nope"]


def test_observers_hear_of_every_variant(wb, demo):
    heard, other = [], []
    wb.observe(heard.append)
    fresh = cw.Workbench(*demo)
    fresh.observe(other.append)
    made = wb.quantize("float16")
    assert [(c.added, c.workbench, c.variants) for c in heard] == [(made, wb, wb.variants)]
    assert other == []  # another Workbench's observers hear nothing

    class Panel:  # a bound method is held weakly: a panel that is gone is not called
        calls = 0

        def on_change(self, change):
            Panel.calls += 1

    panel = Panel()
    wb.observe(panel.on_change)
    del panel
    wb.unobserve(heard.append)

    def broken(change):
        raise RuntimeError("observer bug")

    wb.observe(broken)
    with pytest.warns(RuntimeWarning, match="observer bug.*was added anyway"):
        kept = wb.quantize("float16")
    assert wb.variants[-1] is kept and len(heard) == 1 and Panel.calls == 0
    wb.unobserve(broken)
    with pytest.raises(TypeError, match="takes a callable"):
        wb.observe("refresh")


def test_a_lone_panel_follows_the_workbench(wb):
    """Nobody refreshes it by hand: a variant made in code is offered as a base at once."""
    panel = cw.ClusteringPanel(wb)
    made = wb.prune(0.5, epochs=0, name="made in code")
    assert made.name in panel._base.options
    panel.base = made.name
    assert panel.preserve_sparsity  # a pruned base: its zeros are kept by default


def test_compare_is_one_call(wb, pruned):
    rows = wb.compare([wb.original, pruned])
    assert [r["name"] for r in rows] == ["original", pruned.name]
    assert rows[0]["accuracy_delta"] == 0.0 and rows[0]["size_ratio"] == 1.0
    assert rows[1]["gzipped_ratio"] > 2.5
    assert "gzipped" in str(rows)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            rows.to_dataframe()
    else:
        assert list(rows.to_dataframe()["name"]) == ["original", pruned.name]


def test_save_and_load(wb, pruned_clustered, tmp_path):
    q = wb.quantize("dynamic", base=pruned_clustered, name=f"../{HOSTILE} final")
    path = q.save(tmp_path / "export")
    assert path.parent == tmp_path / "export"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "img_src_x_onerror_alert_1_final.json", "img_src_x_onerror_alert_1_final.tflite"]
    document = json.loads(path.read_text())
    assert document["recipe"]["mode"] == "dynamic"
    assert [step["technique"] for step in document["lineage"]] == [
        "original", "prune", "cluster", "quantize"]
    loaded = cw.Variant.load(path)
    assert loaded.name == q.name and loaded.tflite == q.tflite
    assert loaded.accuracy == q.accuracy and loaded.gzipped_bytes == q.gzipped_bytes
    assert loaded.code == q.code
    assert [r["distinct"] for r in loaded.layers] == [r["distinct"] for r in q.layers]
    assert cw.Variant.load(tmp_path / "export").name == q.name


def test_code_reproduces_the_variant_in_a_fresh_namespace(pruned_clustered, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)  # the code writes model.tflite where it runs
    namespace: dict = {}
    exec(compile(pruned_clustered.code, "variant_code", "exec"), namespace)
    made, ours = namespace["model"], pruned_clustered.keras_model
    assert [type(layer).__name__ for layer in made.layers] == [
        type(layer).__name__ for layer in ours.layers]
    assert [w.shape for w in made.weights] == [w.shape for w in ours.weights]
    for name in KERNELS:
        k = kernel(made, name)
        assert abs(float(np.mean(k == 0)) - float(np.mean(kernel(ours, name) == 0))) <= 0.01
        assert len(np.unique(k)) <= 17
    assert isinstance(namespace["tflite_model"], bytes)


def test_ptq_code_reproduces_the_input_type(wb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the code writes model.tflite where it runs
    q = next(v for v in wb.variants if v.recipe.get("mode") == "int8-only")
    namespace: dict = {}
    exec(compile(q.code, "variant_code", "exec"), namespace)
    assert tfl.input_dtype(namespace["tflite_model"]) == np.int8
    assert abs(len(namespace["tflite_model"]) - q.size_bytes) < 0.05 * q.size_bytes
