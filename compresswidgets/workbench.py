"""Workbench: variants of a live Keras model, made by pruning, clustering and quantization.

The user's model is never touched: the Workbench keeps a private clone as ``original`` and
every technique starts from a fresh clone of its base variant.

Example:
    >>> import compresswidgets as cw
    >>> model, data = cw.demo_model()                                   # doctest: +SKIP
    >>> wb = cw.Workbench(model, data)                                  # doctest: +SKIP
    >>> p = wb.prune(target_sparsity=0.8, epochs=2)                     # doctest: +SKIP
    >>> c = wb.cluster(clusters=16, preserve_sparsity=True, base=p)     # doctest: +SKIP
    >>> q = wb.quantize("dynamic", base=c)                              # doctest: +SKIP
    >>> wb.compare()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import gc
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compresswidgets import _bridge, _jobs, _keras
from compresswidgets import tflite as tfl
from compresswidgets._data import (
    Metric,
    MetricSpec,
    as_data,
    check_against_model,
    check_single_io,
    metric_spec,
    records_frame,
)
from compresswidgets._keras import describe
from compresswidgets._training import (
    CompileSettings,
    ProgressCallback,
    compile_settings,
    outputs_logits,
    seed_everything,
    seeded_code,
)
from compresswidgets.techniques import clustering, pruning, quantization
from compresswidgets.techniques._common import (
    LayerSelection,
    check_number,
    clone_with_weights,
    require_tfmot_model,
)
from compresswidgets.variant import Context, UnknownVariantError, Variant

if TYPE_CHECKING:
    from compresswidgets.benchmarking import BenchmarkReport
    from compresswidgets.sensitivity import Sensitivity
    from compresswidgets.sweeps import Sweep

__all__ = ["Comparison", "VariantsChange", "Workbench"]


@dataclasses.dataclass(frozen=True)
class VariantsChange:
    """What a Workbench tells its observers (:meth:`Workbench.observe`) when it adds a variant:
    ``added`` is the new variant, ``variants`` all of them now, the original first."""

    workbench: Workbench
    added: Variant
    variants: tuple[Variant, ...]


def release_memory() -> None:
    """Collect the clones and wrappers of a finished run and hand freed heap back to the OS.

    Every fit traces new TensorFlow functions; glibc keeps the freed memory in its arenas
    unless asked (measured: halves the growth per fine-tuning run).
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _releasing(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        finally:
            release_memory()
    return wrapper


class Comparison(list):
    """Rows of :meth:`Workbench.compare` (a list of dicts); ``to_dataframe()`` with pandas.

    ``accuracy`` is the Workbench's metric (``metric_name`` says which); ``size_ratio`` is
    the original's .tflite bytes ÷ the variant's, ``gzipped_ratio`` the original's gzipped
    bytes ÷ the variant's (:attr:`Variant.size_ratio`, :attr:`Variant.gzipped_ratio`).
    """

    metric: MetricSpec | None = None

    def to_dataframe(self) -> Any:
        return records_frame(list(self), "The rows are already a list of dicts.")

    def __str__(self) -> str:
        name = self.metric.name if self.metric else "accuracy"
        head = (f"{'variant':<34} {name[:8]:>8} {'Δ':>7} {'size':>10} {'gzipped':>10} "
                f"{'gzip x':>7} {'sparsity':>8}")
        lines = [head, "-" * len(head)]
        for r in self:
            lines.append(
                f"{r['name'][:34]:<34} {r['accuracy']:>8.4f} {r['accuracy_delta']:>+7.4f} "
                f"{r['size_bytes']:>10,} {r['gzipped_bytes']:>10,} "
                f"{r['gzipped_ratio']:>6.2f}x {r['sparsity']:>8.1%}")
        return "\n".join(lines)


class Workbench:
    """Compress a live Keras model into variants, each evaluated and sized.

    Args:
        model: a built Keras model with one input and one output (tf_keras for pruning,
            clustering and QAT; any for post-training quantization). Only a private clone
            is ever used.
        data: ``(x_train, y_train, x_test, y_test)`` arrays, or the demo's data.
        metric: ``metric(y_true, y_pred) -> float`` (e.g. IoU, or MAE with
            ``greater_is_better=False``). Default: accuracy for class labels and masks, mean
            absolute error (lower is better) for continuous targets.
        metric_name: how tables and plots call the metric (default: the function's name).
        greater_is_better: the metric's direction (default True for a metric you pass).
        batch_size: for fine-tuning.
    """

    def __init__(self, model: Any, data: Any, *, metric: Metric | None = None,
                 metric_name: str | None = None, greater_is_better: bool | None = None,
                 batch_size: int = 32) -> None:
        from compresswidgets.demo import DemoData, is_demo_architecture

        flavour = _keras.keras_flavour(model)
        if flavour is None:
            raise TypeError(
                f"Workbench() expects a Keras model, but got {describe(model)}. Pass the model "
                "object, e.g. `model, data = cw.demo_model(); cw.Workbench(model, data)`.")
        if not getattr(model, "built", True):
            raise ValueError(
                f"Model {model.name!r} has not been built, so it has no weights. Call "
                "`model.build(input_shape)` or call it on a batch of data first.")
        check_single_io(model)
        check_number("batch_size", batch_size, 1, 1_000_000, integer=True)
        self.data = as_data(data)
        check_against_model(self.data, model)
        self._reference = model  # read for its compile settings only
        self.batch_size = int(batch_size)
        bridged, keras3, self._bridge_error = None, None, None
        if flavour == "keras3":
            keras3 = clone_with_weights(model)
        if _bridge.needs_bridge(model):  # tfmot needs flat tf_keras: a verified twin
            try:
                bridged = _bridge.bridge(model, self.data.x_test)
            except _bridge.BridgeError as exc:
                self._bridge_error = exc  # inspection and post-training quantization still work
        self._context = Context(
            data=self.data, metric=metric_spec(metric, metric_name, greater_is_better,
                                               self.data, logits=outputs_logits(model)),
            preamble=_preamble(isinstance(data, DemoData) and is_demo_architecture(model),
                               keras3 is not None),
            bridge=bridged, keras3_model=keras3,
            user_model=keras3 if keras3 is not None or bridged is None
            else clone_with_weights(model))
        # a Keras 3 model converts itself (its own export), unless TensorFlow cannot take
        # its layer names, or its export leaves recurrent layers unfused: then its twin,
        # which computes the same, does
        unfused = _bridge.unfused_layers(keras3) if bridged is not None else []
        export = keras3 if bridged is not None and not bridged.names and not unfused else None
        notes = (*(bridged.notes if bridged else ()), *(
            ["The .tflite is converted from the verified tf_keras twin, not from Keras 3's own "
             "export, which hands the TFLite converter " + ", ".join(unfused) + " unfused (an "
             "LSTM as a WHILE loop instead of one UNIDIRECTIONAL_SEQUENCE_LSTM op, a "
             "TimeDistributed layer as one op per time step): a larger file, and full-integer "
             "calibration crashes on the loop."] if unfused else []))
        self.original = Variant("original", {"technique": "original", "model": model.name},
                                keras_model=bridged.model if bridged else keras3 or
                                clone_with_weights(model),
                                export_model=export, context=self._context,
                                notes=notes,
                                code_step=_bridge_code(keras3 is not None) if bridged
                                else "")
        self._variants: list[Variant] = [self.original]
        self._observers: list[Callable[[], Callable[[VariantsChange], Any] | None]] = []
        self._lock = threading.Lock()
        self._scratch: str | None = None
        self._sensitivity_cache: dict[tuple, tuple[float, int]] = {}
        #: the last sensitivity run with pruning levels, by base name (search uses it)
        self._measured_sensitivity: dict[str, Sensitivity] = {}
        self._sweeps: list[Sweep] = []

    # ------------------------------------------------------------------ variants
    @property
    def metric(self) -> MetricSpec:
        """How variants are judged: ``metric.name``, ``metric.greater_is_better``, ..."""
        return self._context.metric

    @property
    def variants(self) -> tuple[Variant, ...]:
        """All variants in creation order, the original first."""
        return tuple(self._variants)

    def observe(self, callback: Callable[[VariantsChange], Any]) -> Callable[..., Any]:
        """Call ``callback(change)`` (a :class:`VariantsChange`) whenever a variant is added,
        in the thread that added it. Every panel on this Workbench observes it, so a variant
        made in code or in another panel appears everywhere at once.

        A bound method is held weakly (a panel that is gone stops being called); a function
        is held until :meth:`unobserve`. An observer that raises is reported as a warning and
        does not undo the variant. Returns ``callback``, so it can decorate a function.
        """
        if not callable(callback):
            raise TypeError(f"observe() takes a callable, e.g. `wb.observe(lambda change: "
                            f"print(change.added.name))`, but got {describe(callback)}.")
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            ref: Callable[[], Any] = weakref.WeakMethod(callback)
        else:
            ref = functools.partial(_same, callback)
        with self._lock:
            self._observers.append(ref)
        return callback

    def unobserve(self, callback: Callable[[VariantsChange], Any]) -> None:
        """Stop calling ``callback`` (one that :meth:`observe` was given)."""
        with self._lock:
            self._observers = [ref for ref in self._observers if ref() not in (None, callback)]

    def _notify(self, added: Variant) -> None:
        with self._lock:
            live = [f for f in (ref() for ref in self._observers) if f is not None]
            self._observers = [ref for ref in self._observers if ref() is not None]
        change = VariantsChange(self, added, self.variants)
        for callback in live:
            try:
                callback(change)
            except Exception as exc:  # the variant stays: an observer cannot undo it
                warnings.warn(f"An observer of this Workbench ({callback!r}) raised "
                              f"{type(exc).__name__}: {exc}. {added.name!r} was added anyway.",
                              RuntimeWarning, stacklevel=2)

    def __getitem__(self, name: str) -> Variant:
        return self._named(name)

    def _named(self, name: str, argument: str = "") -> Variant:
        """The variant called ``name``; else an :class:`UnknownVariantError` (a ValueError and
        a KeyError) naming what was passed (as ``argument=``, e.g. base), the variants there
        are and how to pick one. Every lookup by name (``wb[name]``, ``base=``) comes here."""
        for v in self._variants:
            if v.name == name:
                return v
        names = ", ".join(v.name for v in self._variants)
        fix = (f"Pass one of these names, or a Variant from wb.variants (e.g. "
               f"{argument}=wb.variants[-1]); {argument}=None is the original." if argument
               else f"Pass one of these names, e.g. wb[{self._variants[-1].name!r}], or pick "
               "from wb.variants.")
        raise UnknownVariantError(
            f"No variant named {name!r}{f' ({argument}={name!r})' if argument else ''}. "
            f"Variants: {names}. {fix}")

    def __len__(self) -> int:
        return len(self._variants)

    def _base(self, base: Variant | str | None, technique: str) -> Variant:
        if base is None:
            return self.original
        variant = self._named(base, "base") if isinstance(base, str) else base
        if not isinstance(variant, Variant) or all(variant is not v for v in self._variants):
            raise ValueError(
                f"base must be a variant of this Workbench (or its name), but got "
                f"{describe(base)}. Pick one from wb.variants.")
        if variant.is_quantized:
            raise ValueError(
                f"{technique} cannot start from {variant.name!r}: it is already quantized for "
                "TFLite. Use its parent as base, and quantize last.")
        return variant

    def _unique(self, name: str) -> str:
        taken = {v.name for v in self._variants}
        if name not in taken:
            return name
        i = 2
        while f"{name} #{i}" in taken:
            i += 1
        return f"{name} #{i}"

    def _label(self, base: Variant, step: str, name: str | None) -> str:
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"name must be a non-empty string, but got {name!r}.")
            return self._unique(name.strip())
        return self._unique(step if base is self.original else f"{base.name} > {step}")

    def _tfmot_model(self, base: Variant, technique: str) -> Any:
        """The base's Keras model for tfmot: a tf_keras model (a Keras 3 model's twin), or the
        reason there is none."""
        if self._bridge_error is not None and base is self.original:
            raise _bridge.BridgeError(
                f"{technique} works on a flat tf_keras twin of this model (a Keras 3 model, or "
                f"one with models as layers), and it could not be made: {self._bridge_error}"
            ) from self._bridge_error
        require_tfmot_model(base.keras_model, technique)
        return base.keras_model

    @property
    def bridge(self) -> _bridge.Bridged | None:
        """For a Keras 3 model: its verified tf_keras twin (``.model``, ``.names``,
        ``.max_error``), which pruning, clustering and QAT work on; else None."""
        return self._context.bridge

    @property
    def bridge_error(self) -> _bridge.BridgeError | None:
        """Why a Keras 3 model could not be bridged (then only inspection and post-training
        quantization work on it); None otherwise."""
        return self._bridge_error

    def user_name(self, layer: str) -> str:
        """A layer's name as the user wrote it (the twin of a Keras 3 model may spell it
        differently for TensorFlow: ``dense_1`` for ``"dense 1"``)."""
        bridged = self._context.bridge
        return bridged.user_name(layer) if bridged is not None else layer

    def user_text(self, *notes: str) -> tuple[str, ...]:
        """Notes with the twin's layer names spelled as the user wrote them."""
        bridged = self._context.bridge
        if bridged is None or not bridged.names:
            return tuple(notes)
        pattern = re.compile(r"(?<![\w.>/-])(" + "|".join(
            re.escape(n) for n in sorted(bridged.names, key=len, reverse=True)) + r")(?![\w.>/-])")
        return tuple(pattern.sub(lambda m: bridged.names[m.group(1)], n) for n in notes)

    def _user_layers(self, layers: LayerSelection) -> LayerSelection:
        """Layer names as the user wrote them (``"dense 1"``) -> the twin's names."""
        bridged = self._context.bridge
        if bridged is None or not bridged.names or layers is None or callable(layers):
            return layers
        if isinstance(layers, str):
            return bridged.safe_name(layers)
        return [bridged.safe_name(n) if isinstance(n, str) else n for n in layers]

    def _user_keys(self, value: Any) -> Any:
        """Per-layer targets keyed as the user wrote the names -> keyed by the twin's."""
        if not isinstance(value, Mapping):
            return value
        renamed = self._user_layers([k for k in value])
        return dict(zip(renamed, value.values(), strict=True))

    def _made(self, label: str, params: Any, base: Variant, done: _jobs.TechniqueResult,
              code_step: str, mode: str = "float32", *, recipe: dict[str, Any] | None = None,
              metrics: dict[str, Any] | None = None) -> Variant:
        """The Variant of a technique's result: everything it holds is given here (``recipe``
        adds to the parameters' recipe, e.g. a sweep's seed; ``metrics`` were measured)."""
        notes = self.user_text(*params.notes, *done.notes)
        error = done.conversion_error if mode == "qat" else None  # else: converted on use,
        if isinstance(error, str):  # where a SavedModel export is the fallback
            error = tfl.summarise(mode, error)
        if error is not None:
            notes = (*notes, f"{error} The QAT Keras model is kept.")
        return Variant(label, {**params.as_dict(), **(recipe or {})}, parent=base,
                       keras_model=done.model, tflite=done.tflite, mode=mode,
                       context=self._context, notes=notes, code_step=code_step,
                       conversion_error=error, metrics=metrics)

    def _add(self, variant: Variant) -> Variant:
        with self._lock:
            self._variants.append(variant)
        self._notify(variant)
        return variant

    @staticmethod
    def _lineage(base: Variant) -> list[str]:
        return [v.technique for v in base.lineage]

    # ------------------------------------------------------------------ running a technique
    def _apply(self, technique: str, model: Any, params: Any, settings: CompileSettings,
               progress: ProgressCallback | None, seed: int | None) -> _jobs.TechniqueResult:
        """Fine-tune in the worker process when the model can travel there (built-in tf_keras
        layers, a stock optimizer), and convert the result in the same round trip; else here
        (the variant then converts on first use). Either way on a private copy."""
        if self._offloadable(model, settings):
            return _jobs.technique(
                technique, model, params, settings, self._train_file(), progress,
                rebuild=lambda m: quantization.build_qat(clone_with_weights(m), params),
                seed=seed)
        module = {"prune": pruning, "cluster": clustering, "qat": quantization}[technique]
        seed_everything(seed)
        result, notes = module.apply(clone_with_weights(model), self.data, params, settings,
                                     progress)
        return _jobs.TechniqueResult(result, tuple(notes), None, None)

    @staticmethod
    def _offloadable(model: Any, settings: CompileSettings) -> bool:
        """Whether the worker can rebuild the model and its compile settings (and is used:
        ``COMPRESSWIDGETS_IN_PROCESS=1`` fine-tunes right here)."""
        return not _jobs.in_process() and _jobs.portable(model) and settings.portable

    def _train_file(self) -> str:
        """The training split (and ``x_test``, which a sweep's candidates predict) as one
        .npz the workers read; written once per Workbench."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="cw-workbench-")
            weakref.finalize(self, shutil.rmtree, self._scratch, True)
            np.savez(os.path.join(self._scratch, "train.npz"), x_train=self.data.x_train,
                     y_train=self.data.y_train, x_test=self.data.x_test)
        return os.path.join(self._scratch, "train.npz")

    # ------------------------------------------------------------------ techniques
    @_releasing
    def prune(self, target_sparsity: float | Mapping[str, float] = 0.5, *,
              schedule: str = "polynomial",
              structure: str | None = None, layers: LayerSelection = None, epochs: int = 2,
              learning_rate: float | None = None, base: Variant | str | None = None,
              progress: ProgressCallback | None = None, name: str | None = None,
              seed: int | None = None) -> Variant:
        """Magnitude pruning (tfmot ``prune_low_magnitude``), fine-tuned for ``epochs``.

        Args:
            target_sparsity: fraction of each selected kernel set to zero, in [0, 1); or a
                target per layer, ``{"conv2d_1": 0.9, "dense": 0.6}`` (those layers only,
                each with its own schedule; ``layers`` is then not given), as
                :meth:`Sensitivity.suggest` makes.
            schedule: ``"polynomial"`` (sparsity ramps up) or ``"constant"``.
            structure: ``None`` or ``"2:4"`` (two zeros in every four weights; 50 %).
            layers: names, a predicate, or None: every layer tfmot can prune that has at least
                1,024 weights (the panel's default too); the variant's notes say what was
                left out.
            epochs: fine-tuning epochs; 0 prunes once by magnitude without training.
            learning_rate: of the fine-tuning; None keeps the model's own optimizer settings
                (or 1e-3 when it has none).
            base: the variant (or its name) to start from; None is the original.
            progress: called after every batch with a :class:`Progress`; may stop the run.
            name: the new variant's name; default ``"prune 80%"`` (after the base's name).
            seed: seeds the fine-tuning (``keras.utils.set_random_seed``; in the recipe and
                the code), so that a rerun or a replayed recipe gives the same numbers.

        Returns:
            The new :class:`Variant`, also in :attr:`variants` (observers are told).

        Raises:
            ValueError, TypeError: a parameter out of range or of the wrong type (what was
                passed, what is expected); nothing is added.
            TrainingStopped: ``progress`` stopped the run; nothing is added.
        """
        base_variant = self._base(base, "Pruning")
        model = self._tfmot_model(base_variant, "Pruning")
        layers = self._user_layers(layers)
        target_sparsity = self._user_keys(target_sparsity)
        params = pruning.validate(model, self.data, target_sparsity=target_sparsity,
                                  schedule=schedule, structure=structure, layers=layers,
                                  epochs=epochs, batch_size=self.batch_size)
        settings = compile_settings(self._reference, self.data, learning_rate,
                                    pruning.DEFAULT_LEARNING_RATE)
        seed = _seed(seed)
        done = self._apply("prune", model, params, settings, progress, seed)
        for note in done.notes:
            _warn(note)
        step = (f"prune {params.target_sparsity:.0%}" + (" per layer" if params.per_layer else "")
                + (" 2:4" if structure else ""))
        return self._add(self._made(self._label(base_variant, step, name), params,
                                    base_variant, done,
                                    seeded_code(pruning.code(params, settings), seed),
                                    recipe=_seed_recipe(seed)))

    @_releasing
    def cluster(self, clusters: int | Mapping[str, int] = 16, *, init: str = "kmeans++",
                preserve_sparsity: bool = False, layers: LayerSelection = None, epochs: int = 1,
                learning_rate: float | None = None, base: Variant | str | None = None,
                progress: ProgressCallback | None = None, name: str | None = None,
                seed: int | None = None) -> Variant:
        """Weight clustering (tfmot ``cluster_weights``), fine-tuned for ``epochs``.

        Args:
            clusters: distinct values per kernel, at least 2; or per layer,
                ``{"dense": 8, "conv2d_1": 16}`` (those layers only; ``layers`` is then not
                given), as :meth:`Sensitivity.suggest` makes.
            init: ``"kmeans++"``, ``"linear"``, ``"random"`` or ``"density-based"``.
            preserve_sparsity: keep zeros zero (use on a pruned base).
            layers: names, a predicate, or None: as for :meth:`prune`, the clusterable layers
                with at least 1,024 weights (and at least ``clusters`` kernel weights).
            epochs: fine-tuning epochs; 0 clusters without training.
            learning_rate: of the fine-tuning; None keeps the model's own (or 1e-4).
            base: the variant (or its name) to start from; None is the original.
            progress: called after every batch with a :class:`Progress`; may stop the run.
            name: the new variant's name; default ``"cluster 16"`` (after the base's name).
            seed: as for :meth:`prune`.

        Returns and raises as :meth:`prune`.
        """
        base_variant = self._base(base, "Clustering")
        model = self._tfmot_model(base_variant, "Clustering")
        layers = self._user_layers(layers)
        clusters = self._user_keys(clusters)
        params = clustering.validate(model, self.data, clusters=clusters, init=init,
                                     preserve_sparsity=preserve_sparsity, layers=layers,
                                     epochs=epochs, batch_size=self.batch_size)
        settings = compile_settings(self._reference, self.data, learning_rate,
                                    clustering.DEFAULT_LEARNING_RATE)
        seed = _seed(seed)
        done = self._apply("cluster", model, params, settings, progress, seed)
        step = (f"cluster {min(k for _, k in params.per_layer)}-{params.clusters} per layer"
                if params.per_layer else f"cluster {params.clusters}")
        return self._add(self._made(self._label(base_variant, step, name), params,
                                    base_variant, done,
                                    seeded_code(clustering.code(params, settings), seed),
                                    recipe=_seed_recipe(seed)))

    @_releasing
    def quantize(self, mode: str = "dynamic", *, representative_samples: int = 100,
                 keep_float: list[str] | None = None,
                 epochs: int = 1, layers: LayerSelection = None,
                 learning_rate: float | None = None, base: Variant | str | None = None,
                 progress: ProgressCallback | None = None, name: str | None = None,
                 seed: int | None = None) -> Variant:
        """Quantize for TFLite.

        Modes: ``"dynamic"`` (int8 weights), ``"float16"``, ``"int8"`` (full integer with float
        fallback), ``"int8-only"`` (int8 input and output), ``"int16x8"``, ``"qat"``
        (quantization-aware training for ``epochs``; on a pruned or clustered base it keeps
        their sparsity/clusters). Calibrated modes draw ``representative_samples`` from the
        training split. For QAT, ``layers=None`` annotates every layer tfmot's
        ``quantize_model`` accepts (BatchNorm after a conv is folded) and leaves the ones it
        rejects in float, named in the notes; recurrent models are refused (use a
        post-training mode).

        Args:
            mode: one of ``cw.tflite.MODES`` but float32 (see above).
            representative_samples: training samples that calibrate activation ranges
                (``"int8"``, ``"int8-only"``, ``"int16x8"``); drawn with a fixed seed.
            keep_float: ``"int8"`` only: layers whose ops stay float (TFLite's quantization
                debugger denylists them), e.g. the ones :meth:`sensitivity` finds fragile;
                the rest is int8. Verified in the .tflite (:attr:`Variant.layers`).
            epochs: QAT fine-tuning epochs (``"qat"`` only).
            layers: QAT only: names, a predicate, or None (see above).
            learning_rate: QAT only: of the fine-tuning; None keeps the model's own (or 1e-4).
            base: the variant (or its name) to quantize; None is the original. A quantized
                variant cannot be a base: quantize last.
            progress: QAT only: called after every batch with a :class:`Progress`.
            name: the new variant's name; default the mode (after the base's name).
            seed: QAT only: as for :meth:`prune`.

        Returns:
            The new :class:`Variant`, also in :attr:`variants` (observers are told).

        Raises:
            ConversionError: one sentence (op, reason, fix); ``.details`` has the converter's
                output. Nothing is added to the Workbench.
        """
        base_variant = self._base(base, "Quantization")
        model = base_variant.keras_model
        if mode == "qat":
            model = self._tfmot_model(base_variant, "Quantization-aware training")
            layers = self._user_layers(layers)
        exported = base_variant.export_model
        twin = exported is base_variant.keras_model  # then its names are the twin's
        params = quantization.validate(
            exported if mode != "qat" else model, self.data, mode=mode,
            representative_samples=representative_samples, epochs=epochs, layers=layers,
            batch_size=self.batch_size, lineage=self._lineage(base_variant),
            keep_float=self._user_layers(keep_float) if twin else keep_float)
        label = self._label(base_variant, mode + (" keep float" if keep_float else ""), name)
        if mode == "qat":
            settings = compile_settings(self._reference, self.data, learning_rate,
                                        quantization.DEFAULT_LEARNING_RATE)
            seed = _seed(seed)
            done = self._apply("qat", model, params, settings, progress, seed)
            if done.tflite is None and done.conversion_error is None:
                try:  # fine-tuned here: convert now, the size and accuracy need it
                    blob = tfl.convert(_keras.resolve(done.model), "qat")
                    done = dataclasses.replace(done, tflite=blob)
                except tfl.ConversionError as exc:
                    done = dataclasses.replace(done, conversion_error=exc)
            variant = self._made(label, params, base_variant, done,
                                 seeded_code(quantization.code(params, settings), seed),
                                 mode="qat", recipe=_seed_recipe(seed))
            if variant.conversion_error is not None:
                _warn(variant.notes[-1])
            return self._add(variant)
        samples = quantization.representative(self.data, params.representative_samples)
        metrics = None
        # a ConversionError (or a keep_float the model cannot honour) leaves nothing added
        if params.keep_float:
            report = tfl.int8_debugged(exported, samples, list(params.keep_float))
            blob, metrics = report.tflite, {"layer_errors": [
                e.named(self.user_name).as_dict() for e in report.errors]}
        else:
            blob = tfl.convert(exported, mode, representative=samples)
        return self._add(self._converted(label, params, base_variant, blob, metrics))

    def _converted(self, label: str, params: Any, base: Variant, blob: bytes,
                   metrics: dict[str, Any] | None = None) -> Variant:
        """The Variant of a post-training conversion of ``base``: its .tflite and the code
        that makes it (``metrics``, if measured already)."""
        return Variant(label, params.as_dict(), parent=base, tflite=blob, mode=params.mode,
                       context=self._context, metrics=metrics,
                       code_step=quantization.code(params, None, tfl.fixed_batch(blob)))

    # ------------------------------------------------------------------ sensitivity
    @_releasing
    def sensitivity(self, techniques: Any = ("prune", "cluster", "int8"), levels: Any = None, *,
                    samples: int | None = 500, layers: LayerSelection = None,
                    base: Variant | str | None = None,
                    progress: ProgressCallback | None = None) -> Sensitivity:
        """Which layers can take it: each layer alone pruned, clustered or int8-rounded,
        one-shot, and the model evaluated with the Workbench's metric.

        Args:
            techniques: some of ``"prune"``, ``"cluster"``, ``"int8"``.
            levels: per technique, e.g. ``{"prune": (0.5, 0.8, 0.9), "cluster": (32, 16, 8)}``
                (these are the defaults; int8 has one level).
            samples: test samples per evaluation (a fixed draw, the same for every one);
                None: the whole test split.
            layers: names or a predicate to measure only some layers; None: every layer
                each technique can act on, small ones included.
            base: the variant to measure (or its name); None is the original.
            progress: called after each evaluation with a :class:`Progress`; its ``stop()``
                ends the run, which then returns the rows so far (``complete`` False).

        Returns:
            A :class:`Sensitivity` (rows, ``plot``, ``suggest``). Nothing is added to the
            Workbench; results are cached per (base, technique, level, layer, samples), so a
            second run with more levels measures only what is new.
        """
        from compresswidgets import sensitivity as sens

        base_variant = self._base(base, "Sensitivity")
        chosen, _, _ = sens.check_request(techniques, levels, samples, len(self.data.x_test))
        model = (self._tfmot_model(base_variant, "Sensitivity")
                 if {"prune", "cluster"} & set(chosen) else base_variant.keras_model)
        if model is None:
            raise ValueError(f"Sensitivity needs a Keras model, and {base_variant.name!r} is "
                             "only a .tflite. Measure its parent (base=...).")
        layers = self._user_layers(layers)

        def int8_errors(x: np.ndarray, y: np.ndarray,
                        ) -> tuple[tuple[Any, ...], float | None, str]:
            try:
                report = tfl.int8_debugged(base_variant.export_model,
                                           quantization.representative(self.data, 100))
            except tfl.ConversionError as exc:  # the weight rows stand on their own
                return (), None, f"No activation errors: {exc}"
            return (tuple(e.named(self.user_name) for e in report.errors),
                    tfl.evaluate(report.tflite, x, y, self.metric), "")

        measured = sens.run(model, self.data.x_test, self.data.y_test, self.metric,
                            base=base_variant.name, techniques=techniques, levels=levels,
                            samples=samples, layers=layers, cache=self._sensitivity_cache,
                            progress=progress, user_name=self.user_name,
                            base_gzipped_bytes=base_variant.gzipped_bytes,
                            int8_errors=int8_errors)
        if "prune" in measured.levels and measured.complete:
            self._measured_sensitivity[base_variant.name] = measured
        return measured

    def apply_suggestion(self, suggestion: Mapping[str, Any], *, epochs: int = 2,
                         base: Variant | str | None = None,
                         progress: ProgressCallback | None = None) -> Variant:
        """Make the variants of a :meth:`Sensitivity.suggest` recipe, fine-tuned: prune (per
        layer), then cluster (per layer, keeping the zeros), then ``"int8"`` with its
        ``keep_float`` layers in float, each step on the one before.

        Args:
            suggestion: what :meth:`Sensitivity.suggest` returned (or a dict of the same
                shape: ``{"prune": {...}, "cluster": {...}, "keep_float": [...]}``).
            epochs: fine-tuning epochs of the prune and cluster steps.
            base: where to start (default: the original).
            progress: as for :meth:`prune`.

        Returns:
            The last variant made (its parents are the earlier steps).
        """
        if not isinstance(suggestion, Mapping):
            raise TypeError(f"apply_suggestion() takes what Sensitivity.suggest() returns, but "
                            f"got {describe(suggestion)}. E.g. "
                            "`wb.apply_suggestion(wb.sensitivity().suggest(max_drop=0.01))`.")
        unknown = [k for k in suggestion if k not in ("prune", "cluster", "keep_float")]
        if unknown:
            raise ValueError(f"A suggestion has the keys 'prune', 'cluster' and 'keep_float', "
                             f"but this one has {unknown!r}. Use Sensitivity.suggest().")
        steps = [k for k in ("prune", "cluster") if suggestion.get(k)]
        if not steps and "keep_float" not in suggestion:
            raise ValueError("This suggestion changes nothing (no layer stayed within its "
                             "max_drop). Ask for a larger max_drop, e.g. suggest(max_drop=0.02).")
        current = self._base(base, "The suggestion")
        if "prune" in steps:
            current = self.prune(dict(suggestion["prune"]), epochs=epochs, base=current,
                                 progress=progress)
        if "cluster" in steps:
            current = self.cluster(dict(suggestion["cluster"]), epochs=min(epochs, 1),
                                   preserve_sparsity="prune" in steps, base=current,
                                   progress=progress)
        if "keep_float" in suggestion:
            current = self.quantize("int8", keep_float=list(suggestion["keep_float"]) or None,
                                    base=current)
        return current

    # ------------------------------------------------------------------ sweeps
    @_releasing
    def sweep(self, prune: Any = None, cluster: Any = None, *, epochs: int = 2,
              then: Any = None, base: Variant | str | None = None, executor: Any = None,
              progress: Callable[[Any], Any] | None = None, seed: int = 0,
              layers: LayerSelection = None, max_workers: int | None = None,
              threads: int | None = None, max_candidates: int = 24) -> Sweep:
        """Many candidates at once: prune and/or cluster the base at each level, fine-tune
        each with the same seed, convert, and optionally quantize it after training; in
        parallel worker processes, or on any ``concurrent.futures.Executor`` (a Dask
        cluster through ``Client.get_executor()``). Every result is an ordinary variant.

        Args:
            prune: target sparsities, e.g. ``[0.5, 0.7, 0.8]``.
            cluster: numbers of clusters, e.g. ``[32, 16, 8]``; with ``prune`` a grid: each
                number of clusters on each pruned variant (sparsity preserved).
            epochs: fine-tuning epochs of every candidate.
            then: post-training steps for each candidate: some of ``"dynamic"``,
                ``"float16"``, ``"int8"`` (each its own variant, child of the candidate).
            base: the variant (or its name) to start from; None is the original.
            executor: None: local worker processes (:func:`~compresswidgets.sweeps.pool_size`
                chooses how many from the cores and the memory; ``max_workers`` overrides);
                or an Executor. Models that cannot travel (custom layers, a notebook loss)
                run one after another in the kernel when ``executor`` is None.
            progress: called with a :class:`~compresswidgets.sweeps.SweepProgress` when a
                candidate starts, finishes (and, on local workers, after each batch); its
                ``stop()`` cancels the candidates not finished; the finished ones are kept.
            seed: every candidate's fine-tuning seed (recorded in its recipe and code), so a
                rerun, or the same sweep on another executor, gives the same numbers.
            layers: as for :meth:`prune` (names, a predicate, or None for the default).
            max_workers: the number of local workers (default: by cores and memory).
            threads: TensorFlow threads per candidate (default: the cores over the local
                workers; 1 on another executor).
            max_candidates: a larger sweep is refused, with its size and an estimate of its
                time, until you raise this.

        Returns:
            A :class:`~compresswidgets.sweeps.Sweep`: ``rows``, ``front()``, ``best()``,
            ``plot()``; its variants are also in :attr:`variants`.

        Example:
            >>> sw = wb.sweep(prune=[0.5, 0.7, 0.8], epochs=2, then="int8")  # doctest: +SKIP
            >>> [v.name for v in sw.front()]                                   # doctest: +SKIP
        """
        from compresswidgets import _sweep_engine
        from compresswidgets import sweeps as sw

        prune_levels = sw.check_levels("prune", prune, sw._sparsity)
        cluster_levels = sw.check_levels("cluster", cluster, sw._clusters)
        if not prune_levels and not cluster_levels:
            raise ValueError("A sweep needs levels to try, but got neither prune= nor cluster=. "
                             "Pass e.g. wb.sweep(prune=[0.5, 0.7, 0.8]) or cluster=[32, 16, 8].")
        then_modes = sw.check_then(then)
        check_number("epochs", epochs, 0, 1000, integer=True,
                     hint="Pass the fine-tuning epochs of every candidate, e.g. epochs=2.")
        check_number("seed", seed, 0, 2**31 - 1, integer=True, hint="Pass e.g. seed=0.")
        check_number("max_candidates", max_candidates, 1, 100_000, integer=True,
                     hint="Pass how many candidates you accept, e.g. max_candidates=48.")
        if threads is not None:
            check_number("threads", threads, 1, 256, integer=True, hint="Pass e.g. threads=1.")
        if executor is not None:
            _sweep_engine.check_executor(executor)
        base_variant = self._base(base, "A sweep")
        model = self._tfmot_model(base_variant, "A sweep")
        candidates = sw.plan(prune_levels, cluster_levels, then_modes, base_variant)
        if len(candidates) > max_candidates:
            workers = sw.pool_size(sw.worker_bytes(model, self.data), len(candidates),
                                   max_workers) if executor is None else 1
            minutes = _sweep_engine.estimate_seconds(
                model, self.data, epochs, self.batch_size, len(candidates), workers) / 60
            grid = (f"{len(prune_levels)} prune + {len(prune_levels)} x {len(cluster_levels)} "
                    "cluster" if prune_levels and cluster_levels else "one per level")
            raise ValueError(
                f"This sweep has {len(candidates)} candidates ({grid}), each fine-tuned for "
                f"{epochs} epoch(s): about {minutes:.0f} minutes on {workers} worker(s) by a "
                f"rough estimate, over the limit of max_candidates={max_candidates}. Pass "
                f"max_candidates={len(candidates)} to run it anyway, or fewer levels.")
        engine = _sweep_engine.Engine(
            self, base_variant, candidates, epochs=int(epochs), seed=int(seed),
            layers=self._user_layers(layers), executor=executor, progress=progress,
            max_workers=max_workers, threads=threads)
        result = engine.run()
        self._sweeps.append(result)
        return result

    @property
    def sweeps(self) -> tuple[Sweep, ...]:
        """Every :meth:`sweep` and :meth:`search` so far (a search's rounds, then all its
        rows as one Sweep), oldest first."""
        return tuple(self._sweeps)

    @_releasing
    def search(self, max_drop: float = 0.01, *, objective: str = "gzipped_bytes",
               budget: int = 12, epochs: int = 2, then: Any = "default",
               base: Variant | str | None = None, executor: Any = None,
               progress: Callable[[Any], Any] | None = None, seed: int = 0,
               sensitivity: Sensitivity | None = None,
               max_workers: int | None = None) -> Variant | None:
        """The smallest (or fastest) variant whose metric stays within ``max_drop`` of the
        original's, found by pruning in parallel rounds (see :mod:`compresswidgets.search`):
        a spread of sparsities, then bisection towards the highest sparsity that qualifies,
        uniform and, when :meth:`sensitivity` was measured with pruning on this base (or
        ``sensitivity`` is given), per-layer targets from its suggestion. Every candidate is
        an ordinary variant; all of them are in ``wb.sweeps[-1]``.

        Args:
            max_drop: the largest metric drop accepted (in the metric's direction).
            objective: ``"gzipped_bytes"``, ``"size_bytes"``, or ``"median_ms"`` (the
                qualifying variants benchmarked in LiteRT at the end, one thread).
            budget: candidates to fine-tune at most (the post-training steps are free).
            epochs: fine-tuning epochs of each candidate.
            then: post-training steps of each candidate; default ``["int8"]``; None: float.
            base, executor, progress, seed, max_workers: as for :meth:`sweep`; a Stop
                ends the search with the best so far.
            sensitivity: a :class:`Sensitivity` with pruning levels to guide the search.

        Returns:
            The best qualifying variant; None when stopped before one qualified.

        Raises:
            ValueError: no candidate qualified (all of them are kept in the Workbench).

        Example:
            >>> best = wb.search(max_drop=0.01, budget=12)   # doctest: +SKIP
        """
        from compresswidgets.search import search

        return search(self, max_drop=max_drop, objective=objective, budget=budget,
                      epochs=epochs, then=then, base=base, executor=executor,
                      progress=progress, seed=seed, sensitivity=sensitivity,
                      max_workers=max_workers)

    # ------------------------------------------------------------------ recipes
    def recipe(self, variants: list[Variant] | None = None) -> dict[str, Any]:
        """How ``variants`` (default: all) were made, and the parents they need, as a plain
        JSON-able dict: one step per variant (name, parent, technique, the method's
        arguments, the seed of a seeded fine-tuning). :meth:`replay` rebuilds them.

        Example:
            >>> json.dump(wb.recipe(), open("recipe.json", "w"), indent=2)   # doctest: +SKIP
        """
        from compresswidgets.recipe import recipe_of

        return recipe_of(self, variants)

    @classmethod
    def replay(cls, recipe: Any, model: Any, data: Any, *,
               progress: ProgressCallback | None = None, **workbench_kwargs: Any) -> Workbench:
        """A new Workbench of ``model`` and ``data`` with the recipe's variants made again,
        with the same names, parents and arguments (same sparsity, clusters and sizes; the
        metrics within the run-to-run noise of fine-tuning, none for seeded steps run the
        same way).

        Args:
            recipe: what :meth:`recipe` returned, a path to it saved as JSON, or text such as
                ``"prune 0.8 epochs=2, quantize int8"`` (each step on the one before).
            model, data: as for ``Workbench(...)``; ``workbench_kwargs`` too (the recipe's
                batch size is the default).
            progress: for the fine-tuning steps, as for :meth:`prune`.

        Raises:
            ValueError, TypeError: a malformed recipe (the field at fault and what it should
                be), before anything is made.
        """
        from compresswidgets.recipe import load, replay

        checked = load(recipe)
        if "batch_size" in checked:
            workbench_kwargs.setdefault("batch_size", checked["batch_size"])
        wb = cls(model, data, **workbench_kwargs)
        replay(checked, wb, progress)
        return wb

    # ------------------------------------------------------------------ reporting
    def report(self, path: str | Path, variants: list[Variant] | None = None, *,
               benchmark: BenchmarkReport | None = None,
               sensitivity: Sensitivity | None = None, title: str | None = None) -> Path:
        """One self-contained HTML page for a reviewer (opens offline: styles inline, plots
        embedded, no script): the model and its weights, the variants against the original,
        the benchmark table and plots (``benchmark``), the sensitivity heatmap
        (``sensitivity``), the last sweep's plot, and per variant its per-layer table,
        before/after histogram, recipe and code. Every name is escaped.

        Args:
            path: the .html file to write (written whole or not at all).
            variants: which to detail (default: all).
            benchmark: a :meth:`benchmark` report to include.
            sensitivity: a :meth:`sensitivity` result to include.
            title: the page's heading.

        Returns:
            The path written.

        Example:
            >>> wb.report("report.html", benchmark=wb.benchmark())   # doctest: +SKIP
        """
        from compresswidgets.report import write

        return write(self, path, variants, benchmark=benchmark, sensitivity=sensitivity,
                     title=title)

    # ------------------------------------------------------------------ measuring
    def benchmark(self, variants: list[Variant] | None = None,
                  **kwargs: Any) -> BenchmarkReport:
        """:func:`compresswidgets.benchmark` of ``variants`` (default: all of them)."""
        from compresswidgets.benchmarking import benchmark

        return benchmark(list(variants) if variants is not None else list(self._variants),
                         **kwargs)

    # ------------------------------------------------------------------ comparing
    def compare(self, variants: list[Variant] | None = None) -> Comparison:
        """One row per variant against the original: the metric (``accuracy``, whatever the
        Workbench's metric is; ``metric_name`` says which), sizes and their ratios.

        Args:
            variants: the variants to compare; ``None``: all of them, the original first.

        Returns:
            A :class:`Comparison` (a list of dicts; ``str()`` of it is a table).
        """
        chosen = list(variants) if variants is not None else list(self._variants)
        ref = self.original
        rows = Comparison()
        rows.metric = self.metric
        for v in chosen:
            rows.append({
                "name": v.name, "technique": v.technique,
                "parent": v.parent.name if v.parent else None, "metric_name": self.metric.name,
                "accuracy": v.accuracy, "accuracy_delta": v.accuracy - ref.accuracy,
                "size_bytes": v.size_bytes, "gzipped_bytes": v.gzipped_bytes,
                "size_ratio": v.size_ratio, "gzipped_ratio": v.gzipped_ratio,
                "params": v.params, "sparsity": v.sparsity, "notes": " ".join(v.notes),
            })
        return rows


def _seed(seed: Any) -> int | None:
    if seed is None:
        return None
    return int(check_number("seed", seed, 0, 2**31 - 1, integer=True,
                            hint="Pass e.g. seed=0, or None for an unseeded fine-tuning."))


def _seed_recipe(seed: int | None) -> dict[str, Any] | None:
    return None if seed is None else {"seed": seed}


def _same(value: Any) -> Any:
    return value


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def _bridge_code(keras3: bool) -> str:
    if not keras3:
        return ("# tfmot leaves a model used as a layer (a backbone) whole, so compresswidgets\n"
                "# inlines its layers into one flat tf_keras model (named by path, weights\n"
                "# copied by name) and checks that both compute the same outputs on x_test.\n"
                "import compresswidgets as cw\n\n"
                "model = cw.to_tf_keras(model, x_test)")
    return ("# A Keras 3 model: tfmot 0.8.1 wraps tf_keras layers only, so compresswidgets\n"
            "# rebuilds it in tf_keras (the same layers, its weights copied by name; nested\n"
            "# models inlined) and checks that both compute the same outputs on x_test.\n"
            "import compresswidgets as cw\n\n"
            "keras3_model = model\n"
            "model = cw.to_tf_keras(keras3_model, x_test)")


def _preamble(demo: bool, keras3: bool = False) -> str:
    if keras3:
        return ("# Your Keras 3 model and data (this Workbench was given them directly):\n"
                "# model = keras3.saving.load_model(...)   (import keras as keras3)\n"
                "# x_train, y_train, x_test, y_test = ...")
    if demo:
        return ("# The demo model and data; replace with your own tf_keras model and arrays.\n"
                "import compresswidgets as cw\n\n"
                "model, (x_train, y_train, x_test, y_test) = cw.demo_model()")
    return ("# Your model and data (this Workbench was given them directly):\n"
            "# model = keras.models.load_model(...)\n"
            "# x_train, y_train, x_test, y_test = ...")
