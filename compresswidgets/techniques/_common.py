"""What every technique shares: model checks, private clones, layer selection, argument checks."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from compresswidgets import _keras

LayerSelection = None | str | Iterable[str] | Callable[[Any], bool]


@dataclass(frozen=True)
class Call:
    """A tfmot object described once (as ``PruningSchedule.get_config()`` describes itself):
    the object is built from it and its code is written from it, so the two cannot drift.

    Example:
        >>> Call("sparsity.keras.ConstantSparsity", (("target_sparsity", 0.5),)).code()
        'tfmot.sparsity.keras.ConstantSparsity(target_sparsity=0.5)'
    """

    path: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def build(self, tfmot: Any) -> Any:
        target = tfmot
        for part in self.path.split("."):
            target = getattr(target, part)
        return target(**dict(self.kwargs))

    def code(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.kwargs)
        return f"tfmot.{self.path}({args})"


def require_tfmot_model(model: Any, technique: str) -> None:
    """tfmot works on Sequential and functional tf_keras models only: say so, with the fix."""
    flavour = _keras.keras_flavour(model)
    if flavour == "keras3":
        raise ValueError(
            f"{technique} needs a tf_keras (Keras 2) model, but this one was built with Keras 3 "
            "(tfmot 0.8.1 cannot wrap Keras 3 layers). Give it to cw.Workbench(model, data) or "
            "cw.Studio, which work on its verified tf_keras twin, or make the twin yourself: "
            "`cw.to_tf_keras(model, x_test)`."
        )
    if not (getattr(model, "_is_graph_network", False) or type(model).__name__ == "Sequential"):
        raise ValueError(
            f"{technique} supports Sequential and functional models only (as tfmot does), but "
            f"{getattr(model, 'name', 'this model')!r} is a subclassed model "
            f"({type(model).__name__}). Rewrite it with the functional API "
            "(keras.Input(...) -> layers -> keras.Model(inputs, outputs)), or use post-training "
            "quantization, which works on subclassed models."
        )


def clone_with_weights(model: Any) -> Any:
    """A private copy: new layers, same weights. Techniques only ever touch such copies.

    A functional tf_keras model that ``clone_model`` cannot clone (a layer renamed with
    ``layer._name = ...`` after building leaves its graph keyed by the old name) is rebuilt
    node by node from its layer configs instead.
    """
    if _keras.keras_flavour(model) == "keras3":
        from compresswidgets._bridge import keras3_clone

        if type(model).__name__ not in ("Functional", "Sequential"):
            return model  # subclassed: as below
        return keras3_clone(model)
    if getattr(model, "_is_graph_network", False) or type(model).__name__ == "Sequential":
        try:
            copy = _keras.keras().models.clone_model(model)
        except (ValueError, TypeError, KeyError) as exc:
            copy = _rebuild(model, exc)
    else:
        return model  # subclassed: cannot be cloned; only read-only uses reach here
    copy.set_weights(model.get_weights())
    return copy


def _rebuild(model: Any, cause: Exception) -> Any:
    """The same graph with new layers, walked through ``_nodes_by_depth`` (which does not
    depend on layer names), each layer made from its config; shared layers stay shared."""
    tf, k = _keras.tf(), _keras.keras()
    try:
        made: dict[int, Any] = {}
        tensors: dict[int, Any] = {}
        inputs = []
        for layer, tensor in zip(model._input_layers, model.inputs, strict=True):
            new = k.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=layer.name)
            tensors[id(tensor)] = new
            inputs.append(new)

        def mapped(value: Any) -> Any:
            return tensors.get(id(value), value)

        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                layer = node.layer
                if type(layer).__name__ == "InputLayer":
                    continue
                if id(layer) not in made:
                    if getattr(layer, "_is_graph_network", False):
                        made[id(layer)] = clone_with_weights(layer)
                    else:
                        config = dict(layer.get_config(), name=layer.name)
                        made[id(layer)] = type(layer).from_config(config)
                args = tf.nest.map_structure(mapped, node.call_args)
                kwargs = tf.nest.map_structure(mapped, node.call_kwargs)
                out = made[id(layer)](*args, **kwargs)
                for old, new in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(out),
                                    strict=True):
                    tensors[id(old)] = new
        outputs = tf.nest.map_structure(lambda t: tensors[id(t)], model.outputs)
        rebuilt = k.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name)
        for layer in model.layers:
            if id(layer) in made:
                made[id(layer)].set_weights(layer.get_weights())
        return rebuilt
    except Exception as exc:
        raise ValueError(
            f"Model {model.name!r} cannot be copied: tf_keras's clone_model fails on it "
            f"({type(cause).__name__}: {str(cause).splitlines()[0][:160]}) and rebuilding it "
            f"layer by layer failed too ({type(exc).__name__}: {exc}). This happens when "
            "layers were renamed after building (layer._name = ...) or layers are shared in "
            "unusual ways. Build the model with the names you want "
            "(keras.layers.Dense(..., name='head')), or save and reload it "
            "(model.save('m.keras'); keras.models.load_model('m.keras')).") from exc


@contextlib.contextmanager
def rebuild_scope(model: Any) -> Iterator[None]:
    """Where tfmot rebuilds ``model`` from its config (QAT's layout transforms): its custom
    layer classes are known by name, and its Lambda layers may be deserialised (the model
    is the user's own, in memory, not an untrusted file)."""
    from tf_keras.src.saving import serialization_lib

    custom = {type(layer).__name__: type(layer) for layer in _walk(model)
              if not type(layer).__module__.startswith("tf_keras.")}
    with serialization_lib.SafeModeScope(False), \
            _keras.tfmot().quantization.keras.quantize_scope(custom):
        yield


def _walk(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        out.extend(_walk(layer))
    return out


def layer_names(model: Any) -> list[str]:
    return [layer.name for layer in model.layers]


#: Layers with fewer weights than this are left out by default (API and panels alike): on
#: small models they cost the most accuracy per byte saved (the demo's 576-weight first conv
#: and 330-weight classifier: 0.85 accuracy at 80 % with them, 0.96 without).
TINY = 1024


@dataclass(frozen=True)
class Selection:
    """The layers a technique will act on, and what the user should know about the rest."""

    names: tuple[str, ...]
    notes: tuple[str, ...] = ()


def layer_size(layer: Any) -> int:
    """Weights in a layer (all of them: kernel, bias, recurrent kernel, ...)."""
    return int(sum(math.prod(int(d) for d in w.shape) for w in layer.weights))


def kernel_size(layer: Any) -> int:
    """Weights in the layer's main kernel (:func:`kernel_of`); 0 when it has none."""
    kernel = kernel_of(layer)
    return math.prod(int(d) for d in kernel.shape) if kernel is not None else 0


def _is_norm(layer: Any) -> bool:
    return "Normalization" in type(layer).__name__


def select_layers(model: Any, layers: LayerSelection, acts_on: Callable[[Any], bool],
                  technique: str, able: str) -> Selection:
    """The top-level layers a technique applies to.

    ``None``: every layer the technique can act on with at least :data:`TINY` weights (all of
    them when none is that big); the notes say what was left out. A list of names: exactly
    those (each must exist and be one the technique acts on). A predicate: the layers it
    accepts among those the technique acts on.
    """
    by_name = {layer.name: layer for layer in model.layers}
    candidates = [layer for layer in model.layers if layer.weights and acts_on(layer)]
    notes: list[str] = []
    if layers is None:
        big = [layer for layer in candidates if layer_size(layer) >= TINY]
        chosen = big or candidates
        small = [layer for layer in candidates if layer not in chosen]
        if small:
            notes.append(
                f"Left out by default (under {TINY:,} weights): "
                + _listed([f"{layer.name} ({layer_size(layer):,})" for layer in small])
                + ". Name them in layers=[...] to include them.")
    elif callable(layers):
        chosen = [layer for layer in candidates if layers(layer)]
    else:
        names = named_layers(model, layers, technique)
        bad = [n for n in names if not (by_name[n].weights and acts_on(by_name[n]))]
        if bad:
            usable = ", ".join(layer.name for layer in candidates) or "none"
            raise ValueError(
                f"{technique} cannot be applied to layer(s) "
                f"{', '.join(f'{n!r} ({type(by_name[n]).__name__})' for n in bad)}: they have no "
                f"weights tfmot can act on (not {able}). Layers it can handle here: {usable}."
            )
        chosen = [by_name[n] for n in names]
    if not chosen:
        raise ValueError(
            f"{technique}: the layer selection {layers!r} matches no layer that can be "
            f"handled. Layers it can handle in {model.name!r}: "
            f"{', '.join(layer.name for layer in candidates) or 'none'}."
        )
    left = left_alone_note(model, acts_on, able)
    return Selection(tuple(layer.name for layer in chosen), (*notes, *([left] if left else [])))


def named_layers(model: Any, layers: str | Iterable[str], technique: str) -> list[str]:
    """``layers`` as a list of names, each a layer of ``model`` (else a three-part error)."""
    names = [layers] if isinstance(layers, str) else list(layers)
    known = [layer.name for layer in model.layers]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"{technique}: no layer named {', '.join(map(repr, unknown))} in model "
            f"{model.name!r}. Expected names from: {', '.join(known)}. "
            "Use layer names as listed by model.summary().")
    return names


def left_alone_note(model: Any, acts_on: Callable[[Any], bool], able: str) -> str:
    """Which layers with weights the technique cannot act on (depthwise convs for pruning,
    custom layers, ...), normalisation layers aside; "" when there are none."""
    others = [layer for layer in model.layers
              if layer.trainable_weights and not acts_on(layer) and not _is_norm(layer)]
    if not others:
        return ""
    return (f"Not {able} by tfmot, left as they are: "
            + _listed([f"{layer.name} ({type(layer).__name__})" for layer in others]) + ".")


def _listed(items: list[str], most: int = 8) -> str:
    """``a, b, c`` -- or the first ``most`` and how many more (MobileNet has dozens)."""
    if len(items) <= most:
        return ", ".join(items)
    return ", ".join(items[:most]) + f" and {len(items) - most} more"


def check_number(name: str, value: Any, low: float, high: float, *, integer: bool = False,
                 high_open: bool = False, hint: str = "") -> Any:
    """``value`` as a Python int or float, or a three-part error: a TypeError for what is not
    a number (a bool, a string, 2.0 where a whole number is expected), a ValueError for NaN,
    infinity or a value out of range. NumPy numbers are accepted."""
    ok_type = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not ok_type:
        kind = "a whole number" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, but got {value!r} "
                        f"({type(value).__name__}). {hint}".strip())
    bracket = ")" if high_open else "]"
    if not integer and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}{bracket}, but got "
                         f"{value!r}. {hint}".strip())
    above = value >= high if high_open else value > high
    if value < low or above:
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, but got {value!r}. "
                         f"{hint}".strip())
    return int(value) if integer else float(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"Unknown {name} {value!r}. Expected one of: "
                         f"{', '.join(map(repr, options))}.")
    return value


def steps_per_epoch(samples: int, batch_size: int) -> int:
    return max(1, math.ceil(samples / batch_size))


def kernel_of(layer: Any) -> Any:
    """The layer's main weight (kernel or depthwise kernel; a recurrent layer's input kernel,
    the forward one of a Bidirectional; an attention layer's query kernel), or None."""
    for attr in ("depthwise_kernel", "kernel"):
        value = getattr(layer, attr, None)
        if value is not None:
            return value
    query = getattr(layer, "_query_dense", None)  # MultiHeadAttention: its query projection
    if query is not None:
        return getattr(query, "kernel", None)
    inner = getattr(layer, "forward_layer", None) or layer
    cell = getattr(inner, "cell", None)
    if cell is not None and not isinstance(cell, list | tuple):
        return getattr(cell, "kernel", None)
    return None


def check_per_layer(values: Any, layers: LayerSelection, argument: str, example: str,
                    what: str) -> None:
    """A per-layer dict (``{"dense": 0.8}``) keyed by layer names, given without
    ``layers``; else a three-part error. ``what``: "targets" or "clusters"."""
    if layers is not None:
        raise ValueError(
            f"Per-layer {what} {dict(values)!r} name their layers, so layers={layers!r} "
            f"cannot be given as well. Pass one of them: {argument}={{'dense': {example}}} or "
            f"{argument}={example}, layers=['dense'].")
    if not values:
        raise ValueError(f"{argument}={{}} names no layer. Pass per-layer {what} such as "
                         f"{{'dense': {example}}}, or one number for every layer.")
    bad = [key for key in values if not isinstance(key, str)]
    if bad:
        raise TypeError(f"Per-layer {what} are keyed by layer name, but got {bad[0]!r} "
                        f"({type(bad[0]).__name__}). Use names from model.summary(), e.g. "
                        f"{{'dense': {example}}}.")
