"""Variant: one compressed (or original) model, its recipe, lineage, metrics and code."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from compresswidgets import _converter, _keras
from compresswidgets import tflite as tfl
from compresswidgets._data import Data, MetricSpec
from compresswidgets._files import json_text, safe_filename, write_files
from compresswidgets.inspection import inspect_weights
from compresswidgets.techniques._common import kernel_of

if TYPE_CHECKING:
    from compresswidgets._bridge import Bridged

__all__ = ["UnknownVariantError", "Variant", "safe_filename"]

FORMAT = "compresswidgets.variant/1"


class UnknownVariantError(ValueError, KeyError):
    """A name that no variant of the Workbench has: a ``ValueError`` (a bad argument, such as
    ``base="nope"``) and a ``KeyError`` (``wb["nope"]``), so either ``except`` catches it."""

    def __str__(self) -> str:  # the message as it is, not quoted as KeyError quotes it
        return Exception.__str__(self)


@dataclass(frozen=True)
class Context:
    """What a Workbench shares with its variants."""

    data: Data
    metric: MetricSpec
    preamble: str
    #: for a Keras 3 model: its verified tf_keras twin (:class:`compresswidgets._bridge.Bridged`)
    #: and a private Keras 3 clone (the architecture :meth:`Variant.to_keras3` rebuilds)
    bridge: Bridged | None = None
    keras3_model: Any = None
    #: a private clone of the user's architecture when the twin differs from it (a Keras 3
    #: model, or nested models inlined): what a variant's .keras file is written back into
    user_model: Any = None


HEADER = '''\
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tfmot needs Keras 2 (tf_keras): before TensorFlow
import numpy as np
import tensorflow as tf
import tf_keras as keras
import tensorflow_model_optimization as tfmot
'''


class Variant:
    """A model made by a technique from a parent variant, with its recipe and metrics.

    Metrics are computed on first use and cached: ``accuracy`` (on the test split; for
    quantized variants the .tflite model run by the LiteRT interpreter), ``size_bytes`` and
    ``gzipped_bytes`` of the .tflite (Keras variants are converted as plain float32),
    ``params``, ``sparsity``, per-layer ``layers`` and, for quantized variants,
    ``quantization_error``.

    Example:
        >>> q = wb.quantize("dynamic")                         # doctest: +SKIP
        >>> q.accuracy, q.size_bytes, q.gzipped_bytes          # doctest: +SKIP
        >>> print(q.code)                                      # doctest: +SKIP
    """

    def __init__(self, name: str, recipe: dict[str, Any], *, parent: Variant | None = None,
                 keras_model: Any = None, tflite: bytes | None = None, mode: str = "float32",
                 context: Context | None = None, notes: tuple[str, ...] = (),
                 code_step: str = "", metrics: dict[str, Any] | None = None,
                 export_model: Any = None,
                 conversion_error: tfl.ConversionError | None = None,
                 saved_code: str | None = None,
                 saved_chain: list[dict[str, Any]] | None = None) -> None:
        """A Workbench makes variants (and :meth:`load` reads saved ones); everything a
        variant is, is passed here, and none of it changes afterwards.

        Args:
            name: unique within its Workbench (``"pruned-1"``).
            recipe: the technique's parameters (``{"technique": "prune", ...}``).
            parent: the variant it was made from; ``None`` for the original.
            keras_model: the Keras model it is (pruned, clustered, QAT); ``None`` for a
                post-training conversion, which is only a .tflite.
            tflite: the converted flatbuffer; ``None``: converted from ``keras_model`` on
                first use. Validated: what is not a .tflite raises TypeError or ValueError.
            mode: the converter mode of ``tflite`` (``"float32"``, ``"int8"``, ...).
            context: what the Workbench shares (data, metric, code preamble).
            notes: sentences for the user (what was skipped and why).
            code_step: this step's code; :attr:`code` joins the steps from the original.
            metrics: metrics already measured (``{"accuracy": ...}``), kept as given.
            export_model: what is converted instead of ``keras_model`` (a Keras 3 original).
            conversion_error: why ``keras_model`` did not convert, raised on first use.
            saved_code, saved_chain: the code and lineage of a loaded variant.
        """
        self._name = name
        self._recipe = MappingProxyType(dict(recipe))
        self._parent = parent
        self._keras_model = keras_model
        # what is converted to .tflite when not keras_model: the Keras 3 model itself, for
        # the original of a bridged Workbench (its own export path, as the user would)
        self._export_model = export_model
        self._tflite = None if tflite is None else tfl.check_flatbuffer(tflite, "tflite")
        self._mode = mode
        self._context = context
        self._notes = tuple(notes)
        self._code_step = code_step
        # computed on first use and kept (a Variant's inputs never change after this)
        self._metrics: dict[str, Any] = dict(metrics or {})
        self._conversion_error = conversion_error
        self._saved_code = saved_code
        self._saved_chain = [dict(step) for step in saved_chain] if saved_chain else None

    # ------------------------------------------------------------------ identity
    @property
    def name(self) -> str:
        return self._name

    @property
    def recipe(self) -> dict[str, Any]:
        """Technique, every parameter, and the parent's name (and ``bridged_from: "keras3"``
        when the weights went through the Keras 3 bridge)."""
        recipe = {**self._recipe, "parent": self._parent.name if self._parent else None}
        if self.bridged:
            recipe["bridged_from"] = "keras3"
        return recipe

    @property
    def bridged(self) -> bool:
        """True when this variant's Keras model is (made from) the tf_keras twin of a Keras 3
        model; a post-training quantization of the original converts the Keras 3 model
        (unless the original converts its twin: see :attr:`export_model`)."""
        if self._context is None or self._context.keras3_model is None:
            return False
        ptq = self.is_quantized and self._recipe.get("mode") != "qat"
        parent = self._parent
        return not (ptq and parent is not None and parent._parent is None
                    and parent._export_model is not None)

    @property
    def export_model(self) -> Any:
        """The Keras model that is converted to .tflite (the user's Keras 3 model for the
        original of a bridged Workbench, unless Keras 3's export leaves its recurrent or
        TimeDistributed layers unfused: then, as for every other variant, :attr:`keras_model`,
        the twin)."""
        return self._export_model if self._export_model is not None else self._model()

    @property
    def recipe_chain(self) -> list[dict[str, Any]]:
        """The recipe of every step from the original to this variant, each with its name
        (as saved by :meth:`save`, so a loaded variant keeps it)."""
        if self._saved_chain is not None:
            return [dict(step) for step in self._saved_chain]
        return [v.recipe | {"name": v.name} for v in self.lineage]

    @property
    def conversion_error(self) -> tfl.ConversionError | None:
        """Why this variant has no .tflite (e.g. a QAT model the converter refused), once
        known; None otherwise."""
        return self._conversion_error

    @property
    def technique(self) -> str:
        return str(self._recipe.get("technique", "original"))

    @property
    def parent(self) -> Variant | None:
        return self._parent

    @property
    def lineage(self) -> list[Variant]:
        """From the original to this variant."""
        chain, node = [], self
        while node is not None:
            chain.append(node)
            node = node._parent
        return chain[::-1]

    @property
    def keras_model(self) -> Any:
        """The Keras model (tfmot wrappers stripped), or None for post-training quantization."""
        return self._model()

    @property
    def has_keras_model(self) -> bool:
        """Whether there is a :attr:`keras_model` (without building a deferred one)."""
        return self._keras_model is not None

    def _model(self) -> Any:
        """The Keras model, built now if it was deferred (a QAT model trained in the worker
        is rebuilt in the kernel on first use)."""
        return _keras.resolve(self._keras_model)

    @property
    def notes(self) -> tuple[str, ...]:
        """Warnings about the result, e.g. a layer that fell short of the target sparsity,
        or (once converted) a .tflite converted for a fixed batch, or a dynamic-range
        .tflite whose LSTM weights were not quantized (read from the .tflite)."""
        notes = self._notes
        if self._tflite is not None and self.tflite_batch is not None:
            notes = (*notes, f"The .tflite was converted for a fixed batch of "
                     f"{self.tflite_batch} (the model does not convert with a dynamic batch, "
                     "as Keras LSTM/GRU layers in TF 2.21); it is evaluated sample by sample.")
        if self._tflite is not None and self._mode == "dynamic":
            notes = (*notes, *self._cached("lstm_notes", self._lstm_notes))
        return notes

    def _lstm_notes(self) -> list[str]:
        model = self._weights_model()
        names = [name for name, _, _ in _converter.lstm_gates(model)] if model else []
        bridged = self._context.bridge if self._context is not None else None
        if bridged is not None:  # "bilstm (forward)": the layer as the user spells it
            names = [bridged.user_name(layer) + (f" ({side}" if side else "")
                     for layer, _, side in (n.partition(" (") for n in names)]
        return tfl.dynamic_lstm_notes(self.tflite, names)

    @property
    def tflite_batch(self) -> int | None:
        """The batch the .tflite was converted for; None when its batch is dynamic."""
        return self._cached("tflite_batch", lambda: tfl.fixed_batch(self.tflite))

    @property
    def metric(self) -> MetricSpec | None:
        """How ``accuracy`` is measured (the Workbench's metric); None for a loaded variant."""
        return self._context.metric if self._context else None

    @property
    def is_quantized(self) -> bool:
        return self.technique == "quantize"

    def __repr__(self) -> str:
        return f"Variant({self._name!r}, technique={self.technique!r})"

    # ------------------------------------------------------------------ tflite
    @property
    def tflite(self) -> bytes:
        """The .tflite flatbuffer (converted on first use and cached)."""
        if self._tflite is None:
            if self._conversion_error is not None:
                raise self._conversion_error
            if self.export_model is None:
                raise tfl.ConversionError(f"Variant {self._name!r} has no model to convert.")
            try:
                self._tflite = tfl.convert(self.export_model, self._mode)
            except tfl.ConversionError as exc:
                self._conversion_error = exc
                raise
        return self._tflite

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._metrics:
            self._metrics[key] = compute()
        return self._metrics[key]

    def _need_context(self, what: str) -> Context:
        if self._context is None:
            raise ValueError(f"{what} of variant {self._name!r} was not saved with it and "
                             "cannot be computed without its Workbench's data.")
        return self._context

    def _sizes(self) -> None:
        if "size_bytes" not in self._metrics or "gzipped_bytes" not in self._metrics:
            self._metrics["size_bytes"], self._metrics["gzipped_bytes"] = tfl.sizes(self.tflite)

    @property
    def size_bytes(self) -> int:
        self._sizes()  # one gzip pass answers both
        return self._metrics["size_bytes"]

    @property
    def gzipped_bytes(self) -> int:
        self._sizes()
        return self._metrics["gzipped_bytes"]

    # the one definition of "x smaller", used by compare(), the panels and the Studio
    @property
    def size_ratio(self) -> float:
        """The original's .tflite bytes ÷ this variant's .tflite bytes (1.0 for the
        original; as saved, for a loaded variant)."""
        return self._cached("size_ratio", lambda: self.lineage[0].size_bytes / self.size_bytes)

    @property
    def gzipped_ratio(self) -> float:
        """The original's gzipped bytes ÷ this variant's gzipped bytes: what sparsity and
        clusters buy once the file is compressed (as saved, for a loaded variant)."""
        return self._cached("gzipped_ratio",
                            lambda: self.lineage[0].gzipped_bytes / self.gzipped_bytes)

    # ------------------------------------------------------------------ accuracy
    @property
    def keras_accuracy(self) -> float | None:
        """The metric of the Keras model on the test split (None without a Keras model)."""
        def compute() -> float | None:
            if self._keras_model is None:
                return None
            ctx = self._need_context("keras_accuracy")
            return float(ctx.metric(ctx.data.y_test, keras_predict(self._model(),
                                                                  ctx.data.x_test)))
        return self._cached("keras_accuracy", compute)

    @property
    def tflite_accuracy(self) -> float:
        """The metric of the .tflite model, run by the LiteRT interpreter."""
        def compute() -> float:
            ctx = self._need_context("tflite_accuracy")
            return tfl.evaluate(self.tflite, ctx.data.x_test, ctx.data.y_test, ctx.metric)
        return self._cached("tflite_accuracy", compute)

    @property
    def accuracy(self) -> float:
        """Test accuracy (or the Workbench's metric): of the .tflite for quantized variants."""
        if self.is_quantized or self._keras_model is None:
            return self.tflite_accuracy
        return self.keras_accuracy

    # ------------------------------------------------------------------ weights
    def _weights_model(self) -> Any:
        node: Variant | None = self
        while node is not None and node._keras_model is None:
            node = node._parent
        return None if node is None else node._model()

    @property
    def params(self) -> int:
        model = self._weights_model()
        return self._cached("params", lambda: int(model.count_params()) if model else 0)

    @property
    def layers(self) -> list[dict[str, Any]]:
        """Per layer with a kernel: class, parameters, sparsity, distinct values (and the
        quantization error of its weights for quantized variants)."""
        def compute() -> list[dict[str, Any]]:
            model = self._weights_model()
            if model is None:
                return []
            report = inspect_weights(model, bins=None)
            # a QAT model wraps each layer (quant_dense around dense): name the layer inside
            inner = {w.name: w.layer for w in _walk(model) if getattr(w, "layer", None)}
            # a recurrent layer holds its kernels in a cell (lstm/lstm_cell): name the layer
            recurrent = {layer.name: layer for layer in model.layers
                         if getattr(layer, "cell", None) is not None
                         or getattr(layer, "forward_layer", None) is not None}
            rows, seen = [], set()
            for t in report.tensors:
                if t.weight not in ("kernel", "depthwise_kernel"):
                    continue
                name, cls = t.layer.split("/")[-1], t.layer_class
                top = t.layer.split("/")[0]
                if name in inner:
                    name, cls = inner[name].name, type(inner[name]).__name__
                elif top in recurrent:
                    name, cls = top, type(recurrent[top]).__name__
                if name in seen:  # the backward kernel of a Bidirectional: one row a layer
                    continue
                seen.add(name)
                row = {"layer": name, "path": t.layer, "class": cls, "params": t.params,
                       "sparsity": t.sparsity, "distinct": t.distinct}
                if top in recurrent:  # its input and recurrent kernels (both directions)
                    row.update(_recurrent_kernels(recurrent[top]), path=top)
                rows.append(row)
            if self.is_quantized:
                errors = {e.layer: e for e in self.quantization_error}
                for row in rows:
                    e = errors.get(row["layer"])
                    row.update(tflite_dtype=e.tflite_dtype if e else None,
                               max_abs_error=e.max_abs_error if e else None,
                               snr_db=e.snr_db if e else None)
            return rows
        return self._cached("layers", compute)

    @property
    def sparsity(self) -> float:
        """Fraction of exact zeros over all kernels."""
        rows = self.layers
        total = sum(r["params"] for r in rows)
        return sum(r["sparsity"] * r["params"] for r in rows) / total if total else 0.0

    @property
    def quantization_error(self) -> list[tfl.WeightError]:
        """Float kernels against the dequantized TFLite kernels (quantized variants)."""
        if not self.is_quantized:
            return []

        def compute() -> list[dict[str, Any]]:
            model = self._weights_model()
            return [e.as_dict() for e in tfl.quantization_error(model, self.tflite)]
        return [tfl.WeightError(**e) for e in self._cached("quantization_error", compute)]

    @property
    def layer_errors(self) -> list[tfl.LayerError]:
        """Full-integer variants (``"int8"``, ``"int8-only"``): each op's activation error
        against the float op fed the same input (TFLite's ``QuantizationDebugger``, see
        :class:`~compresswidgets.tflite.LayerError`): the layer, ``rmse_scale`` (about 0.29
        is rounding alone), ``typical_steps``, ``max_abs_error``, ``mean_error`` and
        ``misfit``. Measured on first use (one debugger run in the worker) and kept; [] for
        other variants. The debugger makes only "int8" models (float input and output), so
        for an "int8-only" variant these are the errors of the "int8" model with the same
        calibration: the same int8 ops, without the input and output conversion."""
        if self._mode not in ("int8", "int8-only"):
            return []

        def compute() -> list[dict[str, Any]]:
            from compresswidgets.techniques.quantization import representative

            ctx = self._need_context("layer_errors")
            if self._parent is None:
                raise ValueError(f"layer_errors of {self._name!r} need its parent's model.")
            report = tfl.int8_debugged(
                self._parent.export_model,
                representative(ctx.data, int(self._recipe.get("representative_samples", 100))),
                list(self._recipe.get("keep_float") or ()) or None)
            user = ctx.bridge.user_name if ctx.bridge is not None else str
            return [e.named(user).as_dict() for e in report.errors]
        return [tfl.LayerError(**e) for e in self._cached("layer_errors", compute)]

    def kernel(self, layer: str) -> np.ndarray:
        """The kernel of ``layer`` as this variant holds it: the Keras weights, or for a
        quantized variant the TFLite weights dequantized to float32 in Keras' layout."""
        if self.is_quantized:
            kernels = self._cached("kernels", lambda: tfl.dequantized_kernels(
                self._weights_model(), self.tflite))
            if layer not in kernels:
                raise KeyError(f"No kernel of layer {layer!r} found in the .tflite of "
                               f"{self._name!r}. Layers with one: {', '.join(kernels)}.")
            return kernels[layer]
        model = self._weights_model()
        found = kernel_of(model.get_layer(layer)) if model is not None else None
        if found is None:
            raise KeyError(f"Layer {layer!r} of {self._name!r} has no kernel.")
        return np.asarray(found.numpy())

    def metrics(self) -> dict[str, Any]:
        """Every metric, computed now if need be."""
        out = {
            "accuracy": self.accuracy, "keras_accuracy": self.keras_accuracy,
            "tflite_accuracy": self.tflite_accuracy, "size_bytes": self.size_bytes,
            "gzipped_bytes": self.gzipped_bytes, "size_ratio": self.size_ratio,
            "gzipped_ratio": self.gzipped_ratio, "params": self.params,
            "sparsity": self.sparsity, "layers": self.layers,
            "tflite_batch": self.tflite_batch,
        }
        if self.is_quantized:
            out["quantization_error"] = [e.as_dict() for e in self.quantization_error]
            out["input_dtype"] = str(tfl.input_dtype(self.tflite))
        return out

    # ------------------------------------------------------------------ code
    @property
    def code(self) -> str:
        """Plain tfmot / TFLiteConverter code that reproduces this variant, step by step."""
        if self._saved_code is not None:
            return self._saved_code
        preamble = self._context.preamble if self._context else (
            "# model = ...  (your tf_keras model)\n# x_train, y_train, x_test, y_test = ...")
        parts = [f"# Reproduces the compresswidgets variant {self._name!r}.", HEADER, preamble]
        parts.extend(step._code_step for step in self.lineage if step._code_step)
        if not self.is_quantized:
            parts.append("# The .tflite file (float32) that size_bytes and gzipped_bytes measure.\n"
                         + "\n".join(_float_converter(
                             self.tflite_batch if self._tflite is not None else None)))
        parts.append('with open("model.tflite", "wb") as f:\n    f.write(tflite_model)')
        return "\n\n".join(p.strip("\n") for p in parts) + "\n"

    # ------------------------------------------------------------------ Keras 3
    def to_keras3(self) -> Any:
        """This variant as a Keras 3 model: the architecture the user brought, with this
        variant's weights (zeros and clusters kept), its outputs verified against
        :attr:`keras_model` on the test data. For variants of a Keras 3 model only.

        Example:
            >>> p = wb.prune(0.8, epochs=2)                      # doctest: +SKIP
            >>> p.to_keras3().save("pruned.keras")               # doctest: +SKIP
        """
        from compresswidgets import _bridge

        ctx = self._context
        if ctx is None or ctx.keras3_model is None:
            raise ValueError(
                f"Variant {self._name!r} was not made from a Keras 3 model, so there is no "
                "Keras 3 architecture to return it in. Its keras_model is a tf_keras model: "
                "save it with `variant.keras_model.save('model.keras')` or use the .tflite.")
        if self.is_quantized:
            raise ValueError(
                f"Variant {self._name!r} is quantized: its int8/float16 weights exist only in "
                f"its .tflite (variant.save(...) writes it). For a Keras 3 model take its float "
                f"parent: wb[{self._parent.name if self._parent else 'original'!r}]"
                ".to_keras3().")
        model = self._weights_model()
        if ctx.bridge is None or model is None:
            return _bridge.keras3_clone(ctx.keras3_model)
        return _bridge.to_keras3(model, ctx.keras3_model, ctx.data.x_test, ctx.bridge.names)

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path, *, keras: bool | None = None) -> Path:
        """Write ``<name>.tflite`` and ``<name>.json`` (recipe, lineage, metrics) to ``folder``,
        and ``<name>.keras``: by default for a variant of a Keras 3 model (a Keras 3 file, from
        :meth:`to_keras3`); ``keras=True`` for a tf_keras variant too, ``False`` never.

        The file name is the variant's name made safe for any file system. Returns the JSON path.
        """
        folder = Path(folder)
        stem = safe_filename(self._name)
        from_keras3 = self._context is not None and self._context.keras3_model is not None
        if keras is None:
            keras = from_keras3 and not self.is_quantized
        files: dict[str, bytes | str] = {}
        if keras:
            files[f"{stem}.keras"] = self.keras_file()
        document = self.document(keras=keras)
        files[f"{stem}.tflite"] = self.tflite
        files[f"{stem}.json"] = json_text(document)
        write_files(folder, files)  # all of them or none
        return folder.expanduser() / f"{stem}.json"

    def document(self, *, keras: bool = False) -> dict[str, Any]:
        """What ``<name>.json`` holds: recipe, lineage, metrics, notes, the file names, code."""
        stem = safe_filename(self._name)
        return {
            "format": FORMAT, "name": self._name, "recipe": self.recipe,
            "lineage": self.recipe_chain,
            "metrics": self.metrics(), "notes": list(self._notes), "tflite": f"{stem}.tflite",
            "keras": f"{stem}.keras" if keras else None,
            "code": self.code,
        }

    def keras_file(self) -> bytes:
        """The bytes of a ``.keras`` file of this variant, loadable by the Keras the user
        brought: Keras 3 for a Keras 3 model (:meth:`to_keras3`), else tf_keras."""
        ctx = self._context
        if ctx is not None and ctx.keras3_model is not None:
            return _keras_file(self.to_keras3())
        model = self._weights_model() if self._keras_model is not None else None
        if ctx is not None and ctx.user_model is not None and ctx.bridge is not None and (
                model is not None and not self.is_quantized):
            from compresswidgets import _bridge  # the user's nesting, the variant's weights

            return _keras_file(_bridge.write_back(model, ctx.user_model, ctx.data.x_test,
                                                  ctx.bridge.names))
        if self._keras_model is not None:
            return _keras_file(self._model())
        raise ValueError(f"Variant {self._name!r} has no Keras model to write as .keras (it "
                         "is quantized: its .tflite is the model). Leave out the Keras file, "
                         "or write its parent's.")

    def export(self, folder: str | Path, formats: Any = ("tflite", "c", "keras", "json"), *,
               micro: bool | None = None) -> dict[str, Path]:
        """Files for the device in ``folder`` (all or none): ``tflite``; ``c``, a header and
        a source with the model as an aligned ``const unsigned char`` array and its length;
        ``keras``, a model file for the Keras you brought (not for a quantized variant);
        ``json``, recipe and metrics, with the TFLite Micro arena and accuracy when the
        ``tflite-micro`` package is installed (``micro=`` forces or skips it). Returns the
        paths by format.

        Example:
            >>> q.export("device", formats=("tflite", "c", "json"))   # doctest: +SKIP
        """
        from compresswidgets.export import export

        return export(self, folder, formats, micro_figures=micro)

    def micro(self) -> Any:
        """TFLite Micro on this variant (:class:`~compresswidgets.export.MicroReport`): the
        arena it needs and its metric on the test split, or the op it cannot run. Measured
        once (in a worker process) and kept."""
        from compresswidgets.export import MicroReport, micro

        found = self._cached("micro", lambda: micro(self, evaluate=self._context is not None)
                             .as_dict())
        return MicroReport(**found)

    @classmethod
    def load(cls, path: str | Path) -> Variant:
        """Read back what :meth:`save` wrote.

        Args:
            path: the variant's .json file, or a folder holding exactly one.

        Raises:
            FileNotFoundError: nothing saved there; ValueError: a JSON that is not a saved
                variant, or a .tflite beside it that is not a TFLite model.
        """
        path = Path(path)
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if len(found) != 1:
                raise ValueError(
                    f"{str(path)!r} holds {len(found)} .json files; expected exactly one. Pass "
                    "the path of the variant's .json file itself.")
            path = found[0]
        if not path.is_file():
            raise FileNotFoundError(f"No saved variant at {str(path)!r}. Pass the .json file "
                                    "that Variant.save() wrote.")
        try:
            document = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{str(path)!r} is not a saved variant: {exc}.") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a compresswidgets variant (format "
                             f"{document.get('format') if isinstance(document, dict) else None!r}"
                             f", expected {FORMAT!r}).")
        missing = [key for key in ("name", "recipe", "tflite", "metrics") if key not in document]
        if missing:
            raise ValueError(f"{str(path)!r} is not a complete saved variant: it has no "
                             f"{', '.join(missing)}. Expected what Variant.save() writes; "
                             "save the variant again.")
        blob_path = path.parent / Path(str(document["tflite"])).name  # never outside the folder
        if not blob_path.is_file():
            raise FileNotFoundError(f"{str(path)!r} names {blob_path.name!r}, which is not "
                                    f"beside it. Keep the .tflite that Variant.save() wrote "
                                    "in the same folder as its .json.")
        blob = tfl.check_flatbuffer(blob_path.read_bytes(), repr(str(blob_path)))
        recipe = dict(document["recipe"])
        recipe.pop("parent", None)
        return cls(document["name"], recipe, tflite=blob,
                   notes=tuple(document.get("notes", ())), metrics=document["metrics"],
                   saved_code=document.get("code"), saved_chain=document.get("lineage"))


def _keras_file(model: Any) -> bytes:
    """A model's ``.keras`` file as bytes (written aside first: Keras saves to a path)."""
    with tempfile.TemporaryDirectory(prefix="cw-keras-") as scratch:
        path = Path(scratch) / "model.keras"
        model.save(path)
        return path.read_bytes()


def _recurrent_kernels(layer: Any) -> dict[str, Any]:
    """Parameters, sparsity and distinct values over a recurrent layer's kernels: the input
    kernel and the recurrent kernel (of both directions for a Bidirectional), as pruned and
    clustered by tfmot."""
    values = np.concatenate([
        np.asarray(w.numpy()).ravel() for w in layer.weights
        if w.name.rsplit("/", 1)[-1].split(":")[0] in ("kernel", "recurrent_kernel")])
    return {"params": int(values.size), "sparsity": float(np.mean(values == 0)),
            "distinct": int(np.unique(values).size)}


def _walk(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models' layers included."""
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if getattr(layer, "layers", None):
            out.extend(_walk(layer))
    return out


def keras_predict(model: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Eager, batched inference: unlike ``predict`` it traces no function that would stay
    in TensorFlow's memory for every variant evaluated."""
    return np.concatenate([np.asarray(model(x[i : i + batch], training=False))
                           for i in range(0, len(x), batch)])


def _float_converter(fixed_batch: int | None) -> list[str]:
    return tfl.converter_code("float32", fixed_batch=fixed_batch)
