"""The panels. Each is a composition of standard ipywidgets and only calls the core."""

from compresswidgets.widgets.inspector import WeightInspector

__all__ = ["WeightInspector"]
