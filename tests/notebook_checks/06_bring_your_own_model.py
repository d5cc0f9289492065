"""What notebooks/06_bring_your_own_model.ipynb must show once executed."""

import re


def _cell(nb, snippet: str):
    return next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)


def _agree(text: str, pattern: str) -> None:
    """The quantized accuracy and the Keras model's, both printed, within a point."""
    found = re.search(pattern, text)
    assert found, pattern
    tflite, keras = (float(v) for v in found.groups())
    assert abs(tflite - keras) <= 1.0, found.group(0)


def check(nb, text: str) -> None:
    # the three formats load with the same weights; one-shot pruning to 50 % of the three big
    # kernels (the two under 1,024 weights left out by default) gives 48.6 % of all kernels
    assert "['digits.h5', 'digits.keras', 'digits_savedmodel']" in text
    for name in ("digits.keras", "digits.h5", "digits_savedmodel"):
        line = (rf"^{re.escape(name)}\s+Sequential, 32,810 parameters, same weights: True, "
                r"compiled with Adam; .*one-shot prune: sparsity 48\.6%$")
        assert re.search(line, text, re.M), name
    assert ("note: Left out by default (under 1,024 weights): conv2d (640), dense_1 (330). "
            "Name them in layers=[...] to include them.") in text
    # a panel on the loaded model, then the same step headless
    bundle = _cell(nb, "cw.QuantizationPanel(wb)").outputs[-1]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/html" in bundle
    _agree(text, r"dynamic: accuracy ([\d.]+)% \(Keras model: ([\d.]+)%\), 40,952 B instead "
                 r"of 134,932 B")
    assert "# model = keras.models.load_model(...)" in text  # its code starts from your model
    # case 1: subclassed
    assert ("ValueError: Pruning supports Sequential and functional models only "
            "(as tfmot does), but 'digits_net' is a subclassed model (DigitsNet)") in text
    _agree(text, r"dynamic: accuracy ([\d.]+)% \(Keras model: ([\d.]+)%\)\n")
    assert "ValueError: Keras could not rebuild " in text and "custom_objects" in text
    assert "DigitsNet, same weights: True" in text
    # a Keras 3 model: bridged, pruned, brought back as a .keras file
    found = re.search(r"twin: tf_keras, largest difference from the Keras 3 model's outputs "
                      r"(\S+) \(1e-5 allowed\)", text)
    assert found and float(found.group(1)) <= 1e-5
    assert re.search(r"prune 50%: sparsity 48\.6%, accuracy [\d.]+% \(original [\d.]+%\), "
                     r"recipe says bridged from keras3", text)
    assert "['prune_50.json', 'prune_50.keras', 'prune_50.tflite']" in text
    assert re.search(r"loaded: keras\.src\.models\.sequential Sequential \| \w+ zeros: "
                     r"50\.0% \| same weights as the variant: True", text)
    assert "KerasSetupWarning" not in text  # a Keras 3 file is nothing to warn about now
    assert "(keras3)" in text  # inspected
    assert "the .tflite agrees with the Keras model" in text  # Keras 3 converts with weights
    # case 2: no such file, and the listing of what is there
    assert "FileNotFoundError: No model at 'my_model.keras': nothing exists there." in text
    assert re.search(r"FileNotFoundError: No model at '.*digits\.kears'.*Model files in .*: "
                     r"digits\.h5, digits\.keras", text)
    assert "temporary folder removed: True" in text
    # the exercise: the functional rebuild prunes
    assert re.search(r"prune 50%: sparsity 48\.6%, accuracy [\d.]+% \(original", text)
