"""Search: the smallest (or fastest) variant within a metric budget, found by sweeps.

:meth:`Workbench.search` prunes in rounds, each round one parallel sweep: first a spread of
sparsities, then, for each family of candidates, the midpoint between the highest sparsity
that kept the metric within ``max_drop`` and the lowest one that did not (bisection), until
``budget`` candidates have been fine-tuned or every family has narrowed to 2 points of
sparsity. The families are *uniform* (one sparsity for every layer) and, when a sensitivity
run with pruning levels was measured on the same base, *guided*: the per-layer targets of
:meth:`Sensitivity.suggest` for that overall sparsity (the robust layers pruned harder).
Every candidate is also quantized after training (``then``), and each variant is judged on
its own metric: the answer is the best of all that stayed within ``max_drop``.

Example:
    >>> best = wb.search(max_drop=0.01, objective="gzipped_bytes", budget=12)  # doctest: +SKIP
    >>> wb.sweeps[-1].plot()                                                     # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from compresswidgets import sweeps as sw
from compresswidgets.techniques._common import check_choice, check_number

if TYPE_CHECKING:
    from compresswidgets.sensitivity import Sensitivity
    from compresswidgets.variant import Variant
    from compresswidgets.workbench import Workbench

__all__ = ["FIRST_LEVELS", "OBJECTIVES", "search"]

#: What a search minimises.
OBJECTIVES = ("gzipped_bytes", "size_bytes", "median_ms")
#: The sparsities of the first round.
FIRST_LEVELS = (0.5, 0.7, 0.85)
#: A family stops narrowing when its bracket is this narrow.
RESOLUTION = 0.02
#: Candidates benchmarked for ``objective="median_ms"`` (the smallest that qualify).
LATENCY_CANDIDATES = 5


@dataclass
class Family:
    """Candidates of one kind: sparsity -> the level a sweep takes (a number or targets)."""

    name: str
    level: Callable[[float], Any]
    tried: dict[float, bool] = field(default_factory=dict)  # sparsity -> within max_drop

    def next(self) -> float | None:
        """The next sparsity to try: the bisection point of the bracket, or None."""
        ok = [s for s, good in self.tried.items() if good]
        bad = [s for s, good in self.tried.items() if not good]
        if not ok and not bad:
            return None
        low = max(ok, default=0.0)
        high = min((s for s in bad if s > low), default=0.97 if ok else None)
        if high is None:  # nothing qualified yet: halve the lowest tried
            high = min(bad)
        if high - low < RESOLUTION:
            return None
        point = round((low + high) / 2, 2)
        return None if point in self.tried or point <= 0 else point


def families(wb: Workbench, sensitivity: Sensitivity | None, max_drop: float) -> list[Family]:
    out = [Family("uniform", lambda s: s)]
    if sensitivity is not None and "prune" in sensitivity.levels:
        def guided(s: float) -> dict[str, float]:
            try:
                return dict(sensitivity.suggest(max_drop, target_sparsity=s).get("prune", {}))
            except ValueError:  # above what was measured: this family cannot go there
                return {}
        out.append(Family("guided", guided))
    return out


def search(wb: Workbench, *, max_drop: float, objective: str, budget: int, epochs: int,
           then: Any, base: Any, executor: Any, progress: Any, seed: int,
           sensitivity: Sensitivity | None, max_workers: int | None) -> Variant | None:
    """See :meth:`Workbench.search`."""
    max_drop = check_number("max_drop", max_drop, 0.0, math.inf,
                            hint="Pass the largest metric drop to accept, e.g. 0.01.")
    check_choice("objective", objective, OBJECTIVES)
    budget = int(check_number("budget", budget, 1, 1000, integer=True,
                              hint="Pass how many candidates to fine-tune, e.g. budget=12."))
    then = sw.check_then(("int8",) if then == "default" else then)
    base_variant = wb._base(base, "A search")
    if sensitivity is None:
        sensitivity = wb._measured_sensitivity.get(base_variant.name)
    kinds = families(wb, sensitivity, max_drop)
    rows: list[dict[str, Any]] = []
    made: dict[str, Variant] = {}
    stopped = False
    spent = 0
    rounds = 0
    start = time.perf_counter()

    def relay(p: sw.SweepProgress) -> None:
        nonlocal stopped
        if progress is not None:
            progress(p)
        stopped = stopped or p.stop_requested

    while spent < budget and not stopped:
        if rounds == 0:
            plan = [(f, s) for s in FIRST_LEVELS for f in kinds]
        else:
            plan = [(f, s) for f in kinds if (s := f.next()) is not None]
        leveled = [(f, s, f.level(s)) for f, s in plan]  # a guided level asks suggest()
        for f, s, level in leveled:
            if not level:  # no targets for it: out of this family's reach
                f.tried[s] = False
        plan = [(f, s) for f, s, level in leveled if level][: budget - spent]
        levels = [level for _, _, level in leveled if level][: budget - spent]
        if not plan:
            break
        result = wb.sweep(prune=levels, epochs=epochs, then=then, base=base_variant,
                          executor=executor, progress=relay, seed=seed,
                          max_workers=max_workers, max_candidates=len(levels))
        rounds += 1
        spent += len(plan)
        offset = len({r["candidate"] for r in rows})
        for r in result.rows:
            rows.append({**r, "candidate": r["candidate"] + offset, "round": rounds})
        made.update({v.name: v for v in result.variants})
        for index, (f, s) in enumerate(plan):
            mine = [r for r in result.rows if r["candidate"] == index and r["error"] is None]
            if mine or result.complete:
                f.tried[s] = any(wb.metric.within(r["drop"], max_drop) for r in mine)
        stopped = stopped or not result.complete
    note = f"search: max_drop={max_drop}, objective={objective}, {spent} candidates in " \
           f"{rounds} round(s)"
    combined = sw.Sweep(rows, made, wb.metric, complete=not stopped,
                        executor=result.executor if rounds else "none",
                        workers=result.workers if rounds else 0,
                        seconds=time.perf_counter() - start, notes=(note,))
    wb._sweeps.append(combined)
    if objective == "median_ms":
        return _fastest(wb, combined, max_drop)
    best = combined.best(max_drop, objective)
    if best is None and combined.complete:
        closest = min((r for r in rows if r["error"] is None), key=lambda r: r["drop"],
                      default=None)
        raise ValueError(
            f"No candidate stayed within max_drop={max_drop} of the original's "
            f"{wb.metric.name} ({spent} fine-tuned"
            + (f"; the closest, {closest['name']!r}, dropped {closest['drop']:.4f}"
               if closest else "") + "). Every candidate is in wb.variants and "
            "wb.sweeps[-1]. Expected at least one within budget: pass a larger max_drop, "
            "more epochs, or a larger budget.")
    return best


def _fastest(wb: Workbench, combined: sw.Sweep, max_drop: float) -> Variant | None:
    """The qualifying variant of the lowest median latency (the smallest few, benchmarked
    now in LiteRT, one thread)."""
    rows = sorted((r for r in combined.rows if r["error"] is None
                   and wb.metric.within(r["drop"], max_drop)), key=lambda r: r["gzipped_bytes"])
    chosen = [wb[r["name"]] for r in rows[:LATENCY_CANDIDATES]]
    if not chosen:
        return None
    report = wb.benchmark(chosen, runs=30, warmup=5, threads=[1])
    measured = [r for r in report.rows if r.ok]
    if not measured:
        return None
    return wb[min(measured, key=lambda r: r.median_ms).variant]
