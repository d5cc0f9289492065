"""The embedded demo: scikit-learn's bundled 8x8 digits and a small trained CNN.

Nothing here touches the network. The trained weights are cached in the user's cache folder
(``$XDG_CACHE_HOME/compresswidgets``, else ``~/.cache/compresswidgets``) so that the second call
is instant; a corrupt, partial or stale cache file is ignored and rewritten.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from compresswidgets import _keras
from compresswidgets._data import Data

#: Bump when the architecture, data or training recipe changes: old cache files are then ignored.
CACHE_VERSION = 1
#: Test accuracy the demo model is trained to reach.
TARGET_ACCURACY = 0.95
_SEED = 20251122


class DemoData(Data):
    """The digits data, split 75/25 with a fixed seed; images are float32 in [0, 1], NHWC.

    The same four fields as every Workbench's data; its own class only tells the demo apart
    (a Workbench on it writes code that loads the demo).
    """

    __slots__ = ()


def demo_data() -> DemoData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), split 75/25 with a fixed seed.

    Example:
        >>> data = demo_data()
        >>> data.x_train.shape, data.x_test.shape
        ((1347, 8, 8, 1), (450, 8, 8, 1))
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(_SEED).permutation(len(x))
    n_test = math.ceil(len(x) * 0.25)  # as scikit-learn's train_test_split
    test, train = order[:n_test], order[n_test:]
    return DemoData(x[train], y[train], x[test], y[test])


def is_demo_architecture(model: Any) -> bool:
    """Whether ``model`` has the demo's layers and weight shapes (e.g. the demo model itself,
    saved and loaded back), so that generated code may start from ``cw.demo_model()``."""
    try:
        ours = [(type(w).__name__, tuple(w.shape)) for w in model.weights]
    except (AttributeError, TypeError):
        return False
    reference = [(type(w).__name__, tuple(w.shape)) for w in build_demo_model().weights]
    return ours == reference


def build_demo_model() -> Any:
    """The untrained tf_keras CNN of the classic post-training-quantization walkthrough.

    Conv2D 64/32/32 (3x3, valid), Flatten, Dense 32, Dense 10 softmax: 32,810 parameters.
    Initialisers are seeded, so two builds start from the same weights.

    Example:
        >>> build_demo_model().count_params()  # doctest: +SKIP
        32810
    """
    k = _keras.keras()
    init = k.initializers.GlorotUniform
    model = k.Sequential(
        [
            k.layers.InputLayer(input_shape=(8, 8, 1), name="image"),
            k.layers.Conv2D(64, 3, activation="relu", kernel_initializer=init(_SEED + 1),
                            name="conv2d"),
            k.layers.Conv2D(32, 3, activation="relu", kernel_initializer=init(_SEED + 2),
                            name="conv2d_1"),
            k.layers.Conv2D(32, 3, activation="relu", kernel_initializer=init(_SEED + 3),
                            name="conv2d_2"),
            k.layers.Flatten(name="flatten"),
            k.layers.Dense(32, activation="relu", kernel_initializer=init(_SEED + 4),
                           name="dense"),
            k.layers.Dense(10, activation="softmax", kernel_initializer=init(_SEED + 5),
                           name="dense_1"),
        ],
        name="digits_cnn",
    )
    _compile(model)
    return model


def _compile(model: Any) -> None:
    k = _keras.keras()
    model.compile(
        optimizer=k.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def cache_dir() -> Path:
    """Where compresswidgets keeps its cache: ``$XDG_CACHE_HOME/compresswidgets``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "compresswidgets"


def _cache_file() -> Path:
    return cache_dir() / f"demo_cnn_v{CACHE_VERSION}.npz"


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    probs = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probs, axis=-1) == y))


def _load_cached(model: Any, path: Path) -> bool:
    """Load weights from the cache into ``model``; False (never an exception) if unusable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = [npz[f"w{i}"] for i in range(int(meta["count"]))]
        expected = [tuple(w.shape) for w in model.weights]
        if meta.get("version") != CACHE_VERSION or [a.shape for a in arrays] != expected:
            return False
        if not all(np.all(np.isfinite(a)) for a in arrays):
            return False
        model.set_weights(arrays)
        return True
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return False


def _store(model: Any, path: Path, accuracy: float) -> None:
    """Write the cache atomically; a read-only cache folder only costs the next call a retrain."""
    weights = model.get_weights()
    meta = json.dumps({"version": CACHE_VERSION, "count": len(weights), "accuracy": accuracy})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".demo_cnn.", suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=np.array(meta), **{f"w{i}": w for i, w in enumerate(weights)})
        os.replace(tmp, path)
    except OSError as exc:
        warnings.warn(
            f"Could not cache the demo model in {path.parent} ({exc}); it will be retrained "
            "next time. Set XDG_CACHE_HOME to a writable folder to keep it.",
            stacklevel=3,
        )


def _train(model: Any, data: DemoData, max_epochs: int = 60) -> float:
    """Train until the test accuracy reaches the target (checked every 5 epochs)."""
    order = np.random.default_rng(_SEED).permutation(len(data.x_train))
    x, y = data.x_train[order], data.y_train[order]
    accuracy = 0.0
    for _ in range(0, max_epochs, 5):
        model.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0)
        accuracy = _accuracy(model, data.x_test, data.y_test)
        if accuracy >= TARGET_ACCURACY + 0.02:
            break
    return accuracy


def demo_model(*, use_cache: bool = True) -> tuple[Any, DemoData]:
    """A trained digits CNN (tf_keras, compiled) and its data, without any network access.

    The first call trains for a few seconds and caches the weights; later calls load them.
    Every call returns a new model object, so changing one never affects another.

    Args:
        use_cache: read and write the weight cache (``False`` always retrains).

    Returns:
        ``(model, data)`` where ``data`` is a :class:`DemoData` of
        ``(x_train, y_train, x_test, y_test)``.

    Example:
        >>> import compresswidgets as cw
        >>> model, data = cw.demo_model()  # doctest: +SKIP
        >>> model.count_params()  # doctest: +SKIP
        32810
    """
    data = demo_data()
    model = build_demo_model()
    path = _cache_file()
    if use_cache and path.is_file() and _load_cached(model, path):
        return model, data
    accuracy = _train(model, data)
    if accuracy < TARGET_ACCURACY:
        raise RuntimeError(
            f"The demo model reached only {accuracy:.1%} test accuracy (expected at least "
            f"{TARGET_ACCURACY:.0%}). This points at a broken TensorFlow install; reinstall "
            "with `make venv` and try again."
        )
    if use_cache:
        _store(model, path, accuracy)
    return model, data
