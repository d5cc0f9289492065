"""The one door to Keras: environment, Keras 3 detection, quiet TensorFlow start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # make test-fast leaves this module out


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TF_USE_LEGACY_KERAS", "COMPRESSWIDGETS_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    clean.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=clean, timeout=300)


def test_import_is_light_and_selects_legacy_keras():
    out = run("""
        import os, sys
        import compresswidgets as cw
        print(os.environ["TF_USE_LEGACY_KERAS"], "tensorflow" in sys.modules,
              "ipywidgets" in sys.modules)
        import tensorflow as tf
        print(tf.keras.__name__.split(".")[0])
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "False", "False", "tf_keras"]


def test_a_keras3_session_needs_no_warning_every_technique_works():
    """TensorFlow imported first (tf.keras is Keras 3): tfmot still imports tf_keras, and a
    model built with tf.keras is bridged like any Keras 3 model."""
    out = run("""
        import warnings
        import numpy as np
        import tensorflow as tf
        tf.keras.layers  # Keras 3 is now tf.keras
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import compresswidgets as cw
        print(sum(issubclass(w.category, cw.KerasSetupWarning) for w in caught))
        k = tf.keras
        model = k.Sequential([k.Input((4,)), k.layers.Dense(64), k.layers.Dense(3)])
        print(cw.inspect_weights(model).keras)
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, 64)
        wb = cw.Workbench(model, (x, y, x, y))
        print(wb.prune(0.5, epochs=0).sparsity, wb.quantize("dynamic").is_quantized)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "0"
    assert lines[1] == "keras3"
    sparsity, quantized = lines[-1].split()
    assert abs(float(sparsity) - 0.5) < 0.01 and quantized == "True"


def test_explicit_opt_out_is_respected():
    out = run("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import compresswidgets as cw
        import os
        import tensorflow as tf
        print(sum(issubclass(w.category, cw.KerasSetupWarning) for w in caught),
              os.environ["TF_USE_LEGACY_KERAS"], tf.keras.__name__.split(".")[0])
    """, TF_USE_LEGACY_KERAS="0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0", "keras"]  # left as the user set it


NOISE = ("oneDNN custom operations", "cuda drivers", "absl::InitializeLog", "cuInit")


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_start_up_noise_is_quiet_by_default(verbose):
    env = {"COMPRESSWIDGETS_TF_LOGS": "1"} if verbose else {}
    out = run("""
        import compresswidgets as cw
        from compresswidgets import _keras
        k = _keras.keras()
        m = k.Sequential([k.layers.Dense(2, input_shape=(3,))])
        m.predict(__import__("numpy").zeros((1, 3)), verbose=0)
        print("ok")
    """, **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    noisy = [n for n in NOISE if n in out.stderr]
    if verbose:  # the same start-up does print them when asked: the filter is what hides them
        assert noisy, out.stderr
    else:
        assert not noisy, out.stderr
