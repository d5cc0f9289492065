"""The Keras functional graph as data: which tensor feeds which layer, read from a model's
config, in both Keras flavours' layouts.

A layer's call (a *node*) is kept in the config as Keras wrote it:

- Keras 3: ``{"args": [...], "kwargs": {...}}``, each tensor a ``__keras_tensor__`` dict whose
  ``keras_history`` is ``[layer, node, index]``;
- tf_keras: ``[[layer, node, index, kwargs], ...]``.

:func:`refs` reads the tensors a node takes, :func:`map_refs` rewrites them, :func:`inline`
flattens the nested models (a Keras application used as a backbone, a block model) into one
graph whose layer names are paths (``"mobilenetv2/block_1_project"``), and
:func:`check_buildable` proves that tf_keras can rebuild a config before it tries (its
``Functional.from_config`` loops forever on a node whose inputs never appear).

Example:
    >>> config = {"name": "m", "layers": [
    ...     {"class_name": "InputLayer", "name": "x", "config": {"name": "x"},
    ...      "inbound_nodes": []},
    ...     {"class_name": "Dense", "name": "d", "config": {"name": "d"},
    ...      "inbound_nodes": [[["x", 0, 0, {}]]]}],
    ...     "input_layers": [["x", 0, 0]], "output_layers": [["d", 0, 0]]}
    >>> check_buildable(config)
    >>> refs(config["layers"][1]["inbound_nodes"][0])
    [('x', 0, 0)]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

#: Class names of models that can be layers of another model.
MODELS = ("Functional", "Sequential", "Model")
#: The separator of a nested layer's path (the user's view; TensorFlow gets a safe name).
SEP = "/"

Ref = tuple[str, int, int]


class GraphError(ValueError):
    """A model config whose graph cannot be built or flattened."""


# -- tensors in a node ------------------------------------------------------------------------


def _is_tensor(item: Any) -> bool:
    return isinstance(item, dict) and item.get("class_name") == "__keras_tensor__"


def _is_legacy_ref(item: Any) -> bool:
    return (isinstance(item, list | tuple) and len(item) >= 3 and isinstance(item[0], str)
            and isinstance(item[1], int) and isinstance(item[2], int))


def _walk(node: Any) -> Iterator[Any]:
    """The tensors of a node in call order (args first, then kwargs); tf_keras writes a
    tensor keyword (a TFOpLambda's ``y``) as ``[layer, node, index]`` in a ref's kwargs."""
    if _is_legacy_ref(node):  # a TFOpLambda's call is written as one ref, not a list
        node = [node]
    if isinstance(node, list) and all(_is_legacy_ref(t) for t in node):
        for ref in node:
            yield ref
            if len(ref) > 3 and isinstance(ref[3], dict):
                yield from _legacy_keywords(ref[3])
        return
    stack = [node.get("args", []), node.get("kwargs", {})] if isinstance(node, dict) else [node]

    def visit(item: Any) -> Iterator[Any]:
        if _is_tensor(item):
            yield item
        elif isinstance(item, dict):
            for value in item.values():
                yield from visit(value)
        elif isinstance(item, list | tuple):
            for value in item:
                yield from visit(value)

    for part in stack:
        yield from visit(part)


def _legacy_keywords(item: Any) -> Iterator[Any]:
    if _is_legacy_ref(item) and len(item) == 3:
        yield item
    elif isinstance(item, dict):
        for value in item.values():
            yield from _legacy_keywords(value)
    elif isinstance(item, list):
        for value in item:
            yield from _legacy_keywords(value)


def refs(node: Any) -> list[Ref]:
    """The tensors one call of a layer takes, as ``(layer, node, index)``, in call order."""
    out = []
    for item in _walk(node):
        history = item["config"]["keras_history"] if _is_tensor(item) else item
        out.append((str(history[0]), int(history[1]), int(history[2])))
    return out


def map_refs(node: Any, fn: Callable[[Ref], Ref]) -> Any:
    """A copy of ``node`` with every tensor reference ``r`` replaced by ``fn(r)``."""
    node = copy.deepcopy(node)
    for item in _walk(node):
        if _is_tensor(item):
            history = item["config"]["keras_history"]
            history[:3] = list(fn((history[0], history[1], history[2])))
        else:
            item[:3] = list(fn((item[0], item[1], item[2])))
    return node


def endpoints(value: Any) -> list[Ref]:
    """A config's ``input_layers`` / ``output_layers`` as a list of refs (Keras 3 writes a
    single one without the outer list)."""
    if value and isinstance(value[0], str):
        value = [value]
    return [(str(n), int(i), int(t)) for n, i, t, *_ in value]


def _make_ref(keras3: bool, ref: Ref) -> Any:
    if keras3:
        return {"class_name": "__keras_tensor__",
                "config": {"shape": None, "dtype": "float32", "keras_history": list(ref)}}
    return [*ref, {}]


def _call(keras3: bool, ref: Ref) -> Any:
    """One call of a layer on one tensor, in the layout of the config."""
    if keras3:
        return {"args": [_make_ref(True, ref)], "kwargs": {}}
    return [_make_ref(False, ref)]


# -- nested models --------------------------------------------------------------------------


def layer_names(config: dict[str, Any]) -> Iterator[str]:
    """Every layer name of a model config, nested models' layers included."""
    for entry in config.get("layers", []):
        yield entry["config"].get("name", entry.get("name"))
        if entry["class_name"] in MODELS:
            yield from layer_names(entry["config"])


def nested(config: dict[str, Any]) -> list[str]:
    """The names of the models used as layers at the top of ``config``."""
    return [e["config"]["name"] for e in config.get("layers", []) if e["class_name"] in MODELS]


def as_functional(config: dict[str, Any], keras3: bool) -> dict[str, Any]:
    """A Sequential config as the functional config of the same chain, in Keras 3's layout or
    tf_keras' (an InputLayer is made from ``build_input_shape`` or the first layer's
    ``batch_input_shape`` when it has none)."""
    entries = copy.deepcopy(config["layers"])
    if not entries:
        raise GraphError(f"Sequential model {config.get('name')!r} has no layers.")
    if entries[0]["class_name"] != "InputLayer":
        shape = config.get("build_input_shape") or entries[0]["config"].get("batch_input_shape")
        if shape is None:
            raise GraphError(
                f"Sequential model {config.get('name')!r} has no input shape in its config. "
                "Build it with keras.Input(...) as its first layer.")
        name = f"{config.get('name', 'sequential')}_input"
        shape_key = "batch_shape" if keras3 else "batch_input_shape"
        entry = {"class_name": "InputLayer",
                 "config": {shape_key: list(shape), "dtype": "float32", "name": name}}
        if keras3:
            entry.update(module="keras.layers", registered_name=None)
        entries.insert(0, entry)
    previous: Ref = (entries[0]["config"]["name"], 0, 0)
    entries[0]["name"] = previous[0]
    entries[0]["inbound_nodes"] = []
    for entry in entries[1:]:
        entry["name"] = entry["config"]["name"]
        entry["inbound_nodes"] = [_call(keras3, previous)]
        previous = (entry["name"], 0, 0)
    return {key: value for key, value in config.items() if key not in ("layers",
                                                                      "build_input_shape")} | {
        "layers": entries, "input_layers": [[entries[0]["name"], 0, 0]],
        "output_layers": [list(previous)]}


def inline(kind: str, config: dict[str, Any], keras3: bool) -> tuple[str, dict[str, Any],
                                                                      list[str]]:
    """Flatten the models used once as layers of ``config`` into its own graph.

    A nested layer's name becomes its path (``"outer/inner"``); a nested model's inputs are
    wired to the tensors it was called on and its outputs feed what it fed. A model used as a
    layer more than once (its weights shared between the calls) stays nested.

    Returns ``(kind, config, inlined)``: ``kind`` is ``"Functional"`` when anything was
    inlined (a Sequential becomes the functional graph of its chain), ``inlined`` the paths
    of the models that were.
    """
    if kind == "Sequential" and any(e["class_name"] in MODELS for e in config["layers"]):
        kind, config = "Functional", as_functional(config, keras3)  # one call a layer
    if not any(_inlinable(e) for e in config.get("layers", [])):
        return kind, config, []
    layers: list[dict[str, Any]] = []
    replace: dict[str, list[Ref]] = {}
    done: list[str] = []
    for entry in config["layers"]:
        if not _inlinable(entry):
            layers.append(copy.deepcopy(entry))
            continue
        name = entry["config"]["name"]
        inner_kind, inner, deeper = inline(entry["class_name"], entry["config"], keras3)
        if inner_kind == "Sequential":
            inner = as_functional(inner, keras3)
        prefix = name + SEP
        inputs = endpoints(inner["input_layers"])
        outer = refs(entry["inbound_nodes"][0])
        if len(outer) != len(inputs):
            raise GraphError(
                f"Nested model {name!r} has {len(inputs)} inputs but is called on "
                f"{len(outer)} tensors.")
        for (input_name, _, _), ref in zip(inputs, outer, strict=True):
            replace[prefix + input_name] = [ref]
        replace[name] = [(prefix + n, i, t) for n, i, t in endpoints(inner["output_layers"])]

        def rename(ref: Ref, prefix: str = prefix) -> Ref:
            return (prefix + ref[0], ref[1], ref[2])

        for sub in inner["layers"]:
            if sub["class_name"] == "InputLayer":
                continue
            sub = copy.deepcopy(sub)
            sub["config"]["name"] = prefix + sub["config"]["name"]
            sub["name"] = sub["config"]["name"]
            sub["inbound_nodes"] = [map_refs(n, rename) for n in sub.get("inbound_nodes", [])]
            layers.append(sub)
        done.extend([name, *(prefix + d for d in deeper)])

    def resolve(ref: Ref) -> Ref:
        seen = 0
        while ref[0] in replace:
            targets = replace[ref[0]]
            if ref[2] >= len(targets):
                raise GraphError(f"Output {ref[2]} of nested model {ref[0]!r} does not exist.")
            ref = targets[ref[2]]
            seen += 1
            if seen > len(replace) + 1:
                raise GraphError(f"The nested models around {ref[0]!r} form a cycle.")
        return ref

    for entry in layers:
        entry["inbound_nodes"] = [map_refs(n, resolve) for n in entry.get("inbound_nodes", [])]
    out = {key: value for key, value in config.items() if key != "layers"} | {"layers": layers}
    out["input_layers"] = [list(resolve(r)) for r in endpoints(config["input_layers"])]
    out["output_layers"] = [list(resolve(r)) for r in endpoints(config["output_layers"])]
    return "Functional", out, done


def _inlinable(entry: dict[str, Any]) -> bool:
    """A model used as a layer exactly once (a shared one keeps its shared weights nested)."""
    return entry["class_name"] in MODELS and len(entry.get("inbound_nodes") or []) == 1


# -- can tf_keras build it? -----------------------------------------------------------------


def _node_offset(entry: dict[str, Any]) -> int:
    """tf_keras numbers the calls of a nested network from 1 (its node 0 is its own graph)."""
    if entry["class_name"] == "Functional" or entry["class_name"] == "Model":
        return 1
    if entry["class_name"] == "Sequential":
        layers = entry["config"].get("layers") or []
        return int(bool(layers) and layers[0]["class_name"] == "InputLayer")
    return 0


def check_buildable(config: dict[str, Any]) -> None:
    """Raise :class:`GraphError` unless every node of a tf_keras functional ``config`` can be
    built: each tensor it takes comes from a layer of the config and a node that can be built
    first, as tf_keras' ``Functional.from_config`` will need (it would loop forever instead).
    Nested model configs are checked too. Runs in time linear in nodes x passes."""
    entries = {e["config"].get("name", e.get("name")): e for e in config.get("layers", [])}
    for entry in entries.values():
        if entry["class_name"] in MODELS and "input_layers" in entry["config"]:
            check_buildable(entry["config"])
    built = {name: (1 if e["class_name"] == "InputLayer" else 0) for name, e in entries.items()}
    offsets = {name: _node_offset(e) for name, e in entries.items()}

    def ready(ref: Ref) -> bool:
        name, node, _ = ref
        return name in built and node - offsets[name] < built[name]

    taken = refs

    for name, entry in entries.items():
        for node in entry.get("inbound_nodes") or []:
            for ref in taken(node):
                if ref[0] not in entries:
                    raise GraphError(f"Layer {name!r} takes a tensor of {ref[0]!r}, which is not "
                                     "a layer of the model.")
    progress = True
    while progress:
        progress = False
        for name, entry in entries.items():
            nodes = entry.get("inbound_nodes") or []
            while built[name] - (entry["class_name"] == "InputLayer") < len(nodes):
                node = nodes[built[name] - (entry["class_name"] == "InputLayer")]
                if not all(ready(r) for r in taken(node)):
                    break
                built[name] += 1
                progress = True
    for name, entry in entries.items():
        nodes = entry.get("inbound_nodes") or []
        index = built[name] - (entry["class_name"] == "InputLayer")
        if index < len(nodes):
            missing = [r for r in taken(nodes[index]) if not ready(r)]
            raise GraphError(
                f"Call {index} of layer {name!r} takes "
                + ", ".join(f"output {t} of call {n} of {layer!r}" for layer, n, t in missing)
                + ", which is never made.")
    for ref in endpoints(config.get("output_layers") or []):
        if not ready(ref):
            raise GraphError(f"The model's output {ref} is never made.")
