"""The command line, run as a user runs it (a subprocess), on a small model saved here:
inspect, compress with gates, benchmark, and bad input as one line with exit status 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compresswidgets", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def files(demo, tmp_path_factory):
    model, data = demo
    folder = tmp_path_factory.mktemp("cli")
    model.save(folder / "model.keras")
    x_train, y_train, x_test, y_test = data
    np.savez(folder / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test,
             y_test=y_test)
    np.savez(folder / "partial.npz", x_train=x_train, y_train=y_train)
    return folder


def test_inspect_prints_a_table_and_json(files):
    table = run("inspect", str(files / "model.keras"))
    assert table.returncode == 0, table.stderr
    assert "32,810 parameters" in table.stdout and "conv2d_1" in table.stdout
    as_json = run("inspect", str(files / "model.keras"), "--json")
    document = json.loads(as_json.stdout)
    assert document["params"] == 32810
    assert {t["layer"] for t in document["tensors"]} >= {"conv2d", "dense_1"}


def test_compress_writes_everything_and_gates(files):
    out = files / "out"
    done = run("compress", str(files / "model.keras"), "--data", str(files / "data.npz"),
               "--recipe", "prune 0.8 epochs=1 seed=0, quantize int8", "--out", str(out),
               "--max-drop", "0.5", "--formats", "tflite,json,c")
    assert done.returncode == 0, done.stderr
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "summary.json", "recipe.json"} <= names
    summary = json.loads((out / "summary.json").read_text())
    chosen = summary["chosen"]
    assert chosen.endswith("quantize int8")
    stems = {p.stem for p in out.glob("*.tflite")}
    assert len(stems) == 2 and all((out / f"{s}.c").exists() for s in stems)
    assert "Traceback" not in done.stderr
    # the same recipe, gated on size: exit status 1 and one line saying why
    missed = run("compress", str(files / "model.keras"), "--data", str(files / "data.npz"),
                 "--recipe", str(out / "recipe.json"), "--out", str(files / "out2"),
                 "--max-gzipped-bytes", "1000")
    assert missed.returncode == 1, missed.stderr
    line = missed.stderr.strip().splitlines()[-1]
    assert line.startswith("compresswidgets: gate missed:") and "over --max-gzipped-bytes" in line


def test_benchmark_measures_tflite_files(files):
    out = files / "out"
    tflites = sorted(str(p) for p in out.glob("*.tflite"))
    done = run("benchmark", *tflites, "--threads", "1", "--runs", "3", "--warmup", "1",
               "--csv", str(files / "bench.csv"))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((files / "bench.csv").open()))
    assert len(rows) == 2 and all(float(r["median_ms"]) > 0 for r in rows)


@pytest.mark.parametrize(("args", "message"), [
    (["inspect", "missing.keras"], "No model at 'missing.keras'"),
    (["compress", "{model}", "--data", "{partial}", "--recipe", "prune 0.5", "--out", "x"],
     "lacks x_test, y_test"),
    (["compress", "{model}", "--data", "{data}", "--recipe", "squeeze 0.5", "--out", "x"],
     "starts with 'squeeze'"),
    (["compress", "{model}", "--data", "{data}", "--recipe", "prune 0.5 epochs=0", "--out",
      "{model}/sub"], "model.keras"),
    (["benchmark", "nothing.tflite"], "No .tflite file at 'nothing.tflite'"),
])
def test_bad_input_is_one_line_and_status_2(files, args, message):
    filled = [a.format(model=files / "model.keras", partial=files / "partial.npz",
                       data=files / "data.npz") for a in args]
    done = run(*filled, cwd=files)
    assert done.returncode == 2, (done.returncode, done.stderr)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("compresswidgets: error:") and message in last, last
    assert "Traceback" not in done.stderr
    debug = run("--debug", *filled, cwd=files)
    assert debug.returncode == 2 and "Traceback" in debug.stderr
