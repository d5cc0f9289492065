"""The panels. Each is a composition of standard ipywidgets and only calls the core.

Imported lazily through ``compresswidgets`` (``cw.Studio``, ``cw.PruningPanel``, ...).
"""
