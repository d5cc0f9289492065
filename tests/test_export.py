"""Exports for the device: the C array compiled by the system C compiler and checked byte
for byte, the Keras file loaded back, the JSON, and TFLite Micro's arena and accuracy."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from _helpers import HOSTILE

import compresswidgets as cw
from compresswidgets import export as ex

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wb(demo):
    model, data = demo
    wb = cw.Workbench(model, data)
    pruned = wb.prune(0.7, epochs=0)
    wb.quantize("int8", base=pruned, representative_samples=50, name="int8 " + HOSTILE)
    wb.quantize("dynamic", base=pruned)
    return wb


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_c_array_compiles_and_holds_the_model_bytes(wb, tmp_path):
    q = wb.variants[2]
    paths = q.export(tmp_path, formats=("tflite", "c"))
    stem = paths["c"].stem
    assert "<" not in stem and stem == paths["tflite"].stem
    ident = ex.c_identifier(stem)
    (tmp_path / "main.c").write_text(f'''
#include <stdint.h>
#include <stdio.h>
#include "{stem}.h"
int main(void) {{
  uint32_t hash = 2166136261u;
  for (unsigned int i = 0; i < {ident}_len; i++) hash = (hash ^ {ident}[i]) * 16777619u;
  printf("%u %u %u\\n", {ident}_len, hash, (unsigned)((uintptr_t){ident} % 16));
  return 0;
}}
''')
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "check"),
                    str(tmp_path / "main.c"), str(paths["c"])], check=True, cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True,
                         check=True).stdout.split()
    blob = paths["tflite"].read_bytes()
    assert blob == q.tflite
    expected = 2166136261
    for byte in blob:
        expected = ((expected ^ byte) * 16777619) % 2**32
    assert out == [str(len(blob)), str(expected), "0"]  # length, bytes, 16-byte aligned
    if shutil.which("c++"):  # the header is C++ too (extern "C")
        (tmp_path / "main.cc").write_text(f'#include "{stem}.h"\nint main() {{ return '
                                          f'{ident}_len > 0 ? 0 : 1; }}\n')
        subprocess.run(["c++", "-Wall", "-Werror", "-x", "c++", str(tmp_path / "main.cc"),
                        "-x", "c", str(paths["c"]), "-o", str(tmp_path / "cc")], check=True,
                       cwd=tmp_path)


def test_a_keras_file_loads_with_its_weights(wb, tmp_path, keras):
    pruned = wb.variants[1]
    paths = pruned.export(tmp_path, formats=["keras", "json"], micro=False)
    loaded = keras.models.load_model(paths["keras"], compile=False)
    for a, b in zip(loaded.get_weights(), pruned.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    document = json.loads(paths["json"].read_text())
    assert document["recipe"]["technique"] == "prune" and "micro" not in document
    with pytest.raises(ValueError, match="no Keras model to write"):
        wb.variants[2].export(tmp_path / "nothing", formats=["keras", "tflite"])
    assert not (tmp_path / "nothing").exists()  # all or none


def test_tflite_micro_reports_the_arena_and_the_accuracy(wb, tmp_path):
    pytest.importorskip("tflite_micro")
    q = wb.variants[2]
    report = q.micro()
    assert report.ok and 1_000 < report.arena_bytes < 1_000_000
    assert abs(report.accuracy - q.accuracy) <= 0.01  # the same int8 model, another runtime
    document = json.loads(q.export(tmp_path, formats="json")["json"].read_text())
    assert document["micro"]["arena_bytes"] == report.arena_bytes
    hybrid = wb.variants[3].micro()  # dynamic range: float activations, int8 weights
    assert not hybrid.ok and hybrid.op == "CONV_2D" and "Hybrid" in hybrid.error
    assert "cannot run it at CONV_2D" in hybrid.describe()


def test_bad_formats_are_refused(wb, tmp_path):
    with pytest.raises(ValueError, match=r"has \['pdf'\].*expected some of 'tflite'"):
        wb.original.export(tmp_path, formats=("tflite", "pdf"))
    with pytest.raises(ValueError, match="has nothing"):
        wb.original.export(tmp_path, formats=())
    assert list(tmp_path.iterdir()) == []


def test_the_benchmark_panel_exports_for_the_device(wb, tmp_path):
    pytest.importorskip("tflite_micro")
    panel = cw.BenchmarkPanel(wb, folder=str(tmp_path), export_keras=True)
    written = panel.export()
    assert panel._error.value == "", panel._error.value
    names = {p.name for p in written}
    assert {"original.tflite", "original.c", "original.keras", "original.json"} <= names
    assert "prune_70_int8.keras" not in names  # a quantized variant's model is its .tflite
    shown = panel._exported.value
    assert "TFLite Micro arena" in shown and "cannot run it at CONV_2D" in shown
    assert HOSTILE not in shown and "&lt;img" in shown
    panel.folder = ""
    assert panel.export() == [] and "No folder chosen" in panel._error.value
