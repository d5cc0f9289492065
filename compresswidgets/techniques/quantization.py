"""Quantization: post-training with the TFLite converter, or quantization-aware training.

QAT on a pruned and/or clustered base keeps what those bought, with tfmot's collaborative
schemes: PQAT (sparsity), CQAT (clusters) and PCQAT (both). What they kept is measured on the
trained kernels (a shortfall is a note on the variant).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from compresswidgets import _converter, _keras
from compresswidgets._converter import CALIBRATED
from compresswidgets._data import Data
from compresswidgets._training import CompileSettings, ProgressCallback, fine_tune
from compresswidgets.techniques._common import (
    Call,
    LayerSelection,
    check_choice,
    check_number,
    named_layers,
    rebuild_scope,
)

#: The modes of Workbench.quantize: the converter's, less the plain float32 conversion.
MODES = tuple(mode for mode in _converter.MODES if mode != "float32")
#: QAT schemes by name: the tfmot object, and what it keeps (for the code's comment).
SCHEMES: dict[str, tuple[Call, str]] = {
    "default": (Call("quantization.keras.default_8bit.Default8BitQuantizeScheme"), ""),
    "pqat": (Call("experimental.combine.Default8BitPrunePreserveQuantizeScheme"),
             " that keeps the sparsity (PQAT)"),
    "cqat": (Call("experimental.combine.Default8BitClusterPreserveQuantizeScheme"),
             " that keeps the clusters (CQAT)"),
    "pcqat": (Call("experimental.combine.Default8BitClusterPreserveQuantizeScheme",
                   (("preserve_sparsity", True),)), " that keeps sparsity and clusters (PCQAT)"),
}
DEFAULT_LEARNING_RATE = 1e-4
#: Schemes whose weight quantizers must be one per layer (see :func:`own_quantizers`).
OWN_QUANTIZERS = ("pcqat",)


@dataclass(frozen=True)
class QuantizationParams:
    mode: str
    representative_samples: int
    epochs: int
    batch_size: int
    layers: tuple[str, ...] | None
    scheme: str
    #: what was left float, and why (not part of the recipe)
    notes: tuple[str, ...] = ()
    #: "int8" only: layers whose ops stay float (the quantization debugger's denylist)
    keep_float: tuple[str, ...] = ()
    #: TFLite op types that ``keep_float`` keeps float by type (see ``_converter.BY_TYPE``)
    keep_float_ops: tuple[str, ...] = ()
    #: converter settings beyond the mode's, for this model (``_converter.extra_settings``:
    #: the previous dynamic-range quantizer for an LSTM the default one leaves float)
    converter_settings: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = {"technique": "quantize", **self.__dict__}
        d["layers"] = None if self.layers is None else list(self.layers)
        d.pop("notes")
        d.pop("keep_float")
        d.pop("keep_float_ops")
        d.pop("converter_settings")
        if self.keep_float:
            d["keep_float"] = list(self.keep_float)
        return d


def scheme_for(lineage: list[str]) -> str:
    """The QAT scheme that keeps what earlier steps of the lineage did."""
    pruned, clustered = "prune" in lineage, "cluster" in lineage
    return {(False, False): "default", (True, False): "pqat", (False, True): "cqat",
            (True, True): "pcqat"}[(pruned, clustered)]


def _registry() -> Any:
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    return default_8bit_quantize_registry.Default8BitQuantizeRegistry()


def qat_supports(layer: Any) -> bool:
    """tfmot's registry on one layer. It says no to BatchNormalization, which quantize_model
    folds into the conv before it: ask :func:`qat_rejected` about a whole model instead."""
    return _registry().supports(layer)


RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
             "ConvLSTM3D")


def recurrent_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if type(layer).__name__ in RECURRENT]


def qat_rejected(model: Any) -> list[str]:
    """The layers ``quantize_model`` would refuse, decided the way it decides: after the
    8-bit scheme's layout transforms (which fold BatchNormalization into a Conv2D or
    DepthwiseConv2D before it), a layer is refused when the registry has no config for it."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_scheme,
    )

    from compresswidgets.techniques._common import clone_with_weights

    scheme = default_8bit_quantize_scheme.Default8BitQuantizeScheme()
    copy = clone_with_weights(model)
    layer_map: dict[str, dict[str, Any]] = {layer.name: {} for layer in copy.layers}
    with rebuild_scope(copy):
        transformed, layer_map = scheme.get_layout_transformer().apply(copy, layer_map)
    registry = scheme.get_quantize_registry()
    return [layer.name for layer in transformed.layers
            if type(layer).__name__ != "InputLayer" and layer.name in layer_map
            and not layer_map[layer.name].get("quantize_config")
            and not registry.supports(layer)]


def validate(model: Any, data: Data, *, mode: Any, representative_samples: Any, epochs: Any,
             layers: LayerSelection, batch_size: int, lineage: list[str],
             keep_float: Any = None) -> QuantizationParams:
    check_choice("quantization mode", mode, MODES)
    kept = check_keep_float(model, mode, keep_float)
    check_number("representative_samples", representative_samples, 0, 100_000, integer=True)
    if mode in CALIBRATED and min(representative_samples, len(data.x_train)) < 1:
        raise ValueError(
            f"Mode {mode!r} needs representative data to calibrate activation ranges, but "
            f"representative_samples={representative_samples} and the training split has "
            f"{len(data.x_train)} samples. Pass representative_samples=100 (drawn from "
            "x_train), or use mode='dynamic', which needs no data.")
    names: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    if mode == "qat":
        _keras.tfmot()
        check_number("epochs", epochs, 1, 1000, integer=True,
                     hint="Quantization-aware training needs at least one epoch.")
        names, notes = qat_layers(model, layers)
    return QuantizationParams(mode, int(representative_samples), int(epochs), int(batch_size),
                              names, scheme_for(lineage) if mode == "qat" else "default", notes,
                              kept, kept_by_type(model, kept),
                              _converter.extra_settings(model, mode))


def check_keep_float(model: Any, mode: str, keep_float: Any) -> tuple[str, ...]:
    """``keep_float`` as a tuple of layer names of ``model``, for mode "int8" only."""
    if keep_float is None or (isinstance(keep_float, list | tuple) and not keep_float):
        return ()
    if mode != "int8":
        why = {"int8-only": "integer only means no float op at all",
               "int16x8": "the converter keeps layers float only in int8 models (its "
                          "quantization debugger makes int8)",
               "qat": "QAT chooses its float layers with layers=[...]"}.get(
            mode, "it has no integer ops to keep float")
        raise ValueError(
            f"keep_float={keep_float!r} works with mode='int8' only, but mode={mode!r}: "
            f"{why}. Use quantize('int8', keep_float=[...]).")
    names = [keep_float] if isinstance(keep_float, str) else keep_float
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"keep_float must be a list of layer names, e.g. ['conv2d'], but got "
                        f"{keep_float!r}.")
    named_layers(model, list(names), "keep_float")
    return tuple(dict.fromkeys(names))


#: Layers whose op TFLite keeps float only by op type (``_converter.BY_TYPE``).
BY_TYPE_LAYERS = {"Conv2DTranspose": "TRANSPOSE_CONV", "Conv1DTranspose": "TRANSPOSE_CONV"}


def kept_by_type(model: Any, kept: tuple[str, ...]) -> tuple[str, ...]:
    """The op types of :data:`BY_TYPE_LAYERS` among the ``kept`` layers of ``model``."""
    by_name = {layer.name: layer for layer in getattr(model, "layers", [])}
    return tuple(sorted({BY_TYPE_LAYERS[type(by_name[n]).__name__] for n in kept
                         if n in by_name and type(by_name[n]).__name__ in BY_TYPE_LAYERS}))


def qat_layers(model: Any, layers: LayerSelection) -> tuple[tuple[str, ...] | None,
                                                             tuple[str, ...]]:
    """The layers to annotate for QAT (None: the whole model) and notes on the others.

    By default every layer ``quantize_model`` accepts; the ones it would refuse stay float
    and a note names them (as the panel's checklist leaves them unticked).
    """
    rnn = recurrent_layers(model)
    if rnn:
        raise ValueError(
            "Quantization-aware training does not support recurrent layers ("
            + _named({layer.name: layer for layer in rnn}, [layer.name for layer in rnn])
            + "): tfmot 0.8.1 has no 8-bit QAT scheme for them. Use post-training "
            "quantization instead: quantize('dynamic'), 'float16' or 'int8' convert such "
            "models (with a fixed batch where the LSTM needs it).")
    rejected = qat_rejected(model)
    by_name = {layer.name: layer for layer in model.layers}
    if layers is None:
        if not rejected:
            return None, ()
        kept = tuple(layer.name for layer in model.layers
                     if type(layer).__name__ != "InputLayer" and layer.name not in rejected)
        if not any(by_name[n].weights for n in kept):
            raise ValueError(
                "QAT cannot quantize any layer with weights in this model: tfmot's 8-bit "
                "scheme has no QuantizeConfig for " + _named(by_name, rejected)
                + ". Use post-training quantization (mode='int8'), which handles every "
                "TFLite op.")
        return kept, ("Not quantizable by tfmot's 8-bit QAT scheme, left float: "
                      + _named(by_name, rejected) + ". The rest of the model is trained with "
                      "fake quantization; for an all-int8 model use mode='int8'.",)
    if callable(layers):
        chosen = [layer.name for layer in model.layers
                  if type(layer).__name__ != "InputLayer" and layer.name not in rejected
                  and layers(layer)]
    else:
        chosen = named_layers(model, layers, "QAT")
    bad = [n for n in chosen if n in rejected]
    if bad:
        raise ValueError(
            "QAT cannot quantize " + _named(by_name, bad) + ": tfmot's 8-bit scheme has no "
            "QuantizeConfig for them. Leave them out of layers=[...] (they then stay float), "
            "or use post-training quantization (mode='int8'), which handles every TFLite op.")
    if not chosen:
        raise ValueError(f"QAT: the layer selection {layers!r} matches no layer. Layers: "
                         f"{', '.join(by_name)}.")
    return tuple(chosen), ()


def _named(by_name: dict[str, Any], names: list[str]) -> str:
    return ", ".join(f"{n!r} ({type(by_name[n]).__name__})" if n in by_name else repr(n)
                     for n in names)


def representative(data: Data, samples: int) -> np.ndarray:
    """``samples`` training inputs, drawn with a fixed seed (as the generated code does)."""
    return _converter.representative(data.x_train, samples)


def build_qat(model: Any, p: QuantizationParams) -> Any:
    """The quantization-aware model of a private copy ``model`` (annotate, then apply)."""
    tfmot, k = _keras.tfmot(), _keras.keras()
    q = tfmot.quantization.keras
    if p.layers is None:
        annotated = q.quantize_annotate_model(model)
    else:
        chosen = set(p.layers)
        annotated = k.models.clone_model(
            model, clone_function=lambda layer: q.quantize_annotate_layer(layer)
            if layer.name in chosen else layer)
    scheme = SCHEMES[p.scheme][0].build(tfmot)
    if p.scheme in OWN_QUANTIZERS:
        scheme = own_quantizers(scheme)
    try:
        with rebuild_scope(model):
            return q.quantize_apply(annotated, scheme)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"tfmot could not quantize this model: {exc} Quantize only some layers with "
            "layers=[...], or use post-training quantization (mode='int8').") from exc


def apply(model: Any, data: Data, p: QuantizationParams, settings: CompileSettings,
          progress: ProgressCallback | None = None) -> tuple[Any, list[str]]:
    """Quantization-aware training of a private copy; the QAT Keras model and notes (where
    PQAT, CQAT or PCQAT did not keep the base's sparsity or clusters)."""
    before = kept_figures(model) if p.scheme != "default" else {}
    qat = build_qat(model, p)
    fine_tune(qat, data, settings=settings, epochs=p.epochs, batch_size=p.batch_size,
              technique="Quantization-aware training", progress=progress)
    return qat, check(before, kept_figures(qat), p.scheme)


def own_quantizers(scheme: Any) -> Any:
    """``scheme`` with one weight quantizer per layer.

    tfmot 0.8.1's cluster-preserving registry hands every Conv2D layer the same weight
    quantizer object (and every Dense layer another), and with ``preserve_sparsity=True`` the
    first layer without zeros (one left out of pruning, say) sets that object's
    ``preserve_sparsity`` to False for all of them: PCQAT then keeps no sparsity anywhere.
    The same fix is in the variant's code.
    """
    registry = scheme.get_quantize_registry()
    shared = registry.get_quantize_config

    def own(layer: Any) -> Any:
        config = shared(layer)
        if getattr(config, "weight_quantizer", None) is not None:
            config.weight_quantizer = copy.copy(config.weight_quantizer)
        return config

    registry.get_quantize_config = own
    scheme.get_quantize_registry = lambda: registry
    return scheme


#: One layer's kernel as QAT must keep it: (fraction of exact zeros, distinct values in the
#: whole kernel, most distinct values in one output channel).
Figures = tuple[float, int, int]


def kept_figures(model: Any) -> dict[str, Figures]:
    """:data:`Figures` per Conv2D/Dense layer (a QAT wrapper looked through). A clustered
    kernel has at most its clusters in each output channel, whether tfmot's CQAT keeps its
    centroids for the whole kernel or per channel; per-channel int8 keeps them per channel."""
    out = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", None) or layer
        # by name: inside a QAT wrapper, the layer's ``kernel`` attribute is a symbolic tensor
        kernel = next((v for v in layer.weights
                       if v.name.rsplit("/", 1)[-1].split(":")[0] == "kernel"), None)
        if kernel is None or type(inner).__name__ not in ("Conv2D", "Dense"):
            continue
        values = np.asarray(kernel.numpy())
        channels = values.reshape(-1, values.shape[-1])
        out[inner.name] = (float(np.mean(values == 0)), int(np.unique(values).size),
                           max(int(np.unique(channels[:, i]).size)
                               for i in range(channels.shape[1])))
    return out


#: A kernel with at most this many distinct values keeps them under CQAT (tfmot's limit:
#: it leaves kernels with more alone).
CLUSTERED = 1024


def check(before: dict[str, Figures], after: dict[str, Figures], scheme: str) -> list[str]:
    """Notes where QAT lost more than a point of a layer's sparsity (PQAT, PCQAT), or gave
    an output channel more distinct values than the whole clustered kernel of its base had
    (CQAT, PCQAT)."""
    notes = []
    for name, (sparsity, distinct, _) in before.items():
        if name not in after:
            continue
        now_sparsity, _, now_channel = after[name]
        label = f"QAT ({scheme.upper()})"
        if scheme in ("pqat", "pcqat") and sparsity > 0 and now_sparsity < sparsity - 0.01:
            notes.append(f"{label} left layer {name!r} at {now_sparsity:.1%} sparsity, where "
                         f"its base had {sparsity:.1%}.")
        if scheme in ("cqat", "pcqat") and distinct <= CLUSTERED and now_channel > distinct:
            notes.append(f"{label} left {now_channel} distinct values in an output channel of "
                         f"layer {name!r}, where its base had {distinct} in the whole kernel.")
    return notes


def code(p: QuantizationParams, settings: CompileSettings | None,
         fixed_batch: int | None = None) -> str:
    """Plain code for this step; expects ``model`` and ``x_train``; ends with ``tflite_model``."""
    lines: list[str] = []
    if p.mode == "qat":
        scheme, keeps = SCHEMES[p.scheme]
        lines += [
            f"# Quantization-aware training{keeps}.",
            "base = keras.models.clone_model(model)",
            "base.set_weights(model.get_weights())",
        ]
        if p.layers is None:
            lines.append("annotated = tfmot.quantization.keras.quantize_annotate_model(base)")
        else:
            lines += [
                f"qat_layers = {list(p.layers)!r}",
                "annotated = keras.models.clone_model(base, clone_function=lambda layer: (",
                "    tfmot.quantization.keras.quantize_annotate_layer(layer)",
                "    if layer.name in qat_layers else layer))",
            ]
        if p.scheme in OWN_QUANTIZERS:
            lines += [
                "# tfmot 0.8.1 gives every Conv2D layer one shared weight quantizer (and every "
                "Dense", "# layer another); the first layer without zeros switches sparsity "
                "preservation off", "# in it for all of them. One quantizer per layer:",
                "import copy",
                "",
                f"scheme = {scheme.code()}",
                "registry = scheme.get_quantize_registry()",
                "shared_config = registry.get_quantize_config",
                "",
                "def own_quantizer(layer):",
                "    config = shared_config(layer)",
                "    if getattr(config, 'weight_quantizer', None) is not None:",
                "        config.weight_quantizer = copy.copy(config.weight_quantizer)",
                "    return config",
                "",
                "registry.get_quantize_config = own_quantizer",
                "scheme.get_quantize_registry = lambda: registry",
            ]
            made = "scheme"
        else:
            made = scheme.code()
        lines += [
            "with tfmot.quantization.keras.quantize_scope():",
            f"    model = tfmot.quantization.keras.quantize_apply(annotated, {made})",
            f"model.compile(optimizer={settings.optimizer_code}, loss={settings.loss_code},",
            f"              metrics={settings.metrics_source})",
            f"model.fit(x_train, y_train, batch_size={p.batch_size}, epochs={p.epochs}, "
            "verbose=0)",
        ]
    convert = _converter.converter_code(p.mode, p.representative_samples, fixed_batch,
                                        p.converter_settings)
    if p.keep_float:  # the debugger converts, its denylist keeps those layers float
        convert = ["import csv", "import io", "", *convert[:-1],
                   *_converter.keep_float_code(list(p.keep_float), p.keep_float_ops)]
    lines += convert
    return "\n".join(lines)
