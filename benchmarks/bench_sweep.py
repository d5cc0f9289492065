"""How much faster is a sweep in parallel workers, against the same sweep serially?

A 6-candidate sweep on the demo model (prune 30/45/60/70/80/90 %, 2 epochs each, then
int8), measured three ways in the same run:

* ``serial``: the sweep on one local worker (``max_workers=1``, all cores to it);
* ``parallel``: the sweep on one worker per core (the default pool);
* ``loop``: the peer a user writes today, ``wb.prune(level, epochs=2)`` then
  ``wb.quantize("int8")`` in a loop (one worker, one candidate after the other).

Each sweep starts its pool from cold (the TensorFlow import of every worker is counted) and
is timed twice: cold, and warm (the pool's processes reused). Prints the wall times, the
speed-up serial/parallel and its ratio against the ideal (the number of workers); also the
workers' memory after the sweep, which :func:`compresswidgets.sweeps.pool_size` estimates.
Exits 1 when the warm speed-up is under 60 % of the ideal.

Run: ``.venv/bin/python benchmarks/bench_sweep.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import sys
import time

import compresswidgets as cw
from compresswidgets import _process
from compresswidgets import sweeps as sw

LEVELS = [0.3, 0.45, 0.6, 0.7, 0.8, 0.9]
EPOCHS = 2
FLOOR = 0.6  # of the ideal speed-up


def rss_mb(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                out.append(int(f.read().split()[1]) * 4096 / 2**20)
        except OSError:
            pass
    return out


def timed_sweep(wb: cw.Workbench, workers: int) -> tuple[float, float, cw.Workbench]:
    sw.shutdown()
    start = time.perf_counter()
    first = wb.sweep(prune=LEVELS, epochs=EPOCHS, then="int8", max_workers=workers)
    cold = time.perf_counter() - start
    assert all(r["error"] is None for r in first.rows), first.rows
    start = time.perf_counter()
    wb.sweep(prune=LEVELS, epochs=EPOCHS, then="int8", max_workers=workers)
    warm = time.perf_counter() - start
    pool = sw.local_pool(workers, max(1, _process.cpu_count() // workers))
    memory = rss_mb(pool.pids()) or []
    print(f"  {workers} worker(s): cold {cold:.1f} s, warm {warm:.1f} s"
          + (f"; worker memory {', '.join(f'{m:.0f}' for m in memory)} MB" if memory else ""))
    return cold, warm, first


def main() -> int:
    model, data = cw.demo_model()
    wb = cw.Workbench(model, data)
    cores = _process.cpu_count()
    per_worker = sw.worker_bytes(wb.original.keras_model, wb.data)
    workers = sw.pool_size(per_worker, len(LEVELS))
    print(f"demo CNN, {len(LEVELS)} candidates x {EPOCHS} epochs + int8, {cores} cores; "
          f"pool_size chose {workers} worker(s) (estimate {per_worker / 2**20:.0f} MB each)")
    start = time.perf_counter()
    for level in LEVELS:
        p = wb.prune(level, epochs=EPOCHS)
        q = wb.quantize("int8", base=p)
        _ = p.accuracy, p.gzipped_bytes, q.accuracy, q.gzipped_bytes
    loop = time.perf_counter() - start
    print(f"  loop of wb.prune + wb.quantize: {loop:.1f} s")
    serial_cold, serial_warm, _ = timed_sweep(wb, 1)
    parallel_cold, parallel_warm, _ = timed_sweep(wb, workers)
    ideal = workers
    speedup = serial_warm / parallel_warm
    print(f"speed-up serial/parallel: warm {speedup:.2f}x, cold "
          f"{serial_cold / parallel_cold:.2f}x; ideal {ideal}x -> {speedup / ideal:.0%} of the "
          f"ideal (floor {FLOOR:.0%}); against the loop: {loop / parallel_warm:.2f}x")
    sw.shutdown()
    return 0 if speedup >= FLOOR * ideal else 1


if __name__ == "__main__":
    sys.exit(main())
