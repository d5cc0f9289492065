"""Exports for the device: the .tflite, a C array, a Keras file, the recipe and metrics as
JSON; and, where TFLite Micro can run the model, the arena it needs and its accuracy.

Example:
    >>> paths = q.export("out", formats=("tflite", "c", "json"))   # doctest: +SKIP
    >>> q.micro().arena_bytes                                       # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresswidgets import _process
from compresswidgets._files import json_text, safe_filename, write_files

if TYPE_CHECKING:
    from compresswidgets.variant import Variant

__all__ = ["FORMATS", "MicroReport", "c_array", "export", "micro"]

FORMATS = ("tflite", "c", "keras", "json")
#: Bytes per line of the C array, and its alignment (TFLite Micro reads the flatbuffer in
#: place: 16 bytes keeps every buffer in it aligned).
PER_LINE = 12
ALIGNMENT = 16


@dataclass(frozen=True)
class MicroReport:
    """TFLite Micro on a variant: ``arena_bytes`` (the tensor arena it allocated, as its
    recording allocator reports) and ``accuracy`` (the Workbench's metric on the test split,
    run sample by sample); or ``error`` and ``op`` (the op TFLite Micro could not prepare)."""

    arena_bytes: int | None = None
    accuracy: float | None = None
    error: str | None = None
    op: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.error:
            where = f" at {self.op}" if self.op else ""
            return (f"TFLite Micro cannot run it{where}: {self.error} It runs float32 and "
                    "full-integer models: for a microcontroller, quantize with 'int8' or "
                    "'int8-only' (dynamic range and float16 dequantize at run time).")
        acc = "" if self.accuracy is None else f"; accuracy {self.accuracy:.4g} on TFLite Micro"
        return f"TFLite Micro arena: {self.arena_bytes:,} bytes{acc}"


def micro_available() -> bool:
    return importlib.util.find_spec("tflite_micro") is not None


_pool_lock = threading.Lock()
_pool: _process.WorkerPool | None = None


def _micro_pool() -> _process.WorkerPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _process.WorkerPool(1, threads=None, idle_seconds=30.0)
        return _pool


def micro(variant: Variant, *, evaluate: bool = True) -> MicroReport:
    """Run ``variant``'s .tflite in TFLite Micro (in a worker process): its arena and its
    metric on the test split. Needs ``pip install tflite-micro``."""
    from compresswidgets import _micro

    if not micro_available():
        raise ImportError("TFLite Micro figures need the tflite-micro package: `pip install "
                          "tflite-micro` (or compresswidgets[micro]). Exports work without it.")
    ctx = variant._context
    x = ctx.data.x_test if (evaluate and ctx is not None) else None
    try:
        answer = _micro_pool().submit(_micro.run, variant.tflite, x).result()
    except _process.WorkerDied as exc:
        return MicroReport(error=f"TFLite Micro crashed on this model ({exc})")
    if "error" in answer:
        return MicroReport(error=answer["error"], op=answer.get("op"))
    accuracy = None
    if x is not None:
        accuracy = float(ctx.metric(ctx.data.y_test, answer["outputs"]))
    return MicroReport(arena_bytes=answer["arena_bytes"], accuracy=accuracy)


def c_identifier(name: str) -> str:
    """A C identifier from untrusted text: ``"prune 80% > int8"`` -> ``prune_80_int8``."""
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "model"
    return ident if not ident[0].isdigit() else f"model_{ident}"


def c_array(tflite: bytes, ident: str, header: str) -> tuple[str, str]:
    """``(header, source)``: the model as an aligned ``const unsigned char`` array and its
    length, as TFLite Micro and Arduino projects include it (valid C and C++)."""
    guard = ident.upper() + "_H_"
    head = (f"// The model {ident} as a C array (made by compresswidgets).\n"
            f"#ifndef {guard}\n#define {guard}\n\n"
            "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
            f"extern const unsigned char {ident}[];\n"
            f"extern const unsigned int {ident}_len;\n\n"
            "#ifdef __cplusplus\n}\n#endif\n\n"
            f"#endif  // {guard}\n")
    lines = [", ".join(f"0x{b:02x}" for b in tflite[i:i + PER_LINE])
             for i in range(0, len(tflite), PER_LINE)]
    body = ",\n  ".join(lines)
    source = (f'#include "{header}"\n\n'
              "#if defined(_MSC_VER)\n#define CW_ALIGNED __declspec(align("
              f"{ALIGNMENT}))\n#else\n#define CW_ALIGNED __attribute__((aligned({ALIGNMENT})))\n"
              "#endif\n\n"
              f"CW_ALIGNED const unsigned char {ident}[] = {{\n  {body}\n}};\n"
              f"const unsigned int {ident}_len = {len(tflite)};\n")
    return head, source


def check_formats(formats: Any) -> list[str]:
    """``formats`` as a list of :data:`FORMATS`, or a three-part error."""
    if isinstance(formats, str):
        formats = (formats,)
    chosen = list(formats) if formats is not None else []
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"formats={formats!r} has {unknown or 'nothing'}; expected some of "
                         f"{', '.join(map(repr, FORMATS))}, e.g. formats=('tflite', 'c').")
    return chosen


def files_for(variant: Variant, formats: list[str], *, micro_figures: bool = False,
              ) -> dict[str, dict[str, bytes | str]]:
    """The files of ``variant`` in each of ``formats``: format -> {file name: contents}."""
    stem = safe_filename(variant.name)
    out: dict[str, dict[str, bytes | str]] = {}
    if "tflite" in formats:
        out["tflite"] = {f"{stem}.tflite": variant.tflite}
    if "c" in formats:
        head, source = c_array(variant.tflite, c_identifier(stem), f"{stem}.h")
        out["c"] = {f"{stem}.c": source, f"{stem}.h": head}
    if "keras" in formats:
        out["keras"] = {f"{stem}.keras": variant.keras_file()}
    if "json" in formats:
        document = variant.document()
        if micro_figures:
            document["micro"] = variant.micro().as_dict()
        out["json"] = {f"{stem}.json": json_text(document)}
    return out


def export(variant: Variant, folder: str | Path, formats: Any = FORMATS, *,
           micro_figures: bool | None = None) -> dict[str, Path]:
    """Write ``variant`` in each of ``formats`` to ``folder`` (all files or none); the paths
    by format (the source file for ``c``). ``micro_figures`` (default: when tflite-micro is
    installed) adds the TFLite Micro arena and accuracy to the JSON."""
    by_format = files_for(variant, check_formats(formats), micro_figures=(
        micro_figures if micro_figures is not None else micro_available()))
    folder = Path(folder).expanduser()
    write_files(folder, {name: body for files in by_format.values()
                         for name, body in files.items()})
    return {kind: folder / next(iter(files)) for kind, files in by_format.items()}
