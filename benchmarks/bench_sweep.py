"""How much faster is a sweep in parallel workers, against the same sweep serially?

Two cases, each measured against its peer in the same run:

**A small sweep** (the one a user tries first): 3 candidates (prune 50/70/90 %), 1 epoch
each, then dynamic range, against the loop a user writes today, ``wb.prune(level,
epochs=1)`` then ``wb.quantize("dynamic")``. Both start from the state a user is in: a
Workbench that has made one variant (its worker process warm, no sweep pool yet), then
the few seconds the user takes to write the next cell (here: until the processes this
kernel started have gone quiet, at least 2 s). Timed :data:`SMALL_RUNS` times; prints each
ratio loop/parallel and their median against the floor (1.0: the sweep must beat the
loop). Also, as information, the sweep sent at once after the first variant (a script,
no idle time).

**A 6-candidate sweep** on the demo model (prune 30/45/60/70/80/90 %, 2 epochs each, then
int8), measured three ways in the same run:

* ``serial``: the sweep on one local worker (``max_workers=1``, all cores to it);
* ``parallel``: the sweep on one worker per core (the default pool);
* ``loop``: the peer a user writes today, ``wb.prune(level, epochs=2)`` then
  ``wb.quantize("int8")`` in a loop (one worker, one candidate after the other).

Each sweep starts its pool from cold (the TensorFlow import of every worker is counted) and
is timed twice: cold, and warm (the pool's processes reused). Prints the wall times, the
speed-up serial/parallel and its ratio against the ideal (the number of workers); also the
workers' memory after the sweep, which :func:`compresswidgets.sweeps.pool_size` estimates.

Exits 1 when the small sweep's median ratio is not above 1.0, or the 6-candidate warm
speed-up is under 60 % of the ideal.

Run: ``.venv/bin/python benchmarks/bench_sweep.py`` (about 7 minutes on 2 cores);
``--small`` runs the small case only (about 3 minutes), ``--runs=N`` times it N times.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import compresswidgets as cw
from compresswidgets import _process
from compresswidgets import sweeps as sw

LEVELS = [0.3, 0.45, 0.6, 0.7, 0.8, 0.9]
EPOCHS = 2
FLOOR = 0.6  # of the ideal speed-up

SMALL_LEVELS = [0.5, 0.7, 0.9]
SMALL_EPOCHS = 1
SMALL_THEN = "dynamic"
SMALL_FLOOR = 1.0  # the parallel sweep must beat the loop
SMALL_RUNS = 3
#: the user's think time: at least this, then until the kernel's processes are quiet
THINK_MIN, THINK_MAX = 2.0, 60.0


def rss_mb(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                out.append(int(f.read().split()[1]) * 4096 / 2**20)
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------- the small sweep
def _children_cpu() -> dict[int, int]:
    """CPU ticks of each process this one started (the workers, and any spare)."""
    me, out = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # ppid
            out[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


def think() -> float:
    """Wait as a user writing the next cell would: at least :data:`THINK_MIN`, then until
    the processes this kernel started have used no CPU for a second (whatever they start
    in the background is done); the seconds waited."""
    start = time.perf_counter()
    time.sleep(THINK_MIN)
    before = _children_cpu()
    while time.perf_counter() - start < THINK_MAX:
        time.sleep(1.0)
        now = _children_cpu()
        if now == before:
            break
        before = now
    return time.perf_counter() - start


def fresh_state(model, data) -> cw.Workbench:
    """A user's state before a first sweep: a new Workbench that has made one variant, so
    its worker is warm; no sweep pool, nothing else started (no spare from before)."""
    sw.shutdown()
    _process.shutdown()
    wb = cw.Workbench(model, data)
    wb.prune(0.3, epochs=SMALL_EPOCHS)
    return wb


def small_loop(wb: cw.Workbench) -> float:
    start = time.perf_counter()
    for level in SMALL_LEVELS:
        p = wb.prune(level, epochs=SMALL_EPOCHS)
        q = wb.quantize(SMALL_THEN, base=p)
        _ = p.accuracy, p.gzipped_bytes, q.accuracy, q.gzipped_bytes
    return time.perf_counter() - start


def small_sweep(wb: cw.Workbench) -> tuple[float, sw.Sweep]:
    start = time.perf_counter()
    made = wb.sweep(prune=SMALL_LEVELS, epochs=SMALL_EPOCHS, then=SMALL_THEN)
    took = time.perf_counter() - start
    assert all(r["error"] is None for r in made.rows), made.rows
    return took, made


def small_case(model, data, runs: int = SMALL_RUNS) -> bool:
    print(f"small sweep: {len(SMALL_LEVELS)} candidates x {SMALL_EPOCHS} epoch + "
          f"{SMALL_THEN}, {_process.cpu_count()} cores; each from a Workbench that made one "
          "variant, then the user's think time")
    ratios, loops, sweeps, scripts = [], [], [], []
    for run in range(1, runs + 1):
        wb = fresh_state(model, data)
        waited = think()
        loop = small_loop(wb)
        wb = fresh_state(model, data)
        waited_too = think()
        parallel, made = small_sweep(wb)
        wb = fresh_state(model, data)  # as a script: the sweep at once, no think time
        script, _ = small_sweep(wb)
        loops.append(loop)
        sweeps.append(parallel)
        scripts.append(script)
        ratios.append(loop / parallel)
        print(f"  run {run}: loop {loop:.1f} s, parallel {parallel:.1f} s on {made.workers} "
              f"worker(s) -> {loop / parallel:.2f}x (think time {waited:.1f} / "
              f"{waited_too:.1f} s); at once after the first variant: {script:.1f} s "
              f"({loop / script:.2f}x); load average {os.getloadavg()[0]:.1f}", flush=True)
    ratio = statistics.median(ratios)
    print(f"small sweep against the loop: median {ratio:.2f}x (runs {min(ratios):.2f}-"
          f"{max(ratios):.2f}x; loop median {statistics.median(loops):.1f} s, parallel "
          f"{statistics.median(sweeps):.1f} s, at once {statistics.median(scripts):.1f} s); "
          f"floor {SMALL_FLOOR:.1f}x")
    sw.shutdown()
    _process.shutdown()
    return ratio > SMALL_FLOOR


# --------------------------------------------------------------------------- 6 candidates
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


def six_case(model, data) -> bool:
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
    return speedup >= FLOOR * ideal


def main(argv: list[str]) -> int:
    model, data = cw.demo_model()
    runs = [int(a.split("=", 1)[1]) for a in argv if a.startswith("--runs=")]
    ok = small_case(model, data, *runs[-1:])
    if "--small" not in argv:
        ok &= six_case(model, data)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
