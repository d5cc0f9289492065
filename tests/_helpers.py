"""Small helpers shared by the tests."""

from __future__ import annotations

HOSTILE = "<img src=x onerror=alert(1)>"


def weights_bytes(model) -> list[bytes]:
    """The model's weights as raw bytes, to prove they are byte-identical."""
    return [w.numpy().tobytes() for w in model.weights]
