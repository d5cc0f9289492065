"""The bad-input matrix: every kind of wrong input, everywhere a user can give it.

Each case is one call that must be refused. For every case the test asserts the type of
the error, that its message says what was passed and what is expected (each given as a
piece of text the message must contain), and that nothing was lost: the Workbench holds
exactly the variants it held before and the user's model has the same weights, byte for
byte. Panel cases also find the message in the panel's error box (or in the refused trait's
``TraitError``) and use the panel again afterwards.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import traitlets
from _helpers import weights_bytes

import compresswidgets as cw

NAN, INF = float("nan"), float("inf")


@dataclass
class Case:
    id: str
    call: Any  # (ctx) -> None; must raise
    error: type[BaseException]
    said: tuple[str, ...]  # what was passed, what is expected (pieces of the message)
    panel: str = ""  # a panel case: the attribute of ctx whose error box holds the message
    extra: dict[str, Any] = field(default_factory=dict)


class Ctx:
    """The demo model, its data, a Workbench with one quantized variant, and panels."""

    def __init__(self, demo, tmp: Path) -> None:
        self.model, self.data = demo
        self.tmp = tmp
        self.wb = cw.Workbench(self.model, self.data)
        self.quantized = self.wb.quantize("dynamic")
        self.prune_panel = cw.PruningPanel(self.wb)
        self.cluster_panel = cw.ClusteringPanel(self.wb)
        self.quantize_panel = cw.QuantizationPanel(self.wb)
        self.bench_panel = cw.BenchmarkPanel(self.wb)

    def data_with(self, **parts) -> tuple:
        d = self.data
        base = {"x_train": d.x_train, "y_train": d.y_train, "x_test": d.x_test,
                "y_test": d.y_test}
        base.update(parts)
        return tuple(base.values())

    def file(self, name: str, content: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(content)
        return str(path)


@pytest.fixture(scope="module")
def ctx(demo, tmp_path_factory):
    return Ctx(demo, tmp_path_factory.mktemp("bad-input"))


def _stop_at_first_batch(report):
    report.stop()


def _truncated_keras_file(ctx: Ctx) -> str:
    path = ctx.tmp / "whole.keras"
    ctx.model.save(path)
    blob = path.read_bytes()
    return ctx.file("truncated.keras", blob[: len(blob) // 3])


def _garbage_variant(ctx: Ctx) -> str:
    """A saved variant whose .tflite was overwritten by something else."""
    folder = ctx.tmp / "garbage-variant"
    json_path = ctx.quantized.save(folder)
    (folder / "dynamic.tflite").write_bytes(b"<html>Not Found</html>")
    return str(json_path)


def _unwritable_folder(ctx: Ctx) -> Path:
    """A folder no one may write into (as root, chmod does not stop writes: /sys does)."""
    if os.geteuid() == 0:
        return Path("/sys/cw-bad-input-test")
    folder = ctx.tmp / "read-only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o500)
    return folder / "inside"


def _engine_bug(ctx: Ctx) -> None:
    """A technique that fails in a way nobody planned for: its error must not vanish."""
    panel = ctx.prune_panel

    def broken(*args, **kwargs):
        raise ZeroDivisionError("an unplanned bug in the engine")

    panel._engine = broken
    try:
        panel.apply()
        panel.wait(60)
    finally:
        del panel._engine


def _blocked_panel(ctx: Ctx) -> None:
    panel = ctx.cluster_panel
    panel.blocked = "Prune is running in another tab."
    try:
        panel.apply()
    finally:
        panel.blocked = ""
    assert not panel.running


def _no_layers_ticked(ctx: Ctx) -> None:
    panel = ctx.prune_panel
    ticks = [b.value for b in panel._layers.children]
    for box in panel._layers.children:
        box.value = False
    try:
        panel.epochs = 0
        panel.apply()
        panel.wait(60)
    finally:
        for box, value in zip(panel._layers.children, ticks, strict=True):
            box.value = value


def _panel_stop(ctx: Ctx) -> None:
    """Stop pressed during the fine-tuning: the status says so, nothing is added."""
    panel = ctx.prune_panel
    panel.epochs = 3
    started = threading.Event()
    real = panel._report

    def report(progress):
        started.set()
        real(progress)

    panel._report = report
    try:
        panel.apply()
        assert started.wait(120)
        panel.stop()
        panel.wait(120)
    finally:
        del panel._report
        panel.epochs = 2
    raise cw.TrainingStopped(panel._status.value)


def _bench_stop(ctx: Ctx) -> None:
    report = ctx.wb.benchmark([ctx.wb.original, ctx.quantized], runs=2, warmup=0,
                              progress=lambda tick: tick.stop())
    assert report.stopped and report.rows == []  # a Stop is not an error: an empty report
    raise cw.TrainingStopped(f"stopped={report.stopped}, {len(report.rows)} of 2 measured")


CASES = [
    # ---------------------------------------------------------------- Workbench()
    Case("workbench-not-a-model", lambda c: cw.Workbench("model.h5", c.data), TypeError,
         ("'model.h5'", "expects a Keras model")),
    Case("workbench-data-not-four", lambda c: cw.Workbench(c.model, (c.data.x_train,)),
         TypeError, ("a tuple", "(x_train, y_train, x_test, y_test)")),
    Case("workbench-data-empty",
         lambda c: cw.Workbench(c.model, c.data_with(x_test=c.data.x_test[:0],
                                                     y_test=c.data.y_test[:0])),
         ValueError, ("data.x_test is empty", "at least one example")),
    Case("workbench-data-mismatched",
         lambda c: cw.Workbench(c.model, c.data_with(y_train=c.data.y_train[:-3])),
         ValueError, ("y_train has", "exactly one label")),
    Case("workbench-data-wrong-dtype",
         lambda c: cw.Workbench(c.model, c.data_with(x_train=c.data.x_train.astype(str))),
         TypeError, ("dtype <U", "expected numbers")),
    Case("workbench-data-wrong-shape",
         lambda c: cw.Workbench(c.model, c.data_with(x_train=c.data.x_train[..., 0],
                                                     x_test=c.data.x_test[..., 0])),
         ValueError, ("shape (8, 8)", "expects inputs of shape (8, 8, 1)")),
    Case("workbench-labels-out-of-range",
         lambda c: cw.Workbench(c.model, c.data_with(y_train=c.data.y_train + 1)),
         ValueError, ("labels from 1 to 10", "0..9")),
    Case("workbench-negative-labels",
         lambda c: cw.Workbench(c.model, c.data_with(y_test=c.data.y_test - 1)),
         ValueError, ("labels from -1", "0..9")),
    Case("workbench-batch-size-zero", lambda c: cw.Workbench(c.model, c.data, batch_size=0),
         ValueError, ("got 0", "batch_size must be in [1")),
    Case("workbench-metric-not-callable",
         lambda c: cw.Workbench(c.model, c.data, metric="iou"), TypeError,
         ("'iou'", "callable metric(y_true, y_pred)")),
    # ---------------------------------------------------------------- per-layer, sensitivity
    Case("prune-per-layer-unknown-layer", lambda c: c.wb.prune({"dense_9": 0.8}, epochs=0),
         ValueError, ("'dense_9'", "Expected names from")),
    Case("prune-per-layer-out-of-range", lambda c: c.wb.prune({"dense": 1.5}, epochs=0),
         ValueError, ("target_sparsity['dense']", "got 1.5", "[0.0, 1.0)")),
    Case("prune-per-layer-cannot-touch", lambda c: c.wb.prune({"flatten": 0.5}, epochs=0),
         ValueError, ("'flatten' (Flatten)", "Layers it can handle here")),
    Case("prune-per-layer-and-layers",
         lambda c: c.wb.prune({"dense": 0.5}, layers=["dense"], epochs=0),
         ValueError, ("layers=['dense']", "Pass one of them")),
    Case("cluster-per-layer-too-many", lambda c: c.wb.cluster({"dense_1": 999}, epochs=0),
         ValueError, ("clusters['dense_1']", "got 999", "320 kernel weights")),
    Case("keep-float-dynamic", lambda c: c.wb.quantize("dynamic", keep_float=["dense"]),
         ValueError, ("keep_float=['dense']", "mode='int8' only", "'dynamic'")),
    Case("keep-float-unknown-layer", lambda c: c.wb.quantize("int8", keep_float=["dens"]),
         ValueError, ("'dens'", "Expected names from")),
    Case("keep-float-int8-only",
         lambda c: c.wb.quantize("int8-only", keep_float=["dense"]), ValueError,
         ("mode='int8-only'", "integer only means no float op")),
    Case("sensitivity-unknown-technique", lambda c: c.wb.sensitivity(("prune", "distill")),
         ValueError, ("'distill'", "Expected some of 'prune'")),
    Case("sensitivity-level-out-of-range",
         lambda c: c.wb.sensitivity(("prune",), {"prune": (0.5, 1.2)}), ValueError,
         ("got 1.2", "[0.0, 1.0)")),
    Case("sensitivity-levels-for-unmeasured",
         lambda c: c.wb.sensitivity(("prune",), {"cluster": (8,)}), ValueError,
         ("['cluster']", "not among the techniques measured")),
    Case("sensitivity-unknown-layer",
         lambda c: c.wb.sensitivity(("prune",), layers=["nope"]), ValueError,
         ("'nope'", "Expected names from")),
    Case("sensitivity-samples-zero", lambda c: c.wb.sensitivity(("prune",), samples=0),
         ValueError, ("got 0", "samples must be in [1")),
    Case("suggest-max-drop-negative",
         lambda c: c.wb.sensitivity(("int8",)).suggest(max_drop=-0.1), ValueError,
         ("got -0.1", "max_drop must be in [0.0")),
    # ---------------------------------------------------------------- prune
    Case("prune-sparsity-nan", lambda c: c.wb.prune(NAN), ValueError,
         ("got nan", "finite number in [0")),
    Case("prune-sparsity-one", lambda c: c.wb.prune(1.0), ValueError,
         ("got 1.0", "[0.0, 1.0)")),
    Case("prune-sparsity-text", lambda c: c.wb.prune("0.8"), TypeError,
         ("'0.8'", "must be a number")),
    Case("prune-unknown-schedule", lambda c: c.wb.prune(0.5, schedule="cubic"), ValueError,
         ("'cubic'", "'polynomial', 'constant'")),
    Case("prune-unknown-structure", lambda c: c.wb.prune(0.5, structure="3:4"), ValueError,
         ("'3:4'", "'2:4'")),
    Case("prune-unknown-layer", lambda c: c.wb.prune(0.5, layers=["conv9"]), ValueError,
         ("'conv9'", "Expected names from: conv2d")),
    Case("prune-negative-epochs", lambda c: c.wb.prune(0.5, epochs=-1), ValueError,
         ("got -1", "epochs must be in [0")),
    Case("prune-fractional-epochs", lambda c: c.wb.prune(0.5, epochs=2.5), TypeError,
         ("2.5", "a whole number")),
    Case("prune-learning-rate-inf", lambda c: c.wb.prune(0.5, learning_rate=INF), ValueError,
         ("got inf", "learning_rate must be a finite number")),
    Case("prune-unknown-base", lambda c: c.wb.prune(0.5, base="pruned 80%"), KeyError,
         ("'pruned 80%'", "Variants: original")),
    Case("prune-quantized-base", lambda c: c.wb.prune(0.5, base=c.quantized), ValueError,
         ("'dynamic'", "already quantized", "quantize last")),
    Case("prune-empty-name", lambda c: c.wb.prune(0.5, epochs=0, name="  "), ValueError,
         ("'  '", "non-empty string")),
    Case("prune-stopped-while-fine-tuning",
         lambda c: c.wb.prune(0.5, epochs=2, progress=_stop_at_first_batch),
         cw.TrainingStopped, ("stopped at epoch 1/2", "No variant")),
    # ---------------------------------------------------------------- cluster
    Case("cluster-one-cluster", lambda c: c.wb.cluster(1), ValueError,
         ("got 1", "clusters must be in [2")),
    Case("cluster-infinite-clusters", lambda c: c.wb.cluster(INF), TypeError,
         ("inf", "a whole number")),
    Case("cluster-unknown-init", lambda c: c.wb.cluster(8, init="kmeans"), ValueError,
         ("'kmeans'", "'kmeans++', 'linear'")),
    Case("cluster-more-clusters-than-weights",
         lambda c: c.wb.cluster(400, layers=["dense_1"]), ValueError,
         ("clusters=400", "320 weights of layer 'dense_1'")),
    Case("cluster-stopped-while-fine-tuning",
         lambda c: c.wb.cluster(8, epochs=2, progress=_stop_at_first_batch),
         cw.TrainingStopped, ("stopped at epoch 1/2", "No variant")),
    # ---------------------------------------------------------------- quantize
    Case("quantize-unknown-mode", lambda c: c.wb.quantize("int4"), ValueError,
         ("'int4'", "'dynamic', 'float16'")),
    Case("quantize-zero-samples", lambda c: c.wb.quantize("int8", representative_samples=0),
         ValueError, ("representative_samples=0", "needs representative data")),
    Case("quantize-quantized-base", lambda c: c.wb.quantize("float16", base=c.quantized),
         ValueError, ("'dynamic'", "already quantized")),
    Case("qat-stopped-while-fine-tuning",
         lambda c: c.wb.quantize("qat", epochs=2, progress=_stop_at_first_batch),
         cw.TrainingStopped, ("stopped at epoch 1/2", "No variant")),
    # ---------------------------------------------------------------- benchmark
    Case("benchmark-no-variants", lambda c: cw.benchmark([]), ValueError,
         ("got an empty list", "at least one variant")),
    Case("benchmark-not-variants", lambda c: cw.benchmark(["model.tflite"]), TypeError,
         ("'model.tflite'", "takes Variants")),
    Case("benchmark-zero-threads", lambda c: c.wb.benchmark(threads=[0]), ValueError,
         ("got 0", "threads must be in [1")),
    Case("benchmark-runs-nan", lambda c: c.wb.benchmark(runs=NAN), TypeError,
         ("nan", "runs must be a whole number")),
    Case("benchmark-runs-text", lambda c: c.wb.benchmark(runs="50"), TypeError,
         ("'50'", "runs must be a whole number")),
    Case("benchmark-stopped", _bench_stop, cw.TrainingStopped, ("stopped=True", "0 of 2 measured")),
    # ---------------------------------------------------------------- files
    Case("load-model-not-a-path", lambda c: cw.load_model(42), TypeError,
         ("42", "takes a path")),
    Case("load-model-missing", lambda c: cw.load_model(c.tmp / "nothing.keras"),
         FileNotFoundError, ("nothing.keras", "nothing exists there")),
    Case("load-model-truncated", lambda c: cw.load_model(_truncated_keras_file(c)), ValueError,
         ("truncated.keras", "not a complete .keras file", "model.save('model.keras')")),
    Case("load-model-not-a-model", lambda c: cw.load_model(c.file("notes.h5", b"hello")),
         ValueError, ("notes.h5", "file signature not found", "Expected a")),
    Case("garbage-tflite", lambda c: cw.Variant.load(_garbage_variant(c)), ValueError,
         ("22 bytes starting with b'<html>", "identifier b'TFL3'")),
    Case("variant-tflite-not-bytes", lambda c: cw.Variant("v", {}, tflite="model.tflite"),
         TypeError, ("'model.tflite'", "the bytes of a .tflite model")),
    Case("save-into-unwritable-folder", lambda c: c.quantized.save(_unwritable_folder(c)),
         PermissionError, ("Cannot write into", "Expected a folder you may create")),
    # ---------------------------------------------------------------- inspect_weights
    Case("inspect-not-a-model", lambda c: cw.inspect_weights("model.keras"), TypeError,
         ("'model.keras'", "expects a Keras model or layer")),
    Case("inspect-zero-bins", lambda c: cw.inspect_weights(c.model, bins=0), ValueError,
         ("got 0", "bins must be a whole number from 1")),
    Case("inspect-range-reversed", lambda c: cw.inspect_weights(c.model, range=(1.0, -1.0)),
         ValueError, ("got (1.0, -1.0)", "with low < high")),
    Case("inspect-range-nan", lambda c: cw.inspect_weights(c.model, range=(NAN, 1.0)),
         ValueError, ("got (nan, 1.0)", "two finite numbers")),
    # ---------------------------------------------------------------- panels
    Case("panel-unknown-schedule",
         lambda c: setattr(c.prune_panel, "schedule", "cubic"), traitlets.TraitError,
         ("PruningPanel.schedule = 'cubic'", "'polynomial', 'constant'", "e.g. panel.")),
    Case("panel-sparsity-nan", lambda c: setattr(c.prune_panel, "target_sparsity", NAN),
         traitlets.TraitError, ("PruningPanel.target_sparsity", "got nan", "finite number")),
    Case("panel-epochs-out-of-range", lambda c: setattr(c.prune_panel, "epochs", 99),
         traitlets.TraitError, ("got 99", "[0, 20]")),
    Case("panel-clusters-not-offered", lambda c: setattr(c.cluster_panel, "clusters", 5),
         traitlets.TraitError, ("ClusteringPanel.clusters = 5", "2, 3, 4, 6, 8")),
    Case("panel-unknown-mode", lambda c: setattr(c.quantize_panel, "mode", "int4"),
         traitlets.TraitError, ("'int4'", "'dynamic', 'float16'")),
    Case("panel-unknown-base", lambda c: setattr(c.prune_panel, "base", "nope"),
         traitlets.TraitError, ("base = 'nope'", "'original'")),
    Case("panel-quantized-base", lambda c: setattr(c.cluster_panel, "base", "dynamic"),
         traitlets.TraitError, ("base = 'dynamic'", "quantize last")),
    Case("panel-benchmark-runs-zero", lambda c: setattr(c.bench_panel, "runs", 0),
         traitlets.TraitError, ("BenchmarkPanel.runs", "got 0", "[1, 1000000]")),
    Case("panel-no-layer-ticked", _no_layers_ticked, ValueError,
         ("layers=[]", "Tick at least one layer"), panel="prune_panel"),
    Case("panel-engine-bug", _engine_bug, ZeroDivisionError,
         ("an unplanned bug in the engine", "Traceback"), panel="prune_panel"),
    Case("panel-blocked", _blocked_panel, RuntimeError,
         ("Prune is running in another tab.", "Wait for it to finish"),
         panel="cluster_panel"),
    Case("panel-calibration-samples-below-range",
         lambda c: setattr(c.quantize_panel, "representative_samples", 5),
         traitlets.TraitError, ("got 5", "[10, 1000]")),
    Case("panel-stop-while-fine-tuning", _panel_stop, cw.TrainingStopped,
         ("stopped at epoch 1/3", "No variant")),
    Case("panel-save-into-unwritable-folder",
         lambda c: (setattr(c.bench_panel, "folder", str(_unwritable_folder(c))),
                    c.bench_panel.save_tflite()),
         PermissionError, ("Cannot write into", "Expected a folder you may create"),
         panel="bench_panel"),
]


def test_the_matrix_is_large_enough():
    kinds = {case.id for case in CASES}
    assert len(kinds) == len(CASES) >= 30
    where = {case.id.split("-")[0] for case in CASES}
    assert {"workbench", "prune", "cluster", "quantize", "qat", "benchmark", "load", "inspect",
            "panel", "garbage", "save"} <= where


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_clearly_and_nothing_is_lost(ctx, case):
    variants, weights = ctx.wb.variants, weights_bytes(ctx.model)
    if case.panel:
        panel = getattr(ctx, case.panel)
        panel._error.value = ""
        case.call(ctx)
        box = panel._error.value
        assert f"<b>{case.error.__name__}</b>" in box, box
        text = _unescaped(box)
        for piece in case.said:
            assert piece in text, (piece, text)
        assert not panel.running and not panel._start.disabled  # usable again
    else:
        with pytest.raises(case.error) as raised:
            case.call(ctx)
        message = str(raised.value)
        for piece in case.said:
            assert piece in message, (piece, message)
    assert ctx.wb.variants == variants
    assert weights_bytes(ctx.model) == weights


def test_panels_work_after_the_matrix(ctx):
    """After every refusal above, each panel still makes a variant."""
    panel = ctx.prune_panel
    panel.epochs, panel.target_sparsity = 0, 0.5
    panel.apply()
    panel.wait(120)
    assert panel._error.value == "" and panel.result is not None
    assert ctx.wb.variants[-1] is panel.result and panel.result.sparsity > 0.3
    assert weights_bytes(ctx.model) == weights_bytes(ctx.wb.original.keras_model)


def _unescaped(markup: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", markup))
