"""Latency, start-up and memory of .tflite variants, each measured in a fresh LiteRT process.

Every measurement runs ``_bench_worker.py`` as its own process, which imports only
``ai_edge_litert`` and NumPy (TensorFlow alone would add hundreds of MB and drown the memory
figure). A worker that crashes, hangs past the timeout or answers garbage becomes a row with
the error; the other variants are still measured.

Columns follow the TFLite benchmark tool: ``Init``, ``First inference``, ``Inference (avg)``,
``Memory footprint``.

Example:
    >>> report = cw.benchmark([wb.original, q], threads=(1, 2), runs=50)   # doctest: +SKIP
    >>> report.to_csv("bench.csv")                                          # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compresswidgets._data import MetricSpec, records_frame
from compresswidgets._keras import describe
from compresswidgets.techniques._common import check_number
from compresswidgets.tflite import ConversionError
from compresswidgets.variant import Variant, safe_filename

__all__ = ["BenchmarkProgress", "BenchmarkReport", "BenchmarkRow", "benchmark"]

WORKER = Path(__file__).with_name("_bench_worker.py")

@dataclass(frozen=True)
class BenchmarkRow:
    """One variant at one thread count. ``error`` is set (and timings NaN) when it failed.

    ``batch`` is the batch size measured: the requested one for a dynamic batch dimension,
    the model's own for a fixed one.
    """

    variant: str
    technique: str
    threads: int
    batch: int
    runs: int
    size_bytes: int | None
    gzipped_bytes: int | None
    accuracy: float | None
    init_ms: float = math.nan
    first_inference_ms: float = math.nan
    mean_ms: float = math.nan
    std_ms: float = math.nan
    min_ms: float = math.nan
    median_ms: float = math.nan
    p10_ms: float = math.nan
    p90_ms: float = math.nan
    memory_mb: float = math.nan
    input_dtype: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class BenchmarkProgress:
    """What a progress callback receives; call :meth:`stop` to skip the remaining variants."""

    variant: str
    index: int  # 1-based: measurement i of n
    total: int
    run: int
    runs: int
    stop_requested: bool = False

    def stop(self) -> None:
        self.stop_requested = True


@dataclass
class BenchmarkReport:
    """The rows of a benchmark, in variant order then thread order.

    Attributes:
        rows: one :class:`BenchmarkRow` per (variant, thread count); ``row.ok`` is False
            with ``row.error`` saying why when that measurement failed.
        stopped: the benchmark was stopped; ``rows`` has what was measured until then.
        metric: how the ``accuracy`` column was measured (the Workbench's metric).
    """

    rows: list[BenchmarkRow] = field(default_factory=list)
    stopped: bool = False
    #: how the ``accuracy`` column was measured (the Workbench's metric); None: accuracy
    metric: MetricSpec | None = None

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as dicts (the fields of :class:`BenchmarkRow`)."""
        return [asdict(r) for r in self.rows]

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame (needs pandas; :meth:`to_records` does not)."""
        return records_frame(self.to_records(), "to_records() gives the same rows as dicts.")

    def to_csv(self, path: str | Path | None = None) -> str:
        """The rows as CSV; also written to ``path`` when given.

        Args:
            path: a file to write the CSV to (replaced if it exists); ``None``: only return it.
        """
        buffer = io.StringIO()
        names = list(BenchmarkRow.__dataclass_fields__)
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for record in self.to_records():
            writer.writerow(record)
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        metric = self.metric
        text = json.dumps({"rows": self.to_records(), "stopped": self.stopped,
                           "metric": metric.name if metric else "accuracy",
                           "greater_is_better": metric.greater_is_better if metric else True},
                          indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def __str__(self) -> str:
        head = (f"{'variant':<30} {'thr':>3} {'Init':>8} {'First':>8} {'avg':>8} {'median':>8} "
                f"{'p90':>8} {'Mem MB':>7} {'size':>9}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            if r.error:
                lines.append(f"{r.variant[:30]:<30} {r.threads:>3} error: {r.error[:80]}")
                continue
            lines.append(
                f"{r.variant[:30]:<30} {r.threads:>3} {r.init_ms:>8.2f} "
                f"{r.first_inference_ms:>8.2f} {r.mean_ms:>8.3f} {r.median_ms:>8.3f} "
                f"{r.p90_ms:>8.3f} {r.memory_mb:>7.2f} {r.size_bytes or 0:>9,}")
        return "\n".join(lines)


def _check_count(name: str, value: Any, hint: str, low: int = 1) -> int:
    """A TypeError for what is not a whole number, a ValueError below ``low`` (as every
    number a technique takes)."""
    return check_number(name, value, low, 1_000_000, integer=True, hint=hint)


def _variant_list(variants: Variant | Iterable[Variant]) -> list[Variant]:
    if isinstance(variants, Variant):
        return [variants]
    items = list(variants) if isinstance(variants, Iterable) else None
    if not items:
        raise ValueError(
            f"benchmark() needs at least one variant, but got {describe(variants)}. Pass "
            "wb.variants, or a list such as [wb.original, q].")
    bad = [v for v in items if not isinstance(v, Variant)]
    if bad:
        raise TypeError(f"benchmark() takes Variants, but got {describe(bad[0])}. Pass items "
                        "of wb.variants (or cw.Variant.load(path)).")
    return items


def benchmark(
    variants: Variant | Sequence[Variant],
    threads: int | Sequence[int] = (1,),
    runs: int = 50,
    warmup: int = 5,
    batch: int = 1,
    *,
    input_shape: dict[str, Sequence[int]] | None = None,
    timeout: float = 300.0,
    progress: Callable[[BenchmarkProgress], Any] | None = None,
) -> BenchmarkReport:
    """Measure each variant's .tflite at each thread count, each in a fresh process.

    Args:
        variants: Variants (a Workbench's, or loaded ones).
        threads: thread counts to measure, e.g. ``(1, 2)``.
        runs: timed invocations (after ``warmup`` untimed ones).
        batch: batch size for dynamic batch dimensions.
        input_shape: sizes of unknown non-batch dimensions, by input name (batch excluded).
        timeout: seconds one measurement may take before it becomes an error row.
        progress: called with a :class:`BenchmarkProgress`; ``stop()`` skips what is left.
    """
    chosen = _variant_list(variants)
    thread_counts = [threads] if isinstance(threads, int) else list(threads)
    if not thread_counts:
        raise ValueError("threads is empty. Pass e.g. threads=(1,) or threads=(1, 2).")
    thread_counts = [_check_count("threads", t, "Pass e.g. threads=(1, 2).")
                     for t in thread_counts]
    runs = _check_count("runs", runs, "Pass e.g. runs=50.")
    batch = _check_count("batch", batch, "Pass e.g. batch=1.")
    _check_count("warmup", warmup, "Pass e.g. warmup=5.", low=0)
    report = BenchmarkReport(metric=next((v.metric for v in chosen if v.metric), None))
    total = len(chosen) * len(thread_counts)
    index = 0
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as folder:
        for variant in chosen:
            path, failure = _write_model(variant, folder)
            for t in thread_counts:
                index += 1
                tick = BenchmarkProgress(variant.name, index, total, 0, runs)
                if progress is not None:
                    progress(tick)
                if tick.stop_requested:
                    report.stopped = True
                    return report
                base = _basics(variant, t, batch, runs)
                if failure:
                    report.rows.append(BenchmarkRow(**base, error=failure))
                    continue
                spec = {"model": path, "threads": t, "runs": runs, "warmup": warmup,
                        "batch": batch, "input_shape": input_shape}
                result = _run(spec, timeout, lambda run, tick=tick: _tick(progress, tick, run))
                report.rows.append(BenchmarkRow(**{**base, **result}))  # the batch really used
                if tick.stop_requested:  # asked during the runs: this measurement is kept
                    report.stopped = True
                    return report
    return report


def _tick(progress: Callable | None, tick: BenchmarkProgress, run: int) -> None:
    if progress is not None:
        tick.run = run
        progress(tick)


def _basics(variant: Variant, threads: int, batch: int, runs: int) -> dict[str, Any]:
    def safe(getter: Callable[[], Any]) -> Any:
        try:
            return getter()
        except (ConversionError, ValueError):
            return None

    return {"variant": variant.name, "technique": variant.technique, "threads": threads,
            "batch": batch, "runs": runs, "size_bytes": safe(lambda: variant.size_bytes),
            "gzipped_bytes": safe(lambda: variant.gzipped_bytes),
            "accuracy": safe(lambda: variant.accuracy)}


def _write_model(variant: Variant, folder: str) -> tuple[str, str]:
    try:
        blob = variant.tflite
    except ConversionError as exc:
        return "", f"conversion failed: {exc}"
    path = os.path.join(folder, f"{safe_filename(variant.name)}-{id(variant)}.tflite")
    with open(path, "wb") as fh:
        fh.write(blob)
    return path, ""


_FIELDS = ("init_ms", "first_inference_ms", "mean_ms", "std_ms", "min_ms", "median_ms",
           "p10_ms", "p90_ms", "memory_mb")


def _run(spec: dict, timeout: float, on_run: Callable[[int], None]) -> dict[str, Any]:
    """One measurement in a fresh process; every failure is turned into ``{"error": ...}``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)],
                                    stdout=subprocess.PIPE, stderr=errors, env=env)
        except OSError as exc:
            return {"error": f"could not start the measuring process: {exc}"}
        result = _collect(proc, timeout, on_run)
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    return _interpret(result, proc.returncode, stderr, timeout)


def _collect(proc: subprocess.Popen, timeout: float,
             on_run: Callable[[int], None]) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    result: dict[str, Any] | None = None
    try:
        for line in _lines(proc, deadline):
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue  # not ours (a library printing to stdout)
            if "progress" in message:
                on_run(int(message["progress"]))
            elif "result" in message or "error" in message:
                result = message
    except TimeoutError:
        proc.kill()
        proc.wait()
        return {"timeout": True}
    proc.wait()
    return result


def _interpret(result: dict[str, Any] | None, code: int | None, stderr: str,
               timeout: float) -> dict[str, Any]:
    if result is not None and result.get("timeout"):
        return {"error": f"timed out after {timeout:.0f} s (raise timeout= for big models)"}
    if result is None:
        tail = stderr.strip().splitlines()[-3:]
        return {"error": f"the measuring process ended without a result (exit code "
                         f"{code}): {' | '.join(tail) or 'no message'}"}
    if "error" in result:
        return {"error": str(result["error"])}
    values = result["result"]
    numbers = [values.get(name) for name in _FIELDS]
    if not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in numbers):
        return {"error": f"the measuring process returned unusable numbers: {values}"}
    if not values.get("output_finite", True):
        return {"error": "the model's output is not finite (NaN or Inf) on random inputs"}
    shape = values.get("input_shape") or [0]
    return {**{name: float(values[name]) for name in _FIELDS},
            "input_dtype": str(values.get("input_dtype", "")), "batch": int(shape[0] or 1)}


def _lines(proc: subprocess.Popen, deadline: float) -> Iterable[str]:
    import selectors

    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        if not selector.select(timeout=min(left, 1.0)):
            if proc.poll() is not None and not buffer:
                yield from proc.stdout.read().decode("utf-8", "replace").splitlines()
                return
            continue
        chunk = os.read(proc.stdout.fileno(), 65536).decode("utf-8", "replace")
        if not chunk:
            if buffer:
                yield buffer
            return
        buffer += chunk
        *complete, buffer = buffer.split("\n")
        yield from complete
