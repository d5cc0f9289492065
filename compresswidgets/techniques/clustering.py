"""Weight clustering with ``tfmot.clustering.keras.cluster_weights``.

tfmot's ``cluster_weights`` mutates what it is given (a model loses its kernels from
``model.weights``): it only ever sees private copies here. After ``strip_clustering`` each
clustered kernel has at most ``clusters`` distinct values (zero among them when sparsity is
preserved: tfmot turns the centroid nearest zero into zero): this is measured, not assumed.
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
    LayerSelection,
    check_choice,
    check_number,
    check_per_layer,
    kernel_of,
    kernel_size,
    select_layers,
)

#: Centroid initialisations: name -> (tfmot's CentroidInitialization member, label).
INITS = {"kmeans++": ("KMEANS_PLUS_PLUS", "k-means++"), "linear": ("LINEAR", "linear"),
         "random": ("RANDOM", "random"), "density-based": ("DENSITY_BASED", "density-based")}
DEFAULT_LEARNING_RATE = 1e-4


@dataclass(frozen=True)
class ClusteringParams:
    #: the uniform number of clusters, or (per-layer) the largest of ``per_layer``
    clusters: int
    init: str
    preserve_sparsity: bool
    layers: tuple[str, ...]
    epochs: int
    batch_size: int
    #: what was left out of the default selection, and why (not part of the recipe)
    notes: tuple[str, ...] = ()
    #: per-layer clusters ``((layer, clusters), ...)`` when a dict was given; () when uniform
    per_layer: tuple[tuple[str, int], ...] = ()

    def clusters_of(self, layer: str) -> int:
        """The number of clusters of ``layer`` (the uniform one, or its own)."""
        return dict(self.per_layer).get(layer, self.clusters)

    def as_dict(self) -> dict[str, Any]:
        recipe = {"technique": "cluster", **self.__dict__, "layers": list(self.layers)}
        recipe.pop("notes")
        recipe.pop("per_layer")
        if self.per_layer:  # the recipe says what was asked: clusters per layer
            recipe["clusters"] = dict(self.per_layer)
        return recipe


def supports(layer: Any) -> bool:
    """Whether tfmot clusters some weight of this layer (registry entries without weights,
    such as DepthwiseConv2D or BatchNormalization, do not count)."""
    from tensorflow_model_optimization.python.core.clustering.keras import (
        clusterable_layer,
        clustering_registry,
    )

    registry = clustering_registry.ClusteringRegistry
    if isinstance(layer, clusterable_layer.ClusterableLayer):
        return True
    if not registry.supports(layer):
        return False
    if (layer.__class__ in registry._SUPPORTED_RNN_LAYERS
            or layer.__class__ in registry._SUPPORTED_MHA_LAYERS):
        return True
    return layer.__class__ in registry._LAYERS_WEIGHTS_MAP and bool(registry._weight_names(layer))


def validate(model: Any, data: Data, *, clusters: Any, init: Any, preserve_sparsity: Any,
             layers: LayerSelection, epochs: Any, batch_size: int) -> ClusteringParams:
    _keras.tfmot()
    check_choice("init", init, INITS)
    check_number("epochs", epochs, 0, 1000, integer=True,
                 hint="Use epochs=0 to cluster without fine-tuning.")
    if isinstance(clusters, Mapping):
        return _per_layer(model, clusters, init, preserve_sparsity, layers, epochs, batch_size)
    check_number("clusters", clusters, 2, 65536, integer=True,
                 hint="Pass the number of distinct values per kernel, e.g. clusters=16, or a "
                 "dict of per-layer clusters, e.g. {'dense': 8}.")
    selection = select_layers(model, layers, supports, "Clustering", "clusterable")
    names, notes = list(selection.names), list(selection.notes)
    too_small = {name: kernel_size(model.get_layer(name)) for name in names
                 if kernel_size(model.get_layer(name)) < clusters}
    if too_small and layers is not None:
        name, size = next(iter(too_small.items()))
        raise ValueError(
            f"clusters={clusters} is more than the {size} weights of layer {name!r}. "
            f"Pass clusters <= {size}, or leave {name!r} out with layers=[...].")
    if too_small:
        names = [n for n in names if n not in too_small]
        if not names:
            raise ValueError(
                f"clusters={clusters} is more than the weights of every clusterable layer ("
                + ", ".join(f"{n}: {size}" for n, size in too_small.items())
                + f"). Pass clusters <= {max(too_small.values())}.")
        notes.append(f"Left out: {', '.join(too_small)} (fewer weights than {clusters} "
                     "clusters).")
    return ClusteringParams(int(clusters), init, bool(preserve_sparsity), tuple(names),
                            int(epochs), int(batch_size), tuple(notes))


def _per_layer(model: Any, clusters: Mapping[Any, Any], init: str, preserve_sparsity: Any,
               layers: LayerSelection, epochs: int, batch_size: int) -> ClusteringParams:
    """Clusters per layer: names of clusterable layers, each at least 2 and at most the
    layer's kernel size."""
    check_per_layer(clusters, layers, "clusters", "8", "clusters")
    selection = select_layers(model, list(clusters), supports, "Clustering", "clusterable")
    per_layer = {}
    for name, value in clusters.items():
        size = kernel_size(model.get_layer(name))
        per_layer[name] = check_number(
            f"clusters[{name!r}]", value, 2, max(2, size), integer=True,
            hint=f"Layer {name!r} has {size:,} kernel weights; pass between 2 and that many "
                 "distinct values.")
    return ClusteringParams(max(per_layer.values()), init, bool(preserve_sparsity),
                            tuple(per_layer), int(epochs), int(batch_size), selection.notes,
                            tuple(per_layer.items()))


def apply(model: Any, data: Data, p: ClusteringParams, settings: CompileSettings,
          progress: ProgressCallback | None = None) -> tuple[Any, list[str]]:
    """Cluster a private copy ``model``; return the stripped model and notes."""
    tfmot, k = _keras.tfmot(), _keras.keras()
    init = getattr(tfmot.clustering.keras.CentroidInitialization, INITS[p.init][0])
    cluster_weights = tfmot.clustering.keras.cluster_weights  # public, preserve_sparsity too
    extra = {"preserve_sparsity": True} if p.preserve_sparsity else {}
    chosen = set(p.layers)

    def wrap(layer: Any) -> Any:
        if layer.name in chosen:
            return cluster_weights(layer, number_of_clusters=p.clusters_of(layer.name),
                                   cluster_centroids_init=init, **extra)
        return layer

    clustered = k.models.clone_model(model, clone_function=wrap)
    if p.epochs > 0:
        fine_tune(clustered, data, settings=settings, epochs=p.epochs, batch_size=p.batch_size,
                  technique="Clustering", progress=progress)
    stripped = in_build_order(tfmot.clustering.keras.strip_clustering(clustered))
    return stripped, check(stripped, p)


def in_build_order(model: Any) -> Any:
    """``model`` with its weights in the order a rebuild from its config makes them.

    ``strip_clustering`` leaves a MultiHeadAttention's kernels before its biases, so
    ``get_weights()`` no longer fits the same model rebuilt from JSON (the worker's way back to
    the kernel, a sweep's, a Dask worker's): such a model is rebuilt and its weights assigned
    by name."""
    if not any(hasattr(layer, "_query_dense") for layer in model.layers):
        return model
    fresh = _keras.keras().models.model_from_json(model.to_json())
    for old, new in zip(model.layers, fresh.layers, strict=True):
        values = {w.name: w for w in old.weights}
        if len(values) == len(old.weights) and set(values) == {w.name for w in new.weights}:
            new.set_weights([values[w.name].numpy() for w in new.weights])
        else:
            new.set_weights(old.get_weights())
    return fresh


def distinct_values(model: Any, layers: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for name in layers:
        kernel = kernel_of(model.get_layer(name))
        if kernel is not None:
            out[name] = int(np.unique(kernel.numpy()).size)
    return out


def check(model: Any, p: ClusteringParams) -> list[str]:
    keep = 1 if p.preserve_sparsity else 0
    bad = {n: d for n, d in distinct_values(model, p.layers).items()
           if d > p.clusters_of(n) + keep}
    if bad:  # tfmot broke its promise: refuse to hand out a wrong variant
        raise RuntimeError(
            f"Clustering left more distinct values than asked in {bad} (asked: "
            f"{ {n: p.clusters_of(n) + keep for n in bad} }); this is a tfmot bug. "
            "Try init='linear' or fewer epochs, and report the model.")
    return []


def code(p: ClusteringParams, settings: CompileSettings) -> str:
    """Plain tfmot code for this step; expects ``model``, ``x_train``, ``y_train``."""
    extra = ", preserve_sparsity=True" if p.preserve_sparsity else ""
    how = f"({p.init} init" + (", zeros kept" if p.preserve_sparsity else "") + ")"
    if p.per_layer:
        head = ["# Cluster each layer into its own number of shared values " + how + ": "
                + ", ".join(f"{n} {k}" for n, k in p.per_layer) + "."]
        table, count = f"cluster_layers = {dict(p.per_layer)!r}", "cluster_layers[layer.name]"
    else:
        head = [f"# Cluster {', '.join(p.layers)} into {p.clusters} shared values {how}."]
        table, count = f"cluster_layers = {list(p.layers)!r}", str(p.clusters)
    lines = [
        *head,
        "# cluster_weights mutates what it wraps: give it a private copy.",
        "base = keras.models.clone_model(model)",
        "base.set_weights(model.get_weights())",
        "cluster_weights = tfmot.clustering.keras.cluster_weights",
        table,
        "",
        "def apply_clustering(layer):",
        "    if layer.name in cluster_layers:",
        "        return cluster_weights(",
        f"            layer, number_of_clusters={count},",
        "            cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization."
        f"{INITS[p.init][0]}{extra})",
        "    return layer",
        "",
        "clustered = keras.models.clone_model(base, clone_function=apply_clustering)",
    ]
    if p.epochs > 0:
        lines += [
            f"clustered.compile(optimizer={settings.optimizer_code}, loss={settings.loss_code},",
            f"                  metrics={settings.metrics_source})",
            f"clustered.fit(x_train, y_train, batch_size={p.batch_size}, epochs={p.epochs}, "
            "verbose=0)",
        ]
    lines.append("model = tfmot.clustering.keras.strip_clustering(clustered)")
    return "\n".join(lines)
