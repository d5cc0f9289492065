"""Recipes that replay: how every variant of a Workbench was made, as plain JSON, and the
Workbench rebuilt from it on a fresh model.

A recipe is ``{"format": "compresswidgets.recipe/1", "batch_size": 32, "variants": [...]}``:
one step per variant, in the order they were made, each with its ``name``, ``parent`` (a
name), ``technique`` and the arguments of the Workbench method that made it (``seed``
included for seeded fine-tuning). The same words are accepted as text, for a command line:
``"prune 0.8 epochs=2, cluster 16, quantize int8"`` is a chain, each step on the one before.

Example:
    >>> recipe = wb.recipe()                                          # doctest: +SKIP
    >>> json.dump(recipe, open("recipe.json", "w"))                   # doctest: +SKIP
    >>> again = cw.Workbench.replay(recipe, model, data)              # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresswidgets._keras import describe

if TYPE_CHECKING:
    from compresswidgets.variant import Variant
    from compresswidgets.workbench import Workbench

__all__ = ["ARGUMENTS", "FORMAT", "check", "load", "parse", "recipe_of", "replay"]

FORMAT = "compresswidgets.recipe/1"
#: Per technique: the Workbench method's arguments a recipe step carries (everything else in
#: a variant's recipe, e.g. a pruning schedule's steps, follows from these and the data).
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "prune": ("target_sparsity", "schedule", "structure", "layers", "epochs", "seed"),
    "cluster": ("clusters", "init", "preserve_sparsity", "layers", "epochs", "seed"),
    "quantize": ("mode", "representative_samples", "keep_float", "epochs", "layers", "seed"),
}
#: What a text step's first word may be, and its one positional argument.
POSITIONAL = {"prune": "target_sparsity", "cluster": "clusters", "quantize": "mode"}


def step_of(variant: Variant) -> dict[str, Any]:
    """One variant's step: name, parent, technique and the method's arguments."""
    recipe = variant.recipe
    technique = recipe["technique"]
    step: dict[str, Any] = {"name": variant.name, "parent": recipe.get("parent"),
                            "technique": technique}
    for key in ARGUMENTS[technique]:
        if key in recipe:
            step[key] = recipe[key]
    if technique == "quantize" and recipe.get("mode") != "qat":
        step.pop("epochs", None)
        step.pop("layers", None)
    per_layer = isinstance(step.get("target_sparsity", step.get("clusters")), Mapping)
    if per_layer:  # per-layer targets name the layers themselves
        step.pop("layers", None)
    return step


def recipe_of(wb: Workbench, variants: list[Variant] | None = None) -> dict[str, Any]:
    """The recipe of ``variants`` (default: all) and of every parent they need."""
    chosen = list(variants) if variants is not None else list(wb.variants)
    needed: list[Variant] = []
    for v in chosen:
        for step in v.lineage[1:]:
            if all(step is not n for n in needed):
                needed.append(step)
    order = {id(v): i for i, v in enumerate(wb.variants)}
    needed.sort(key=lambda v: order.get(id(v), 0))
    return {"format": FORMAT, "model": wb.original.recipe.get("model"),
            "batch_size": wb.batch_size, "metric": wb.metric.name,
            "variants": [step_of(v) for v in needed]}


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false", "none"):
        return {"true": True, "false": False, "none": None}[lowered]
    return text


def parse(text: str) -> dict[str, Any]:
    """A recipe from text: comma-separated steps, each ``technique value key=value ...``,
    each on the one before (``"prune 0.8 epochs=2, quantize int8"``)."""
    steps, parent = [], "original"
    for i, part in enumerate(p.strip() for p in str(text).split(",")):
        words = part.split()
        if not words:
            raise ValueError(f"Recipe {text!r} has an empty step (number {i + 1}). Expected "
                             "comma-separated steps such as 'prune 0.8 epochs=2, quantize int8'.")
        technique = words[0].lower()
        if technique not in POSITIONAL:
            raise ValueError(f"Recipe step {part!r} starts with {words[0]!r}. Expected one of "
                             f"{', '.join(POSITIONAL)}, e.g. 'prune 0.8 epochs=2'.")
        step: dict[str, Any] = {"technique": technique, "parent": parent}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq:
                if POSITIONAL[technique] in step:
                    raise ValueError(f"Recipe step {part!r} has two values without a name "
                                     f"({step[POSITIONAL[technique]]!r} and {word!r}). Name "
                                     "the second, e.g. epochs=2.")
                step[POSITIONAL[technique]] = _number(word)
            elif key not in ARGUMENTS[technique]:
                raise ValueError(f"Recipe step {part!r} has {key!r}, which {technique} does "
                                 f"not take. Expected some of {', '.join(ARGUMENTS[technique])}.")
            else:
                step[key] = (value.split("+") if key in ("layers", "keep_float")
                             else _number(value))
        step["name"] = f"step {i + 1}: {part}"
        parent = step["name"]
        steps.append(step)
    return check({"format": FORMAT, "variants": steps})


def load(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A recipe from a dict, a JSON file's path, JSON text, or the text form of :func:`parse`."""
    if isinstance(source, Mapping):
        return check(dict(source))
    if not isinstance(source, str | Path):
        raise TypeError(f"A recipe is a dict, a .json path or a text such as 'prune 0.8', but "
                        f"got {describe(source)}.")
    text = str(source).strip()
    path = Path(text)
    if text.endswith(".json") or (len(text) < 4096 and path.is_file()):
        if not path.is_file():
            raise FileNotFoundError(f"No recipe file at {text!r}. Pass the path of a JSON file "
                                    "that wb.recipe() wrote, or a text recipe.")
        try:
            return check(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{text!r} is not JSON ({exc}). Expected what wb.recipe() "
                             "writes: {\"format\": ..., \"variants\": [...]}.") from None
    if text.startswith("{"):
        return check(json.loads(text))
    return parse(text)


def check(recipe: Any) -> dict[str, Any]:
    """``recipe`` if it is one, else a three-part error naming the field at fault."""
    if not isinstance(recipe, Mapping):
        raise TypeError(f"A recipe is a dict with 'format' and 'variants', but got "
                        f"{describe(recipe)}. Use wb.recipe() to make one.")
    if recipe.get("format") != FORMAT:
        raise ValueError(f"Recipe field 'format' is {recipe.get('format')!r}; expected "
                         f"{FORMAT!r}. Use a recipe that wb.recipe() wrote.")
    steps = recipe.get("variants")
    if steps is None:
        raise ValueError("The recipe has no field 'variants'; expected a list of steps "
                         "({'name', 'parent', 'technique', ...}), as wb.recipe() writes.")
    if not isinstance(steps, list):
        raise ValueError(f"Recipe field 'variants' is {describe(steps)}; expected a list of "
                         "steps ({'name', 'parent', 'technique', ...}).")
    names = {"original"}
    for i, step in enumerate(steps):
        where = f"Recipe step {i} (variants[{i}])"
        if not isinstance(step, Mapping):
            raise ValueError(f"{where} is {describe(step)}; expected a dict.")
        technique = step.get("technique")
        if technique not in ARGUMENTS:
            raise ValueError(f"{where} has technique {technique!r}; expected one of "
                             f"{', '.join(ARGUMENTS)}.")
        for field in ("name", "parent"):
            if not isinstance(step.get(field), str) or not step[field]:
                raise ValueError(f"{where} has {field} {step.get(field)!r}; expected a "
                                 "variant's name (text).")
        if step["parent"] not in names:
            raise ValueError(f"{where} ({step['name']!r}) starts from {step['parent']!r}, "
                             "which no earlier step makes. Expected 'original' or the name of "
                             "an earlier step; list the steps in the order they were made.")
        unknown = [k for k in step if k not in (*ARGUMENTS[technique], "name", "parent",
                                                "technique")]
        if unknown:
            raise ValueError(f"{where} ({step['name']!r}) has {unknown!r}, which {technique} "
                             f"does not take. Expected some of "
                             f"{', '.join(ARGUMENTS[technique])}.")
        if POSITIONAL[technique] not in step and technique != "cluster":
            raise ValueError(f"{where} ({step['name']!r}) has no {POSITIONAL[technique]!r}. "
                             f"Give it, e.g. '{technique} "
                             f"{'0.8' if technique == 'prune' else 'int8'}'.")
        names.add(step["name"])
    return dict(recipe)


def replay(recipe: Any, wb: Workbench, progress: Any = None) -> list[Variant]:
    """Make the recipe's variants on ``wb``, each step with its own name and parent; the
    variants made, in order."""
    recipe = load(recipe)
    made: dict[str, Variant] = {"original": wb.original}
    out = []
    for step in recipe["variants"]:
        kwargs = {k: v for k, v in step.items() if k not in ("technique", "parent", "name")}
        method = {"prune": wb.prune, "cluster": wb.cluster, "quantize": wb.quantize}[
            step["technique"]]
        if step["technique"] != "quantize" or step.get("mode") == "qat":
            kwargs["progress"] = progress
        made[step["name"]] = method(base=made[step["parent"]], name=_free(wb, step["name"]),
                                    **kwargs)
        out.append(made[step["name"]])
    return out


def _free(wb: Workbench, name: str) -> str:
    return name if name not in {v.name for v in wb.variants} else f"{name} (replayed)"

