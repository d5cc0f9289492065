"""The panels. Each is a composition of standard ipywidgets and only calls the core."""

from compresswidgets.widgets.inspector import WeightInspector
from compresswidgets.widgets.pruning import PruningPanel

__all__ = ["PruningPanel", "WeightInspector"]
