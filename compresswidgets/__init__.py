"""compresswidgets: look inside a live Keras model, compress it, and measure what you got.

Example:
    >>> import compresswidgets as cw
    >>> model, data = cw.demo_model()          # doctest: +SKIP
    >>> cw.WeightInspector(model)              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from compresswidgets import _keras

# Before anything can import TensorFlow: tfmot needs Keras 2 (tf_keras) as tf.keras.
_keras.configure_environment()

from compresswidgets.inspection import (  # noqa: E402 - after the environment is set
    Histogram,
    LayerSummary,
    TensorStats,
    WeightReport,
    inspect_weights,
)

__version__ = "0.1.0"

# Heavier names (TensorFlow, ipywidgets) are imported on first use.
_LAZY = {
    "demo_model": "compresswidgets.demo",
    "load_model": "compresswidgets.loading",
    "demo_data": "compresswidgets.demo",
    "DemoData": "compresswidgets.demo",
    "WeightInspector": "compresswidgets.widgets.inspector",
    "PruningPanel": "compresswidgets.widgets.pruning",
    "ClusteringPanel": "compresswidgets.widgets.clustering",
    "QuantizationPanel": "compresswidgets.widgets.quantization",
    "BenchmarkPanel": "compresswidgets.widgets.benchmark",
    "SensitivityPanel": "compresswidgets.widgets.sensitivity",
    "SweepPanel": "compresswidgets.widgets.sweep",
    "Sweep": "compresswidgets.sweeps",
    "SweepProgress": "compresswidgets.sweeps",
    "Sensitivity": "compresswidgets.sensitivity",
    "Suggestion": "compresswidgets.sensitivity",
    "Studio": "compresswidgets.widgets.studio",
    "KerasSetupWarning": "compresswidgets._keras",
    "BridgeError": "compresswidgets._bridge",
    "to_tf_keras": "compresswidgets._bridge",
    "Workbench": "compresswidgets.workbench",
    "Comparison": "compresswidgets.workbench",
    "VariantsChange": "compresswidgets.workbench",
    "Variant": "compresswidgets.variant",
    "Progress": "compresswidgets._training",
    "TrainingStopped": "compresswidgets._training",
    "ConversionError": "compresswidgets.tflite",
    "benchmark": "compresswidgets.benchmarking",
    "BenchmarkReport": "compresswidgets.benchmarking",
    "BenchmarkRow": "compresswidgets.benchmarking",
}

__all__ = [
    "BenchmarkPanel",
    "BenchmarkReport",
    "BenchmarkRow",
    "BridgeError",
    "ClusteringPanel",
    "Comparison",
    "ConversionError",
    "DemoData",
    "Histogram",
    "KerasSetupWarning",
    "LayerSummary",
    "Progress",
    "PruningPanel",
    "QuantizationPanel",
    "Sensitivity",
    "SensitivityPanel",
    "Studio",
    "Suggestion",
    "Sweep",
    "SweepPanel",
    "SweepProgress",
    "TensorStats",
    "TrainingStopped",
    "Variant",
    "VariantsChange",
    "WeightInspector",
    "WeightReport",
    "Workbench",
    "__version__",
    "benchmark",
    "demo_data",
    "demo_model",
    "inspect_weights",
    "load_model",
    "to_tf_keras",
]

if TYPE_CHECKING:
    from compresswidgets._bridge import BridgeError, to_tf_keras
    from compresswidgets._keras import KerasSetupWarning
    from compresswidgets._training import Progress, TrainingStopped
    from compresswidgets.benchmarking import BenchmarkReport, BenchmarkRow, benchmark
    from compresswidgets.demo import DemoData, demo_data, demo_model
    from compresswidgets.loading import load_model
    from compresswidgets.sensitivity import Sensitivity, Suggestion
    from compresswidgets.tflite import ConversionError
    from compresswidgets.variant import Variant
    from compresswidgets.widgets.benchmark import BenchmarkPanel
    from compresswidgets.widgets.clustering import ClusteringPanel
    from compresswidgets.widgets.inspector import WeightInspector
    from compresswidgets.widgets.pruning import PruningPanel
    from compresswidgets.widgets.quantization import QuantizationPanel
    from compresswidgets.widgets.sensitivity import SensitivityPanel
    from compresswidgets.widgets.studio import Studio
    from compresswidgets.workbench import Comparison, VariantsChange, Workbench


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'compresswidgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
