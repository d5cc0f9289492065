"""The Studio in JupyterLab on a Keras 3 model (``import keras``) whose layer names TensorFlow
rejects: it opens, shows the names as written (escaped), and a prune applied in the browser
makes a variant through the bridge."""

from __future__ import annotations

import nbformat
import pytest
from _ui import open_studio, wait_idle
from test_studio_browser import slider, tab

pytestmark = pytest.mark.browser

CELLS = [
    "import compresswidgets as cw\nimport keras  # Keras 3\n\n_, data = cw.demo_model()",
    "L = keras.layers\n"
    "model = keras.Sequential([\n"
    "    keras.Input((8, 8, 1)), L.Conv2D(16, 3, activation=\"relu\"), L.Flatten(),\n"
    "    L.Dense(64, activation=\"relu\", name=\"features(64)\"),\n"
    "    L.Dense(10, activation=\"softmax\", name=\"head <out>\")])\n"
    "studio = cw.Studio(model, data)\nstudio",
]


def test_the_studio_on_a_keras3_model(page, lab):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, lab.workdir / "keras3_studio.ipynb")
    studio = open_studio(page, lab, "keras3_studio.ipynb")
    prune = tab(page, studio, "Prune")
    checklist = prune.inner_text()
    assert "features(64) · Dense" in checklist and "head <out> · Dense" in checklist
    assert prune.locator(".cw-error").count() == 0  # bridged: nothing to explain
    epochs = slider(prune, "Epochs")
    epochs.focus()
    epochs.press("Home")  # one-shot pruning
    wait_idle(page)
    prune.locator("button", has_text="Apply").click()
    page.wait_for_function("el => /made /.test(el.innerText)", arg=prune.element_handle(),
                           timeout=240_000)
    result = prune.locator(".cw-result").inner_text()
    assert "features(64)" in result and "50.0%" in result, result
    assert "prune 50%" in studio.locator(".cw-variants").inner_text()


NESTED = [
    "import compresswidgets as cw\nimport keras  # Keras 3\n\n_, data = cw.demo_model()",
    "L = keras.layers\n"
    "image = keras.Input((8, 8, 1))\n"
    "x = L.Conv2D(32, 3, padding=\"same\", activation=\"relu\", name=\"conv\")(image)\n"
    "x = x + L.Conv2D(32, 3, padding=\"same\", name=\"conv_res\")(x)  # a residual operator\n"
    "backbone = keras.Model(image, x, name=\"backbone\")\n"
    "inputs = keras.Input((8, 8, 1))\n"
    "features = L.GlobalAveragePooling2D()(backbone(inputs))\n"
    "model = keras.Model(inputs, L.Dense(10, activation=\"softmax\", name=\"head\")(features))\n"
    "studio = cw.Studio(model, data)\nstudio",
]


def test_the_studio_prunes_inside_a_nested_keras3_backbone(page, lab):
    """Transfer learning as users write it: a backbone model used as a layer, a residual
    written as ``+``. The checklist names the backbone's layers by path, and Apply prunes
    them."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in NESTED]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, lab.workdir / "nested_studio.ipynb")
    studio = open_studio(page, lab, "nested_studio.ipynb")
    prune = tab(page, studio, "Prune")
    checklist = prune.inner_text()
    assert "backbone/conv_res · Conv2D" in checklist, checklist
    assert "left out by default: backbone/conv, head." in checklist, checklist  # as written
    assert prune.locator(".cw-error").count() == 0
    epochs = slider(prune, "Epochs")
    epochs.focus()
    epochs.press("Home")
    wait_idle(page)
    prune.locator("button", has_text="Apply").click()
    page.wait_for_function("el => /made /.test(el.innerText)", arg=prune.element_handle(),
                           timeout=240_000)
    result = prune.locator(".cw-result").inner_text()
    assert "backbone/conv_res" in result and "50.0%" in result, result
    page.screenshot(path=str(lab.workdir / "nested_studio.png"), full_page=True)
