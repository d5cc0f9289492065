"""Runs in a separate, recycled process: TFLiteConverter.convert() leaks memory (~20 MB a call
in TF 2.21), so the user's kernel never calls it. Input is a SavedModel directory."""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from typing import Any

import numpy as np


def convert_model(kind: str, path: str, mode: str,
                  representative_path: str | None) -> dict[str, Any]:
    """Convert and return ``{"tflite": bytes}`` or ``{"error": message}`` (always picklable).

    ``kind`` is ``"keras"`` (a folder with ``model.json`` and ``weights.npz``: the model is
    rebuilt here, so that neither export nor conversion costs the user's kernel memory) or
    ``"saved_model"``. A Keras model that cannot be rebuilt here answers ``{"rebuild": msg}``.
    """
    try:
        from compresswidgets import _keras

        tf = _keras.tf()
        with _keras._quiet_native_logs():
            if kind == "keras":
                try:
                    model = _rebuild(path)
                except Exception as exc:
                    return {"rebuild": f"{type(exc).__name__}: {exc}"}
                converter = tf.lite.TFLiteConverter.from_keras_model(model)
            else:
                converter = tf.lite.TFLiteConverter.from_saved_model(path)
            configure(converter, tf, mode, representative_path)
            return {"tflite": bytes(converter.convert())}
    except Exception as exc:  # the message is what the user needs; the type may not pickle
        text = str(exc).strip() or type(exc).__name__
        return {"error": f"{type(exc).__name__}: {text}", "trace": traceback.format_exc()}


def _rebuild(folder: str) -> Any:
    from compresswidgets import _keras

    k = _keras.keras()
    with open(os.path.join(folder, "model.json")) as fh:
        model = k.models.model_from_json(fh.read())
    with np.load(os.path.join(folder, "weights.npz")) as npz:
        model.set_weights([npz[f"w{i}"] for i in range(len(npz.files))])
    return model


def configure(converter: Any, tf: Any, mode: str, representative_path: str | None) -> None:
    """Apply the converter settings of a mode (the same settings Variant.code shows)."""
    if mode == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode in ("dynamic", "qat"):
        return
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    samples = np.load(representative_path) if representative_path else None

    def representative_dataset():
        for i in range(len(samples)):
            yield [samples[i : i + 1].astype(np.float32)]

    converter.representative_dataset = representative_dataset
    if mode == "int8-only":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif mode == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]


# --------------------------------------------------------------------------- process loop
def _read(stream: Any) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    return pickle.loads(stream.read(size))


def _write(stream: Any, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(payload).to_bytes(8, "little") + payload)
    stream.flush()


def main(max_jobs: int) -> None:
    """Serve conversion requests on stdin/stdout until ``max_jobs`` are done or stdin closes.

    The protocol gets its own copy of stdout; fd 1 then points at stderr so that whatever the
    converter prints cannot corrupt it.
    """
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = os.fdopen(os.dup(0), "rb")
    for _ in range(max_jobs):
        request = _read(requests)
        if request is None:
            return
        _write(channel, convert_model(*request))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
