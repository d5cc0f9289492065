"""The one door to Keras: environment, Keras 3 detection, quiet TensorFlow start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


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


def test_keras3_session_gets_one_clear_warning_and_inspection_still_works():
    out = run("""
        import warnings
        import tensorflow as tf
        tf.keras.layers  # Keras 3 is now tf.keras
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import compresswidgets as cw
        setup = [w for w in caught if issubclass(w.category, cw.KerasSetupWarning)]
        print(len(setup))
        print(setup[0].message)
        model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
        print(cw.inspect_weights(model).keras)
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "1"
    assert "Keras 3" in lines[1] and "restart the kernel" in lines[1] and "tf_keras" in lines[1]
    assert lines[-1] == "keras3"


def test_explicit_opt_out_is_respected_with_a_warning():
    out = run("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import compresswidgets as cw
        print(sum(issubclass(w.category, cw.KerasSetupWarning) for w in caught))
    """, TF_USE_LEGACY_KERAS="0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


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
