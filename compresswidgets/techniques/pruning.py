"""Magnitude pruning with ``tfmot.sparsity.keras.prune_low_magnitude``.

The schedule's steps are derived from the data size and epochs so that the target is reached
even on a small data set (tfmot's default ``frequency=100`` never fires on 43 steps an epoch),
and the achieved sparsity is measured afterwards, not assumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from compresswidgets import _keras
from compresswidgets._data import Data
from compresswidgets._training import CompileSettings, ProgressCallback, fine_tune
from compresswidgets.techniques._common import (
    Call,
    LayerSelection,
    check_choice,
    check_number,
    check_per_layer,
    kernel_of,
    kernel_size,
    select_layers,
    steps_per_epoch,
)

SCHEDULES = ("polynomial", "constant")
STRUCTURES = (None, "2:4")
DEFAULT_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class PruningParams:
    #: the uniform target, or (per-layer targets) the weights-weighted mean of ``targets``
    target_sparsity: float
    schedule: str
    structure: str | None
    layers: tuple[str, ...]
    epochs: int
    batch_size: int
    begin_step: int
    end_step: int
    frequency: int
    #: what was left out of the default selection, and why (not part of the recipe)
    notes: tuple[str, ...] = ()
    #: per-layer targets ``((layer, sparsity), ...)`` when a dict was given; () when uniform
    targets: tuple[tuple[str, float], ...] = ()

    @property
    def per_layer(self) -> bool:
        return bool(self.targets)

    def sparsity_of(self, layer: str) -> float:
        """The target of ``layer`` (the uniform one, or its own)."""
        return dict(self.targets).get(layer, self.target_sparsity)

    def as_dict(self) -> dict[str, Any]:
        recipe = {"technique": "prune", **self.__dict__, "layers": list(self.layers)}
        recipe.pop("notes")
        recipe.pop("targets")
        if self.targets:  # the recipe says what was asked: a target per layer
            recipe["target_sparsity"] = dict(self.targets)
        return recipe


def supports(layer: Any) -> bool:
    """Whether tfmot prunes some weight of this layer (a registry entry with no weights,
    such as DepthwiseConv2D or BatchNormalization, does not count)."""
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prunable_layer,
        prune_registry,
    )

    registry = prune_registry.PruneRegistry
    if isinstance(layer, prunable_layer.PrunableLayer):
        return True
    if not registry.supports(layer):
        return False
    if registry._is_rnn_layer(layer) or registry._is_mha_layer(layer):
        return True
    return bool(registry._weight_names(layer))


def validate(model: Any, data: Data, *, target_sparsity: Any, schedule: Any, structure: Any,
             layers: LayerSelection, epochs: Any, batch_size: int) -> PruningParams:
    _keras.tfmot()
    targets: dict[str, float] = {}
    if isinstance(target_sparsity, Mapping):
        targets = per_layer_targets(model, target_sparsity, layers)
        layers = list(targets)
    else:
        check_number("target_sparsity", target_sparsity, 0.0, 1.0, high_open=True,
                     hint="Pass the fraction of weights to zero, e.g. target_sparsity=0.8 for "
                     "80 %, or a dict of per-layer targets, e.g. {'dense': 0.8}.")
    check_choice("schedule", schedule, SCHEDULES)
    if structure not in STRUCTURES:
        raise ValueError(f"Unknown structure {structure!r}. Expected None (unstructured) or "
                         "'2:4' (two of every four consecutive weights are zero).")
    if structure == "2:4" and targets:
        raise ValueError(
            f"structure='2:4' always gives 50 % sparsity, but per-layer targets {targets} were "
            "given. Pass target_sparsity=0.5 with layers=[...] for 2:4, or structure=None for "
            "per-layer targets.")
    if structure == "2:4" and target_sparsity not in (0.5,):
        raise ValueError(
            f"structure='2:4' always gives 50 % sparsity, but target_sparsity={target_sparsity}."
            " Pass target_sparsity=0.5 with it, or structure=None for other targets.")
    check_number("epochs", epochs, 0, 1000, integer=True,
                 hint="Use epochs=0 for one-shot pruning without fine-tuning.")
    selection = select_layers(model, layers, supports, "Pruning", "prunable")
    names = list(selection.names)
    if structure == "2:4":
        names = _fit_two_four(model, names, explicit=layers is not None)
    steps = steps_per_epoch(len(data.x_train), batch_size) * epochs
    if epochs == 0 or schedule == "constant":
        frequency = max(1, min(steps, steps_per_epoch(len(data.x_train), batch_size) // 2))
        begin, end = 0, -1
    else:
        # Updates every `frequency` steps, the last one exactly at end_step, so the final
        # sparsity is the target; the remaining steps fine-tune with the mask fixed.
        frequency = max(1, steps // 10)
        begin, end = 0, max(frequency, frequency * int(0.8 * steps // frequency))
    overall = (overall_sparsity(model, targets) if targets else float(target_sparsity))
    return PruningParams(overall, schedule, structure, tuple(names), int(epochs),
                         int(batch_size), begin, end, frequency, selection.notes,
                         tuple(targets.items()))


def per_layer_targets(model: Any, targets: Mapping[Any, Any],
                      layers: LayerSelection) -> dict[str, float]:
    """``{layer: sparsity}`` checked: names of prunable layers, each target in [0, 1)."""
    check_per_layer(targets, layers, "target_sparsity", "0.8", "targets")
    select_layers(model, list(targets), supports, "Pruning", "prunable")  # names and kinds
    return {name: check_number(f"target_sparsity[{name!r}]", value, 0.0, 1.0,
                               high_open=True, hint="Each target is the fraction of that "
                               "layer's weights to zero, e.g. 0.8.")
            for name, value in targets.items()}


def overall_sparsity(model: Any, targets: Mapping[str, float]) -> float:
    """The weights-weighted mean of per-layer targets: the sparsity over the pruned kernels."""
    sizes = {name: kernel_size(model.get_layer(name)) for name in targets}
    total = sum(sizes.values())
    if not total:
        return float(np.mean(list(targets.values())))
    return float(sum(targets[n] * sizes[n] for n in targets) / total)


def _fit_two_four(model: Any, names: list[str], explicit: bool) -> list[str]:
    """2:4 groups a kernel's input channels in fours (TFLite layout): they must divide by 4."""
    def inputs(name: str) -> int:
        kernel = kernel_of(model.get_layer(name))
        return int(kernel.shape[-2]) if kernel is not None and len(kernel.shape) in (2, 4) else 0

    unfit = [n for n in names if inputs(n) % 4 or not inputs(n)]
    if unfit and explicit:
        raise ValueError(
            "structure='2:4' zeros two of every four input channels, so a layer's input "
            "channels must be a multiple of 4; "
            + ", ".join(f"{n!r} has {inputs(n)}" for n in unfit)
            + ". Leave them out with layers=[...].")
    fit = [n for n in names if n not in unfit]
    if not fit:
        raise ValueError("structure='2:4' needs layers whose input channels are a multiple of "
                         "4, and this model has none among the prunable layers.")
    return fit


def schedule(p: PruningParams, layer: str | None = None) -> Call:
    """The tfmot pruning schedule of ``p`` (of ``layer``, for per-layer targets), described
    once (object and code)."""
    target = p.target_sparsity if layer is None else p.sparsity_of(layer)
    steps = (("begin_step", p.begin_step), ("end_step", p.end_step), ("frequency", p.frequency))
    if p.epochs == 0 or p.schedule == "constant":
        return Call("sparsity.keras.ConstantSparsity", (("target_sparsity", target), *steps))
    return Call("sparsity.keras.PolynomialDecay",
                (("initial_sparsity", 0.0), ("final_sparsity", target), *steps))


def apply(model: Any, data: Data, p: PruningParams, settings: CompileSettings,
          progress: ProgressCallback | None = None) -> tuple[Any, list[str]]:
    """Prune a private copy ``model``; return the stripped model and notes on the result."""
    tfmot, k = _keras.tfmot(), _keras.keras()
    schedules = {name: schedule(p, name).build(tfmot) for name in p.layers}
    extra = {"sparsity_m_by_n": (2, 4)} if p.structure == "2:4" else {}

    def wrap(layer: Any) -> Any:
        if layer.name in schedules:
            return tfmot.sparsity.keras.prune_low_magnitude(
                layer, pruning_schedule=schedules[layer.name], **extra)
        return layer

    pruned = k.models.clone_model(model, clone_function=wrap)
    if p.epochs == 0:
        one_shot(pruned)
    else:
        fine_tune(pruned, data, settings=settings, epochs=p.epochs, batch_size=p.batch_size,
                  technique="Pruning", progress=progress,
                  callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    return stripped, check(stripped, p)


def one_shot(pruned: Any) -> None:
    """Magnitude pruning without training: one mask update at step 1, then apply the masks."""
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    for layer in pruned.layers:
        if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
            layer.pruning_step.assign(1)
            layer.pruning_obj.conditional_mask_update()
            layer.pruning_obj.weight_mask_op()


def achieved(model: Any, layers: tuple[str, ...]) -> dict[str, float]:
    """Fraction of exact zeros in each pruned layer's kernel."""
    out = {}
    for name in layers:
        layer = model.get_layer(name)
        kernel = kernel_of(layer)
        if kernel is not None:
            out[name] = float(np.mean(kernel.numpy() == 0))
    return out


def check(model: Any, p: PruningParams) -> list[str]:
    """Notes where a layer fell short of the target by more than one point."""
    notes = []
    for name, value in achieved(model, p.layers).items():
        target = 0.5 if p.structure == "2:4" else p.sparsity_of(name)
        if value < target - 0.01:
            notes.append(
                f"Layer {name!r} reached {value:.1%} sparsity, short of the {target:.0%} target. "
                "Train for more epochs or use schedule='constant'.")
    return notes


def code(p: PruningParams, settings: CompileSettings) -> str:
    """Plain tfmot code for this step; expects ``model``, ``x_train``, ``y_train``."""
    extra = ", sparsity_m_by_n=(2, 4)" if p.structure == "2:4" else ""
    if p.per_layer:
        head = [
            "# Prune each layer to its own target: "
            + ", ".join(f"{n} {p.sparsity_of(n):.0%}" for n in p.layers) + ".",
            "# A private copy first: wrapping layers of `model` itself would train its weights.",
            "base = keras.models.clone_model(model)",
            "base.set_weights(model.get_weights())",
            "schedules = {",
            *(f"    {n!r}: {schedule(p, n).code()}," for n in p.layers),
            "}",
        ]
        wrap = ["def apply_pruning(layer):",
                "    if layer.name in schedules:",
                "        return tfmot.sparsity.keras.prune_low_magnitude(",
                f"            layer, pruning_schedule=schedules[layer.name]{extra})",
                "    return layer"]
    else:
        head = [
            f"# Prune {', '.join(p.layers)} to {p.target_sparsity:.0%} sparsity"
            + (" (2:4 structure)" if p.structure else "") + ".",
            "# A private copy first: wrapping layers of `model` itself would train its weights.",
            "base = keras.models.clone_model(model)",
            "base.set_weights(model.get_weights())",
            f"schedule = {schedule(p).code()}",
            f"prune_layers = {list(p.layers)!r}",
        ]
        wrap = ["def apply_pruning(layer):",
                "    if layer.name in prune_layers:",
                "        return tfmot.sparsity.keras.prune_low_magnitude(",
                f"            layer, pruning_schedule=schedule{extra})",
                "    return layer"]
    lines = [
        *head,
        "",
        *wrap,
        "",
        "pruned = keras.models.clone_model(base, clone_function=apply_pruning)",
    ]
    if p.epochs == 0:
        lines += [
            "# One-shot: no training, one mask update (step 1), then apply the masks.",
            "for layer in pruned.layers:",
            "    if hasattr(layer, 'pruning_obj'):",
            "        layer.pruning_step.assign(1)",
            "        layer.pruning_obj.conditional_mask_update()",
            "        layer.pruning_obj.weight_mask_op()",
        ]
    else:
        lines += [
            f"pruned.compile(optimizer={settings.optimizer_code}, loss={settings.loss_code},",
            f"               metrics={settings.metrics_source})",
            f"pruned.fit(x_train, y_train, batch_size={p.batch_size}, epochs={p.epochs}, "
            "verbose=0,",
            "           callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])",
        ]
    lines.append("model = tfmot.sparsity.keras.strip_pruning(pruned)")
    return "\n".join(lines)
