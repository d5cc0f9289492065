"""Loading a user's saved model: ``.keras``, ``.h5`` or a SavedModel folder.

tfmot needs tf_keras (Keras 2) models, so files are loaded with tf_keras. A ``.keras`` file
saved by Keras 3 cannot be: it is loaded with Keras 3 instead, and the Workbench bridges it to
tf_keras (see ``compresswidgets._bridge``); only a subclassed Keras 3 model gets a warning that
says what works on it. Every failure says what was passed, what is expected and the fix.

Example:
    >>> model = cw.load_model("my_model.keras")          # doctest: +SKIP
    >>> cw.Studio(model, (x_train, y_train, x_test, y_test))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

from compresswidgets import _keras

__all__ = ["load_model"]

FORMATS = ".keras file, .h5 file, or SavedModel folder (with saved_model.pb)"


def load_model(path: str | os.PathLike, *, custom_objects: dict[str, Any] | None = None,
               compile: bool = True) -> Any:
    """Load a saved Keras model for compresswidgets.

    Args:
        path: a ``.keras`` or ``.h5`` file, or a SavedModel folder written by ``model.save``.
        custom_objects: classes and functions the file names but Keras cannot import, e.g.
            ``{"MyBlock": MyBlock}`` for a custom layer or a subclassed model.
        compile: restore the optimizer, loss and metrics the model was saved with (the
            Workbench fine-tunes with them); ``False`` loads the architecture and weights only.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: not a Keras model file, or one that names classes Keras cannot find.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"load_model() takes a path (str or pathlib.Path), but got "
                        f"{_keras.describe(path)}. Pass the file or folder written by "
                        "model.save(...).")
    where = Path(path).expanduser()
    if not where.exists():
        near = sorted(p.name for p in where.parent.glob("*")
                      if p.suffix in (".keras", ".h5") or (p / "saved_model.pb").exists()
                      ) if where.parent.is_dir() else []
        hint = (f" Model files in {str(where.parent)!r}: {', '.join(near)}." if near else
                f" Expected a {FORMATS}. Check the path (it is read relative to the "
                f"notebook's folder, {os.getcwd()!r}).")
        raise FileNotFoundError(f"No model at {str(path)!r}: nothing exists there.{hint}")
    if where.is_dir() and not (where / "saved_model.pb").exists():
        raise ValueError(f"{str(path)!r} is a folder without saved_model.pb, so it is not a "
                         f"SavedModel. Expected a {FORMATS}; pass the folder that "
                         "model.save(folder, save_format='tf') wrote.")
    if where.is_file() and where.suffix not in (".keras", ".h5", ".hdf5"):
        raise ValueError(f"{str(path)!r} is not a Keras model file (suffix {where.suffix!r}). "
                         f"Expected a {FORMATS}. A .tflite file is already converted: load it "
                         "with cw.Variant.load or benchmark it with ai_edge_litert.")
    if where.is_file() and where.suffix == ".keras" and not zipfile.is_zipfile(where):
        raise ValueError(
            f"{str(path)!r} is not a complete .keras file: a .keras file is a zip archive, and "
            f"this one ({where.stat().st_size:,} bytes) has no zip directory, so it was cut "
            "short (an interrupted copy or download) or is not a .keras file. Expected a "
            "file written by model.save('model.keras'): copy or save it again.")
    version = _keras3_version(where)
    if version is not None:
        return _load_keras3(where, version, custom_objects, compile)
    k = _keras.keras()
    try:
        with _keras._quiet_native_logs(), _absl_quiet():
            model = k.models.load_model(str(where), custom_objects=custom_objects,
                                        compile=compile)
    except (TypeError, ValueError, OSError) as exc:  # OSError: h5py on a file that is not HDF5
        raise ValueError(_explain(path, exc)) from exc
    if not isinstance(model, k.Model):
        raise ValueError(
            f"{str(path)!r} is a SavedModel without a Keras model in it (it loads as "
            f"{type(model).__name__}, e.g. written by tf.saved_model.save). compresswidgets "
            "needs the Keras model: save it from Keras with model.save('model.keras'). For "
            "post-training quantization alone, tf.lite.TFLiteConverter.from_saved_model works "
            "on it.")
    return model


@contextlib.contextmanager
def _absl_quiet() -> Any:
    """tf_keras warns through absl when a file's optimizer state does not match a fresh
    optimizer (e.g. a model saved before it was ever trained): nothing a user can act on."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _keras3_version(where: Path) -> str | None:
    """The Keras version that wrote a ``.keras`` archive, when it is 3 or later."""
    if where.suffix != ".keras" or not zipfile.is_zipfile(where):
        return None
    try:
        with zipfile.ZipFile(where) as archive:
            metadata = json.loads(archive.read("metadata.json"))
    except (KeyError, ValueError, OSError):
        return None
    version = str(metadata.get("keras_version", ""))
    return version if version[:1].isdigit() and int(version.split(".")[0]) >= 3 else None


def _load_keras3(where: Path, version: str, custom_objects: Any, compile: bool) -> Any:
    import keras

    try:
        model = keras.models.load_model(str(where), custom_objects=custom_objects,
                                        compile=compile)
    except (TypeError, ValueError) as exc:
        raise ValueError(_explain(str(where), exc)) from exc
    if type(model).__name__ not in ("Functional", "Sequential"):  # the bridge needs a config
        warnings.warn(
            f"{where.name} was saved by Keras {version} and holds a subclassed model "
            f"({type(model).__name__}), so it is loaded as a Keras 3 model that the inspector "
            "and post-training quantization (dynamic, float16, int8, int16x8) work on. "
            "Pruning, clustering and QAT need its layers as a config (tfmot wraps tf_keras "
            "layers, and compresswidgets translates Sequential and functional Keras 3 models "
            "to tf_keras): rebuild it with the functional API to use them.",
            _keras.KerasSetupWarning, stacklevel=3)
    return model


def _explain(path: Any, exc: BaseException) -> str:
    text = str(exc)
    if len(text) > 400:  # Keras quotes whole configs: keep the start, cut at a word
        text = text[:400].rsplit(" ", 1)[0] + " …"
    if any(marker in text for marker in ("Could not locate", "Unknown layer", "Unknown object")):
        return (f"Keras could not rebuild {str(path)!r}: it names a class or function that is "
                f"not imported here ({text}). Pass them as custom_objects, e.g. "
                "cw.load_model(path, custom_objects={'MyLayer': MyLayer}), after importing or "
                "defining them. Subclassed models load this way but can only be inspected and "
                "post-training quantized; prune, cluster and QAT need a Sequential or "
                "functional model.")
    return (f"Keras could not load {str(path)!r} ({type(exc).__name__}: {text}). "
            f"Expected a {FORMATS} written by tf_keras' model.save(...); if the file was "
            "copied or downloaded, check that it is complete.")
