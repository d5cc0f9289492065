"""The shape of the package: imports go one way (no cycles, function-level imports included),
the core never imports widgets, and facts are defined once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "compresswidgets"
CORE = ("inspection", "workbench", "variant", "techniques", "tflite", "benchmarking",
        "_converter", "_jobs", "_process", "_bridge", "_keras", "_data", "_training",
        "preview", "plots", "demo", "loading", "sweeps", "_sweep_engine", "_candidate",
        "sensitivity")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module this file imports, at any depth (``if TYPE_CHECKING`` blocks aside:
    they never run)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def test_no_import_cycles(graph):
    inner = {name: {m for m in deps if m != "compresswidgets"} for name, deps in graph.items()
             if name != "compresswidgets"}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(inner.get(name, ())):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep):], dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(inner):
        if name not in state:
            visit(name)


def test_the_core_never_imports_widgets():
    for path in PACKAGE.rglob("*.py"):
        name = _module(path)
        if not any(name == f"compresswidgets.{c}" or name.startswith(f"compresswidgets.{c}.")
                   for c in CORE):
            continue
        bad = {m for m in _imports(path) if m.split(".")[0] in ("ipywidgets", "IPython")
               or m.startswith("compresswidgets.widgets")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_generated_code_uses_public_tfmot_names_only():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            if "tensorflow_model_optimization.python" in line and '"' in line.split("#")[0]:
                # a private path inside a string: that is code we hand to users
                pytest.fail(f"{path.name}: {line.strip()}")


def test_one_table_of_converter_modes():
    from compresswidgets import _converter, tflite
    from compresswidgets.techniques import quantization
    from compresswidgets.widgets import quantization as panel

    assert tflite.MODES is _converter.MODES and tflite.CALIBRATED is _converter.CALIBRATED
    float_less = tuple(m for m in _converter.MODES if m != "float32")
    assert float_less == quantization.MODES
    assert [mode for _, mode in panel.MODE_LABELS] == list(quantization.MODES)
