"""What every technique shares: model checks, private clones, layer selection, argument checks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from compresswidgets import _keras

LayerSelection = None | str | Iterable[str] | Callable[[Any], bool]


def require_tfmot_model(model: Any, technique: str) -> None:
    """tfmot works on Sequential and functional tf_keras models only: say so, with the fix."""
    flavour = _keras.keras_flavour(model)
    if flavour == "keras3":
        raise ValueError(
            f"{technique} needs a tf_keras (Keras 2) model, but this one was built with Keras 3 "
            "(tfmot 0.8.1 cannot wrap Keras 3 layers). Rebuild the same architecture with "
            "`import tf_keras as keras` and copy the weights: "
            "`m2 = <same layers built with tf_keras>; m2.set_weights(model.get_weights())`. "
            "Post-training quantization (quantize('dynamic'), 'float16', 'int8', ...) works "
            "with Keras 3 models as they are."
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
    """A private copy: new layers, same weights. Techniques only ever touch such copies."""
    if _keras.keras_flavour(model) == "keras3":
        import keras

        copy = keras.models.clone_model(model)
    elif getattr(model, "_is_graph_network", False) or type(model).__name__ == "Sequential":
        copy = _keras.keras().models.clone_model(model)
    else:
        return model  # subclassed: cannot be cloned; only read-only uses reach here
    copy.set_weights(model.get_weights())
    return copy


def layer_names(model: Any) -> list[str]:
    return [layer.name for layer in model.layers]


def select_layers(model: Any, layers: LayerSelection, supports: Callable[[Any], bool],
                  technique: str) -> list[str]:
    """Names of the top-level layers a technique applies to.

    ``None``: every layer with weights that the technique supports. A list of names: exactly
    those (each must exist and be supported). A predicate: the supported layers it accepts.
    """
    by_name = {layer.name: layer for layer in model.layers}
    candidates = [layer for layer in model.layers if layer.weights and supports(layer)]
    if layers is None:
        chosen = candidates
    elif callable(layers):
        chosen = [layer for layer in candidates if layers(layer)]
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(
                f"{technique}: no layer named {', '.join(map(repr, unknown))} in model "
                f"{model.name!r}. Expected names from: {', '.join(by_name)}. "
                "Use layer names as listed by model.summary()."
            )
        bad = [n for n in names if not (by_name[n].weights and supports(by_name[n]))]
        if bad:
            usable = ", ".join(layer.name for layer in candidates) or "none"
            raise ValueError(
                f"{technique} cannot be applied to layer(s) "
                f"{', '.join(f'{n!r} ({type(by_name[n]).__name__})' for n in bad)}: they have no "
                f"weights or tfmot does not support them. Layers it can handle here: {usable}."
            )
        chosen = [by_name[n] for n in names]
    if not chosen:
        raise ValueError(
            f"{technique}: the layer selection {layers!r} matches no layer that can be "
            f"handled. Layers it can handle in {model.name!r}: "
            f"{', '.join(layer.name for layer in candidates) or 'none'}."
        )
    return [layer.name for layer in chosen]


def check_number(name: str, value: Any, low: float, high: float, *, integer: bool = False,
                 high_open: bool = False, hint: str = "") -> Any:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or (not integer and math.isnan(value)):
        kind = "a whole number" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, but got {value!r} "
                        f"({type(value).__name__}). {hint}".strip())
    above = value >= high if high_open else value > high
    if value < low or above:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, but got {value!r}. "
                         f"{hint}".strip())
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"Unknown {name} {value!r}. Expected one of: "
                         f"{', '.join(map(repr, options))}.")
    return value


def steps_per_epoch(samples: int, batch_size: int) -> int:
    return max(1, math.ceil(samples / batch_size))


def kernel_of(layer: Any) -> Any:
    """The layer's main weight (kernel or depthwise kernel), or None."""
    for attr in ("depthwise_kernel", "kernel"):
        value = getattr(layer, attr, None)
        if value is not None:
            return value
    return None
