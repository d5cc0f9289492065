"""Keras 3 <-> tf_keras: the verified bridge that lets tfmot act on Keras 3 models.

tfmot 0.8.1 wraps tf_keras (Keras 2) layers only, and ``import keras`` has been Keras 3 since
TensorFlow 2.16. :func:`to_tf_keras` translates a Keras 3 Sequential or functional model config
by config into the same architecture in tf_keras (``InputLayer(batch_shape=...)``, dtype
policies, serialised initializers and regularizers, arguments one of the two does not have),
copies the weights layer by layer and weight by weight *by name*, and then runs both models on
a batch of the user's data: their outputs must agree within ``TOLERANCE`` (relative to the
output's scale), or the bridge refuses and names the first layer where they part.
:func:`to_keras3` goes back: the user's own architecture with the compressed weights, verified
the same way.

Weightless operations (``h + attention``, ``keras.ops.mean``, ``x[:, 0]``) run as themselves
in a ``compresswidgets>KerasOperation`` layer. Models used as layers, in either Keras, are
inlined into one flat graph (:mod:`compresswidgets._graph`; tfmot leaves a nested model whole),
their layers named by path (``"backbone/conv"``), and :func:`write_back` puts a variant's
weights back into the user's nested architecture.

Layer names that Keras 3 accepts but TensorFlow's name scopes do not (``"dense 1"``,
``"head(out)"``, a path) get safe names in tf_keras; :attr:`Bridged.names` maps them back.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compresswidgets import _graph, _keras

#: Outputs of the two models may differ by this much, relative to the largest output.
TOLERANCE = 1e-5
#: Samples of the user's data both models are run on.
VERIFY_SAMPLES = 32

#: Names that pass TensorFlow's name scopes and the converter's node names ('/' and '>' pass
#: the first but not the second, or split scopes).
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")
_MODELS = _graph.MODELS
_WRAPPERS = ("layer", "backward_layer")
#: Keras 3 argument -> tf_keras argument, per layer class.
_RENAMED = {"LeakyReLU": {"negative_slope": "alpha"},
            "InputLayer": {"batch_shape": "batch_input_shape"}}
#: Keras 3 weight name -> tf_keras weight name, per layer class (matched by name, never by
#: position).
_WEIGHT_NAMES = {"DepthwiseConv2D": {"kernel": "depthwise_kernel"}}
#: Keras 3 activation names tf_keras spells differently, or defines differently (tf_keras'
#: hard_sigmoid is 0.2x + 0.5, Keras 3's relu6(x + 3) / 6): see
#: :func:`compresswidgets._keras.register_activations`.
_ACTIVATIONS = {"silu": "swish", **{name: f"compresswidgets>{name}" for name in (
    "hard_silu", "hard_swish", "hard_sigmoid", "relu6", "leaky_relu", "log_softmax")}}
#: Values of a Keras 3 argument tf_keras lacks that mean "the default": dropping it is exact.
_DEFAULTISH = (None, False, "auto", 0)
#: The tf_keras layer that runs a weightless Keras 3 operation (``compresswidgets._keras``).
OPERATION = "compresswidgets>KerasOperation"
_LAYER_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape",
                 "batch_input_shape", "batch_size", "weights", "activity_regularizer",
                 "autocast", "implementation"}


class BridgeError(ValueError):
    """A Keras 3 model the bridge cannot translate, or whose translation does not agree."""


@dataclass(frozen=True)
class Bridged:
    """A Keras 3 model's verified tf_keras twin.

    Attributes:
        model: the tf_keras model (same architecture, same weights).
        names: tf_keras layer name -> the user's layer name, for the names that had to change.
        max_error: the largest output difference measured, relative to the output's scale.
        notes: what the translation left out or changed (Keras 3 arguments tf_keras lacks,
            nested models inlined).
    """

    model: Any
    names: dict[str, str] = field(default_factory=dict)
    max_error: float = 0.0
    notes: tuple[str, ...] = ()
    #: the paths of the nested models whose layers were inlined into the twin
    inlined: tuple[str, ...] = ()

    def user_name(self, name: str) -> str:
        """The user's spelling of a tf_keras layer name."""
        return self.names.get(name, name)

    def safe_name(self, name: str) -> str:
        """The tf_keras name of a layer the user names (either spelling is accepted)."""
        for safe, user in self.names.items():
            if user == name:
                return safe
        return name


def is_keras3(model: Any) -> bool:
    """True for a Keras 3 model or layer (the kind tfmot 0.8.1 cannot wrap)."""
    return _keras.keras_flavour(model) == "keras3"


def to_tf_keras(model: Any, x: Any, *, tolerance: float = TOLERANCE) -> Any:
    """The flat tf_keras twin of a Keras 3 model, or of a tf_keras model with models used as
    layers (inlined), verified on ``x``; see :func:`bridge`.

    Example:
        >>> tfk_model = to_tf_keras(keras3_model, x_test[:32])  # doctest: +SKIP
    """
    return bridge(model, x, tolerance=tolerance).model


def needs_bridge(model: Any) -> bool:
    """A Keras 3 model (tfmot wraps tf_keras layers only), or a tf_keras model with a model
    used as a layer (tfmot leaves a nested model whole: its layers are inlined first)."""
    if is_keras3(model):
        return True
    return type(model).__name__ in ("Functional", "Sequential") and any(
        type(layer).__name__ in _MODELS for layer in getattr(model, "layers", []))


#: Keras 3 layers that Keras 3's own export hands the TFLite converter in a form it cannot
#: fuse: an LSTM becomes a WHILE loop instead of one UNIDIRECTIONAL_SEQUENCE_LSTM op (the
#: tf_keras LSTM is marked for fusion), a TimeDistributed one op per time step. Measured
#: (float32, TF 2.21): an LSTM autoencoder 82,500 B against its twin's 56,360 B, an LSTM
#: classifier 29,580 against 23,092, TimeDistributed(Dense) over 20 steps 19,728 against
#: 6,200; and the converter's int8 calibration crashes on the loop.
EXPORTED_UNFUSED = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D",
                    "ConvLSTM2D", "ConvLSTM3D", "TimeDistributed")


def unfused_layers(model: Any) -> list[str]:
    """The layers of a Keras 3 model (nested models' and wrapped layers' included, as
    ``"name (Class)"``) that its own export converts unfused (:data:`EXPORTED_UNFUSED`);
    [] for a tf_keras model. Such a model converts compactly only through its twin."""
    if not is_keras3(model):
        return []
    found = []
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        kind = type(layer).__name__
        if kind in EXPORTED_UNFUSED:
            found.append(f"{layer.name!r} ({kind})")
        elif kind in _MODELS:
            stack.extend(layer.layers)
    return found


def bridge(model: Any, x: Any, *, tolerance: float = TOLERANCE) -> Bridged:
    """The flat tf_keras twin of a model that tfmot cannot act on as it is, verified on ``x``:
    a Keras 3 Sequential/functional model is translated to tf_keras, and in either Keras the
    models used as layers (a backbone, a block) are inlined into one graph, their layers
    named by path (``"mobilenetv2/block_1_project"``, :attr:`Bridged.names`).

    Raises:
        BridgeError: a subclassed model, layers with no tf_keras counterpart (all listed), a
            graph tf_keras cannot build, a weight that has no counterpart, or outputs that
            differ (the first layer that does).
    """
    if not needs_bridge(model):
        raise BridgeError(
            f"The bridge translates Keras 3 models and inlines nested models, but got "
            f"{_keras.describe(model)}. A flat tf_keras model needs no bridge: pass it as it is.")
    if is_keras3(model):
        _check_keras3(model)
    # tf_keras' get_config holds ListWrapper objects for tensor keywords: its JSON does not
    config = model.get_config() if is_keras3(model) else json.loads(model.to_json())["config"]
    kind, config, inlined = _graph.inline(type(model).__name__, config, keras3=is_keras3(model))
    names = _safe_names(model.name, _graph.layer_names(config))
    if is_keras3(model):
        translation = _Translation(names, dict(_layers_by_path(model, set(inlined))))
        config = translation.model(kind, config)
        if translation.refused:
            raise BridgeError(
                "These layers have no tf_keras counterpart, so the model cannot be bridged to "
                f"tfmot: {', '.join(translation.refused)}. Build them from standard Keras "
                "layers (a Lambda becomes a small layer of its own, registered for both "
                "Kerases), or use post-training quantization, which converts the Keras 3 model "
                "as it is.")
        notes = list(translation.notes)
    else:
        config, notes = _renamed(config, names), []
    if kind != "Sequential":
        try:
            _graph.check_buildable(config)
        except _graph.GraphError as exc:
            raise BridgeError(
                f"tf_keras cannot rebuild {model.name!r} from its translated config: {exc} "
                "(this check stands where tf_keras' from_config would loop forever). Please "
                "report the model; post-training quantization works on it as it is.") from exc
    keras2 = _keras.keras()
    try:
        with _keras._quiet_native_logs():
            twin = keras2.models.model_from_config({"class_name": kind, "config": config})
    except Exception as exc:  # the translation is ours: report it, with its cause
        raise BridgeError(
            f"tf_keras could not rebuild {model.name!r} from its translated config "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]}). The bridge covers the "
            "standard Keras layers; please report the layer above. Post-training quantization "
            "works on the model as it is.") from exc
    copy_weights(model, twin, names)
    error = verify(model, twin, x, names, tolerance)
    renamed = {safe: user for user, safe in names.items() if safe != user}
    if inlined:
        notes.append("Nested models inlined so that every layer can be compressed: "
                     + ", ".join(repr(n) for n in inlined) + " (their layers are named "
                     f"by path, e.g. {next(iter(renamed.values()), '')!r}).")
    pathless = {safe: user for safe, user in renamed.items() if _graph.SEP not in user}
    if pathless:
        notes.append("Layer names TensorFlow cannot use are called "
                     + ", ".join(f"{safe!r} for {user!r}" for safe, user in pathless.items())
                     + " inside TensorFlow and the converter.")
    return Bridged(twin, renamed, error, tuple(notes), tuple(inlined))


def _check_keras3(model: Any) -> None:
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BridgeError(
            f"This Keras 3 model runs on the {backend!r} backend, but tfmot and the TFLite "
            "converter are TensorFlow tools: the bridge, the fine-tuning and the conversion run "
            "on TensorFlow tensors. Set KERAS_BACKEND=tensorflow before Python starts and load "
            "the model there (its .keras file loads the same with any backend); the inspector "
            "works on it as it is.")
    if type(model).__name__ not in ("Functional", "Sequential"):
        raise BridgeError(
            f"{getattr(model, 'name', 'This model')!r} is a subclassed Keras 3 model "
            f"({type(model).__name__}); its layers and their wiring live in Python code, not in "
            "a config, so it cannot be rebuilt in tf_keras. Rewrite it with the functional API "
            "(keras.Input(...) -> layers -> keras.Model(inputs, outputs)) to prune, cluster or "
            "QAT it; post-training quantization and inspection work on it as it is.")


def to_keras3(tfk_model: Any, like: Any, x: Any, names: dict[str, str] | None = None, *,
              tolerance: float = TOLERANCE) -> Any:
    """``like``'s architecture (a Keras 3 model) with ``tfk_model``'s weights, verified on ``x``.

    ``names`` maps tf_keras names to the user's (:attr:`Bridged.names`).
    """
    return write_back(tfk_model, like, x, names, tolerance=tolerance)


def write_back(tfk_model: Any, like: Any, x: Any, names: dict[str, str] | None = None, *,
               tolerance: float = TOLERANCE) -> Any:
    """``like``'s architecture (the user's model, in either Keras: its nested models kept)
    with the weights of its flat twin ``tfk_model``, verified on ``x``."""
    if is_keras3(like):
        copy = keras3_clone(like, weights=False)
    else:
        copy = type(like).from_config(like.get_config())
    user_to_safe = {user: safe for safe, user in (names or {}).items()}
    copy_weights(copy, tfk_model, user_to_safe, into_keras3=True)
    verify(copy, tfk_model, x, user_to_safe, tolerance)
    return copy



def compile_objects(optimizer: Any, loss: Any, metrics: list[Any]) -> tuple[Any, Any, list[Any]]:
    """A compiled Keras 3 model's optimizer, loss and metrics as tf_keras objects of the same
    classes and settings, to fine-tune its tf_keras twin with; the user's own functions and
    classes are kept as they are (with the TensorFlow backend they run on TensorFlow tensors).
    """
    k = _keras.keras()

    def translate(obj: Any, family: Any) -> Any:
        if obj is None or isinstance(obj, str):
            return obj
        module = getattr(type(obj) if not callable(obj) or hasattr(obj, "get_config")
                         else obj, "__module__", "") or ""
        if not module.startswith("keras."):
            return obj  # the user's own
        if not hasattr(obj, "get_config"):  # a built-in function: the same name in tf_keras
            try:
                return family.get(obj.__name__)
            except (ValueError, TypeError):
                return obj
        target = getattr(family, type(obj).__name__, None)
        if not isinstance(target, type):
            return obj
        config = {key: value for key, value in obj.get_config().items()
                  if key in _parameters(target) and value is not None}
        return target(**config)

    return (translate(optimizer, k.optimizers), translate(loss, k.losses),
            [translate(m, k.metrics) for m in metrics])


def keras3_clone(model: Any, *, weights: bool = True) -> Any:
    """A Keras 3 model rebuilt from its config: the same layer names, its own Input layer's
    included (``keras.models.clone_model`` renames that one)."""
    import keras
    from keras.src.saving.serialization_lib import SafeModeScope

    try:
        with SafeModeScope(False):  # a Lambda's function travels as bytecode: it is the user's
            copy = type(model).from_config(model.get_config())
    except Exception:  # an architecture from_config cannot rebuild: clone_model can
        copy = keras.models.clone_model(model)
    if weights:
        copy.set_weights(model.get_weights())
    return copy


# -- names -----------------------------------------------------------------------------------


def _layers_by_path(model: Any, inlined: set[str], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(name, layer)`` for every layer, nested models' included: the layers of an inlined
    model are named by path (``"backbone/conv"``)."""
    for layer in model.layers:
        yield prefix + layer.name, layer
        if type(layer).__name__ in _MODELS:
            inner = prefix + layer.name + _graph.SEP if prefix + layer.name in inlined else ""
            yield from _layers_by_path(layer, inlined, inner)


def _safe_names(model_name: str, layer_names: Iterator[str]) -> dict[str, str]:
    """The user's layer name -> a name TensorFlow accepts (the same name when it is safe)."""
    every = [model_name, *layer_names]
    taken = {name for name in every if _SAFE.match(name)}
    names = {}
    for name in every:
        if _SAFE.match(name):
            names[name] = name
            continue
        if name in names:
            continue
        base = _UNSAFE_CHAR.sub("_", name).strip("_") or "layer"
        if not _SAFE.match(base):
            base = "layer_" + base
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        names[name] = candidate
    return names


# -- config translation ----------------------------------------------------------------------


class _Translation:
    """Keras 3 configs -> tf_keras configs; collects what it refuses and what it drops."""

    def __init__(self, names: dict[str, str], live: dict[str, Any]) -> None:
        self.names = names
        self.live = live  # the user's name -> the Keras 3 layer (for what configs lack)
        self.refused: list[str] = []
        self.notes: list[str] = []
        self._shift: set[str] = set()

    def model(self, kind: str, config: dict[str, Any]) -> dict[str, Any]:
        out = {"name": self.names.get(config["name"], config["name"]),
               "trainable": config.get("trainable", True)}
        layers = [self.layer(entry) for entry in config["layers"]]
        out["layers"] = layers
        if kind == "Sequential":
            return out
        # tf_keras counts a nested model's own Input -> output node as its node 0: calls of a
        # nested model are numbered from 1 there; Keras 3 does the same for a functional
        # model but numbers a Sequential's calls from 0
        self._shift = {entry["config"]["name"] for entry in layers
                       if entry["class_name"] == "Sequential" and entry["config"]["layers"]
                       and entry["config"]["layers"][0]["class_name"] == "InputLayer"}
        for entry in layers:
            if entry["class_name"] == OPERATION:  # every tensor it takes, args and kwargs
                entry["inbound_nodes"] = [[[*self._reference(*ref), {}]
                                           for ref in _graph.refs(node)]
                                          for node in entry["inbound_nodes"]]
            else:
                entry["inbound_nodes"] = [self._node(node, entry["class_name"])
                                          for node in entry["inbound_nodes"]]
        out["input_layers"] = self._endpoints(config["input_layers"])
        out["output_layers"] = self._endpoints(config["output_layers"])
        return out

    def _reference(self, name: str, node: int, index: int) -> list[Any]:
        safe = self.names.get(name, name)
        return [safe, node + (safe in self._shift), index]

    def _endpoints(self, value: list[Any]) -> list[list[Any]]:
        return [self._reference(*ref) for ref in _graph.endpoints(value)]

    def layer(self, entry: dict[str, Any]) -> dict[str, Any]:
        kind = entry["class_name"]
        config = entry.get("config") or {}
        name = config.get("name", entry.get("name", "?"))
        if kind in _MODELS:
            translated = self.model("Sequential" if kind == "Sequential" else "Functional",
                                    config)
            kind = "Sequential" if kind == "Sequential" else "Functional"
        elif str(entry.get("module") or "").startswith("keras.src.ops") or (
                self._weightless_keras3(kind, entry, name)):
            kind, translated = OPERATION, self._operation(entry, name)
        else:
            translated = self._layer_config(kind, entry, name)
        out: dict[str, Any] = {"class_name": kind, "config": translated}
        if "inbound_nodes" in entry:  # translated by model(), once all layers are known
            out["name"] = translated.get("name", name)
            out["inbound_nodes"] = entry["inbound_nodes"]
        return out

    def _weightless_keras3(self, kind: str, entry: dict[str, Any], name: str) -> bool:
        """A built-in Keras 3 layer without weights that tf_keras does not have (or spells
        differently): it runs as itself, like an operation."""
        layer = self.live.get(name)
        builtin = str(entry.get("module") or "").startswith("keras")
        return (builtin and layer is not None and not layer.weights
                and entry.get("registered_name") in (None, kind) and kind != "Lambda"
                and getattr(_keras.keras().layers, kind, None) is None)

    def _operation(self, entry: dict[str, Any], name: str) -> dict[str, Any]:
        """A weightless Keras 3 operation in the graph (``h + attention``, ``keras.ops.mean``,
        ``x[:, 0]``, ``3.0 - x``) runs as itself in tf_keras, inside the
        ``compresswidgets>KerasOperation`` layer (see :mod:`compresswidgets._keras`); the
        outputs are verified like any layer's."""
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) != 1:
            self.refused.append(f"{name!r} (the Keras 3 operation {entry['class_name']} is "
                                f"called {len(nodes)} times; one call each is supported)")
        operation = {key: entry[key] for key in ("module", "class_name", "registered_name")
                     if key in entry}
        # its own name as TensorFlow takes it (an inlined one is a path, "backbone/add")
        operation["config"] = dict(entry.get("config") or {}, name=self.names.get(name, name))
        call = {"args": nodes[0].get("args", []), "kwargs": nodes[0].get("kwargs", {})} if (
            nodes) else {"args": [], "kwargs": {}}
        return {"name": self.names.get(name, name), "trainable": False, "dtype": "float32",
                "operation": operation, "call": call}

    def _layer_config(self, kind: str, entry: dict[str, Any], name: str) -> dict[str, Any]:
        target = getattr(_keras.keras().layers, kind, None)
        module = entry.get("module") or ""
        custom = entry.get("registered_name") not in (None, kind) or not (
            module == "keras" or module.startswith(("keras.layers", "keras.src")))
        if kind == "Lambda":
            return self._lambda(name)
        if target is None or custom:
            self.refused.append(f"{name!r} ({entry.get('registered_name') or kind}: a custom "
                                "layer)" if custom else f"{name!r} ({kind})")
            return {"name": name}
        config = {key: self.value(value) for key, value in entry["config"].items()}
        for old, new in _RENAMED.get(kind, {}).items():
            if old in config:
                config[new] = config.pop(old)
        if kind == "InputLayer":
            config.pop("optional", None)
        for key in _WRAPPERS:
            if isinstance(entry["config"].get(key), dict):
                config[key] = self.layer(entry["config"][key])
        for key in ("activation", "recurrent_activation"):
            if isinstance(config.get(key), str):
                config[key] = _ACTIVATIONS.get(config[key], config[key])
        config["name"] = self.names.get(name, name)
        config = self._accepted(target, config, f"{name!r} ({kind})")
        if kind == "MultiHeadAttention":  # tf_keras builds it from the shapes in its config
            shapes = (entry.get("build_config") or {}).get("shapes_dict") or {}
            for key in ("query_shape", "key_shape", "value_shape"):
                config[key] = shapes.get(key)
        return config

    def _lambda(self, name: str) -> dict[str, Any]:
        """A Lambda keeps its Python function (the live one: Keras 3 stores it as bytecode);
        tf_keras runs it on TensorFlow tensors, and the outputs are verified as for any layer."""
        layer = self.live.get(name)
        function = getattr(layer, "function", None)
        if function is None or getattr(layer, "mask", None) is not None:
            self.refused.append(f"{name!r} (Lambda)")
            return {"name": name}
        config = {"name": self.names.get(name, name), "trainable": layer.trainable,
                  "dtype": "float32", "function": function, "function_type": "raw",
                  "module": None, "arguments": dict(layer.arguments or {})}
        output_shape = getattr(layer, "_output_shape", None)
        config["output_shape"] = output_shape
        config["output_shape_type"] = "raw"
        return config

    def _accepted(self, target: type, config: dict[str, Any], where: str) -> dict[str, Any]:
        allowed = _parameters(target)
        for key in [k for k in config if k not in allowed]:
            value = config.pop(key)
            if value not in _DEFAULTISH and value != [] and value != {}:
                self.notes.append(f"{where}: Keras 3's {key}={value!r} has no tf_keras "
                                  "counterpart and was left out (the outputs were verified).")
        return config

    def value(self, value: Any) -> Any:
        """A Keras 3 serialised value as tf_keras reads it."""
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict):
            return value
        kind = value.get("class_name")
        if kind == "__tuple__":
            return tuple(self.value(v) for v in value["config"]["value"])
        if kind is not None and "DTypePolicy" in str(kind):
            return value["config"]["name"]
        if kind is not None and "config" in value and ("module" in value
                                                        or "registered_name" in value):
            module = str(value.get("module") or "")
            family = module.rsplit(".", 1)[-1]
            target = getattr(getattr(_keras.keras(), family, None), kind, None)
            config = value["config"]
            if isinstance(config, dict):
                config = {k: self.value(v) for k, v in config.items()}
                if isinstance(target, type):
                    config = self._accepted(target, config, f"{kind}")
            return {"class_name": kind, "config": config}
        return {k: self.value(v) for k, v in value.items()}

    def _node(self, node: Any, kind: str) -> list[list[Any]]:
        """One call of a layer, Keras 3's ``{"args", "kwargs"}`` -> tf_keras' layout: the
        tensors of the first argument, each with the call's other arguments as keywords (a
        tensor among them as ``[layer, node, index]``, as tf_keras writes it)."""
        if isinstance(node, list):  # already the tf_keras layout
            return node
        args = list(node.get("args", []))
        first = [self._reference(*ref) for ref in _graph.refs({"args": args[:1]})]
        kwargs = dict(node.get("kwargs") or {})
        # Keras 3 writes the call signature's default training flag into the node (an LSTM's,
        # a Dropout's: training=False) and overrides it with the model's own flag at run time;
        # tf_keras would honour it for good: tfmot's wrappers would never see training=True
        # and never update a mask (an LSTM pruned to 0 %), a Dropout never drop
        kwargs.pop("training", None)
        if len(args) > 1:  # MultiHeadAttention(query, value): by the names of tf_keras' call
            target = getattr(_keras.keras().layers, kind, None)
            names = [p for p in inspect.signature(target.call).parameters if p != "self"][1:] \
                if target is not None else []
            kwargs.update(zip(names, args[1:], strict=False))

        def tensor(value: Any) -> Any:
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                return self._reference(*value["config"]["keras_history"])
            return value

        kwargs = {key: tensor(value) for key, value in kwargs.items()}
        return [[*t, kwargs] for t in first]


def _renamed(config: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A tf_keras functional config with its layers renamed (``names``: old -> new)."""
    def rename(ref: _graph.Ref) -> _graph.Ref:
        return (names.get(ref[0], ref[0]), ref[1], ref[2])

    out = dict(config, name=names.get(config["name"], config["name"]), layers=[])
    for entry in config["layers"]:
        entry = dict(entry, config=dict(entry["config"]))
        entry["config"]["name"] = entry["name"] = names.get(entry["config"]["name"],
                                                            entry["config"]["name"])
        entry["inbound_nodes"] = [_graph.map_refs(n, rename) for n in entry["inbound_nodes"]]
        out["layers"].append(entry)
    for key in ("input_layers", "output_layers"):
        out[key] = [list(rename(r)) for r in _graph.endpoints(config[key])]
    return out


@functools.cache
def _parameters(target: type) -> frozenset[str]:
    """The arguments a tf_keras class accepts: its own and its bases' ``__init__``s'."""
    names: set[str] = set()
    for cls in target.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        with_kwargs = False
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                with_kwargs = True
            elif p.name != "self":
                names.add(p.name)
        if cls.__name__ == "Layer" and cls.__module__.startswith("tf_keras"):
            names |= _LAYER_KWARGS
            break
        if not with_kwargs:
            break
    return frozenset(names)


# -- weights ---------------------------------------------------------------------------------


def _groups(layer: Any) -> Iterator[tuple[str, list[Any]]]:
    """A layer's weights in groups that are matched by name within (a Bidirectional's
    forward and backward layers are two groups; their weights have the same names)."""
    kind = type(layer).__name__
    if kind == "Bidirectional":
        yield "forward", list(layer.forward_layer.weights)
        yield "backward", list(layer.backward_layer.weights)
    else:
        yield "", list(layer.weights)


def _short(weight: Any) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def _keyed(weights: list[Any], aliases: dict[str, str]) -> dict[tuple[str, int], Any]:
    seen: Counter[str] = Counter()
    keyed = {}
    for w in weights:
        name = _short(w)
        name = aliases.get(name, name)
        keyed[(name, seen[name])] = w
        seen[name] += 1
    return keyed


def copy_weights(keras3_model: Any, tfk_model: Any, names: dict[str, str], *,
                 into_keras3: bool = False, prefix: str = "") -> None:
    """Copy weights between a user's model and its tf_keras twin, layer by layer (``names``:
    user's layer name or path -> tf_keras name) and weight by weight by name and shape. The
    layers of a nested model the twin inlined are found by path (``"backbone/conv"``)."""
    for layer in keras3_model.layers:
        if not layer.weights:  # nothing to copy (a clone's InputLayer has a new name, too)
            continue
        path = prefix + layer.name
        nested = type(layer).__name__ in _MODELS
        try:
            twin = tfk_model.get_layer(names.get(path, path))
        except ValueError as exc:
            if nested:  # inlined in the twin: its layers are there, by path
                copy_weights(layer, tfk_model, names, into_keras3=into_keras3,
                             prefix=path + _graph.SEP)
                continue
            raise BridgeError(f"Layer {path!r} has no counterpart in the tf_keras model "
                              "(its architecture differs); rebuild the variant from this "
                              "model.") from exc
        if nested:
            copy_weights(layer, twin, names, into_keras3=into_keras3)
            continue
        for (group, ours), (_, theirs) in zip(_groups(layer), _groups(twin), strict=True):
            a = _keyed(ours, _WEIGHT_NAMES.get(type(layer).__name__, {}))
            b = _keyed(theirs, {})
            if set(a) != set(b):
                raise BridgeError(
                    f"The weights of layer {layer.name!r} ({type(layer).__name__}) do not match "
                    f"by name: Keras 3 has {sorted(n for n, _ in a)}, tf_keras has "
                    f"{sorted(n for n, _ in b)}{' in its ' + group + ' layer' if group else ''}. "
                    "Please report this layer; post-training quantization works without the "
                    "bridge.")
            for key, w in a.items():
                other = b[key]
                if tuple(w.shape) != tuple(other.shape):
                    raise BridgeError(
                        f"Weight {key[0]!r} of layer {layer.name!r} has shape {tuple(w.shape)} "
                        f"in Keras 3 but {tuple(other.shape)} in tf_keras; the translation is "
                        "wrong for this layer. Please report it.")
                if into_keras3:
                    w.assign(np.asarray(other.numpy()))
                else:
                    other.assign(np.asarray(w.numpy()))


# -- verification ----------------------------------------------------------------------------


def _as_list(outputs: Any) -> list[np.ndarray]:
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if not isinstance(outputs, list | tuple):
        outputs = [outputs]
    return [np.asarray(o, dtype=np.float64) for o in outputs]


def _difference(a: Any, b: Any) -> float:
    """The largest absolute difference, relative to the largest magnitude of ``a``."""
    worst = 0.0
    for x, y in zip(_as_list(a), _as_list(b), strict=True):
        scale = max(float(np.max(np.abs(x))) if x.size else 0.0, 1e-12)
        worst = max(worst, float(np.max(np.abs(x - y))) / scale if x.size else 0.0)
    return worst


def verify(keras3_model: Any, tfk_model: Any, x: Any, names: dict[str, str],
           tolerance: float = TOLERANCE) -> float:
    """Run both models on ``x[:VERIFY_SAMPLES]``; the relative difference, or BridgeError."""
    sample = x[:VERIFY_SAMPLES]
    with _keras._quiet_native_logs():
        error = _difference(keras3_model(sample, training=False),
                            tfk_model(sample, training=False))
    if error <= tolerance:
        return error
    where = _first_difference(keras3_model, tfk_model, sample, names, tolerance)
    raise BridgeError(
        f"The tf_keras translation of {keras3_model.name!r} does not compute what the Keras 3 "
        f"model computes: outputs differ by {error:.2e} (relative; at most {tolerance:g} "
        f"allowed){where}. The two Kerases implement that layer differently; build it from "
        "another standard layer, or use post-training quantization, which converts the Keras 3 "
        "model as it is.")


def _first_difference(keras3_model: Any, tfk_model: Any, x: Any, names: dict[str, str],
                      tolerance: float) -> str:
    import keras

    if not is_keras3(keras3_model):
        keras = _keras.keras()

    pairs = []
    for layer in keras3_model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            pairs.append((layer.name, layer.output,
                          tfk_model.get_layer(names.get(layer.name, layer.name)).output))
        except (AttributeError, ValueError):  # a shared layer has no single output
            continue
    if not pairs:
        return ""
    try:
        single = len(keras3_model.inputs) == 1
        ours = keras.Model(keras3_model.inputs[0] if single else keras3_model.inputs,
                           [p[1] for p in pairs])(x, training=False)
        theirs = _keras.keras().Model(tfk_model.inputs[0] if single else tfk_model.inputs,
                                      [p[2] for p in pairs])(x, training=False)
    except Exception:  # only a better message is lost
        return ""
    for (name, _, _), a, b in zip(pairs, _as_list(ours), _as_list(theirs), strict=True):
        if _difference(a, b) > tolerance:
            return f"; they first differ at layer {name!r}"
    return ""
