"""What the field reports on BBOB, computed from the runs' records: COCO-style ECDFs of (function, target)
pairs solved, median log10 regret at N x D evaluations, and the optimizer's overhead; as tables and a PNG.

A pair (run, target) is solved after n evaluations when the run's best regret after n evaluations is at or
below the target. The ECDF at n is the fraction of pairs solved, over all runs (functions x instances x seeds)
of a dimension and of a function group: COCO's bootstrapped runtime ECDF without the bootstrap, which for
runs of equal budget is the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from jobs.bbob.suite import GROUPS, Run

#: COCO's 51 targets: 10^2 .. 10^-8, five per decade.
TARGETS: tuple[float, ...] = tuple(10.0 ** (2 - 0.2 * k) for k in range(51))
REGRET_FLOOR = 1e-8  # the smallest target; medians of log10 regret floor here
CHECKPOINTS = (10, 20, 50, 100)  # evaluations, as multiples of D
ALL = "all functions"


def series(run: Run) -> str:
    """The name a run's algorithm goes by in tables: its label, with the worker count when asynchronous."""
    return run.job.label if run.job.workers == 1 else f"{run.job.label} W={run.job.workers}"


def scopes() -> dict[str, range]:
    """Function sets the tables report on: all, then COCO's five groups."""
    out = {ALL: range(1, 25)}
    out.update({f"f{ids.start}-{ids.stop - 1} {name}": ids for name, ids in GROUPS.items()})
    return out


def first_hits(runs: Iterable[Run], targets: Sequence[float] = TARGETS) -> np.ndarray:
    """The first evaluation at which each (run, target) pair was solved; inf where it was not."""
    return np.array([[run.first_hit(t) or math.inf for t in targets] for run in runs], dtype=float).reshape(-1)


def ecdf(runs: Sequence[Run], evaluations: Sequence[int], targets: Sequence[float] = TARGETS) -> np.ndarray:
    """Fraction of (run, target) pairs solved within each of `evaluations`."""
    hits = np.sort(first_hits(runs, targets))
    if not len(hits):
        return np.full(len(evaluations), math.nan)
    return np.searchsorted(hits, np.asarray(evaluations, dtype=float), side="right") / len(hits)


def ecdf_area(runs: Sequence[Run], targets: Sequence[float] = TARGETS) -> float:
    """Area under the ECDF over log10(evaluations), from 1 to each run's budget, as a fraction of that width:
    1 if every target is met at the first evaluation, 0 if none ever is. Comparable at equal budget factor."""
    areas = []
    for run in runs:
        width = math.log10(max(run.job.budget, 2))
        for t in targets:
            hit = run.first_hit(t)
            areas.append(0.0 if hit is None or hit > run.job.budget else (width - math.log10(hit)) / width)
    return float(np.mean(areas)) if areas else math.nan


def floored_log_regret(run: Run, n: int) -> float:
    """log10 of the run's best regret after n evaluations, floored at REGRET_FLOOR."""
    return math.log10(max(run.regret_at(n), REGRET_FLOOR))


def median_log_regret(runs: Sequence[Run], n: int) -> float:
    """Median over runs of log10 of the best regret after n evaluations (floored at 1e-8)."""
    values = [floored_log_regret(run, n) for run in runs if run.improvements]
    return float(np.median(values)) if values else math.nan


@dataclass
class Row:
    """One algorithm on one dimension and function set. Checkpoint keys are multiples of D."""

    dim: int
    scope: str
    series: str
    runs: int
    area: float
    solved: dict[int, float] = field(default_factory=dict)
    log_regret: dict[int, float] = field(default_factory=dict)
    overhead_ms: float = math.nan
    overhead_cpu_ms: float = math.nan


def summarize(runs: Sequence[Run]) -> list[Row]:
    """Rows per dimension, function set and series (in the order series first appear); failed runs excluded."""
    ok = [r for r in runs if r.error is None]
    names = list(dict.fromkeys(series(r) for r in ok))
    rows = []
    for dim in sorted({r.job.dim for r in ok}):
        for scope, ids in scopes().items():
            for name in names:
                chosen = [r for r in ok if r.job.dim == dim and r.job.function in ids and series(r) == name]
                if chosen:
                    rows.append(_row(dim, scope, name, chosen))
    return rows


def _row(dim: int, scope: str, name: str, runs: list[Run]) -> Row:
    factor = min(r.job.budget for r in runs) / dim
    checkpoints = [c for c in CHECKPOINTS if c <= factor + 1e-9]
    solved = dict(zip(checkpoints, ecdf(runs, [c * dim for c in checkpoints]).tolist()))
    return Row(dim, scope, name, len(runs), ecdf_area(runs), solved,
               {c: median_log_regret(runs, c * dim) for c in checkpoints},
               float(np.median([r.overhead_ms for r in runs])), float(np.median([r.overhead_cpu_ms for r in runs])))


def _cell(value: float | None, fmt: str, width: int) -> str:
    return f"{'':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}{fmt}}"


def format_tables(rows: Sequence[Row]) -> str:
    """One table per dimension and function set: ECDF area, fraction of pairs solved and median log10
    regret at 10/20/50/100 x D evaluations (those within the budget), median overhead in ms per evaluation
    (wall and CPU)."""
    if not rows:
        return "no successful runs to report"
    width = max(9, *(len(r.series) for r in rows)) + 1
    marks = [c for c in CHECKPOINTS if any(c in r.solved for r in rows)]
    head = (f"{'algorithm':<{width}}{'runs':>5}{'area':>7}" + "".join(f"{f'ok@{c}D':>8}" for c in marks)
            + "  |" + "".join(f"{f'lg@{c}D':>8}" for c in marks) + f"{'ms/eval':>9}{'cpu ms':>8}")
    out = ["area: ECDF area over log10(evaluations); ok@ND: fraction of (function x instance x seed, target) "
           "pairs solved after N x D evaluations (51 targets 1e2..1e-8); lg@ND: median log10 regret (floor -8); "
           "ms/eval, cpu ms: median optimizer overhead per evaluation, objective excluded (wall, CPU)"]
    for (dim, scope) in dict.fromkeys((r.dim, r.scope) for r in rows):
        out += ["", f"D={dim}, {scope}", head, "-" * len(head)]
        for r in (r for r in rows if (r.dim, r.scope) == (dim, scope)):
            out.append(f"{r.series:<{width}}{r.runs:>5}{_cell(r.area, '.3f', 7)}"
                       + "".join(_cell(r.solved.get(c), ".3f", 8) for c in marks) + "  |"
                       + "".join(_cell(r.log_regret.get(c), ".2f", 8) for c in marks)
                       + _cell(r.overhead_ms, ".2f", 9) + _cell(r.overhead_cpu_ms, ".2f", 8))
    return "\n".join(out)


def format_crashes(runs: Sequence[Run]) -> str:
    """Per dimension and series, the crashed evaluations of runs where trials crash (`--crash`): median and
    largest count per run, and their share of all evaluations."""
    ok = [r for r in runs if r.error is None and r.job.crash]
    names = list(dict.fromkeys(series(r) for r in ok))
    width = max(9, *(len(n) for n in names)) + 1 if names else 10
    head = f"{'algorithm':<{width}}{'runs':>5}{'median':>8}{'most':>6}{'share':>7}"
    out = ["crashed trials per run (trials crash in a half-space of the cube that does not hold the optimum)"]
    for dim in sorted({r.job.dim for r in ok}):
        out += ["", f"D={dim}", head, "-" * len(head)]
        for name in names:
            chosen = [r for r in ok if r.job.dim == dim and series(r) == name]
            if chosen:
                counts = [r.crashes for r in chosen]
                total = sum(r.evaluations for r in chosen)
                out.append(f"{name:<{width}}{len(counts):>5}{float(np.median(counts)):>8.1f}{max(counts):>6}"
                           f"{sum(counts) / max(total, 1):>7.2f}")
    return "\n".join(out)


#: Log10 regrets closer than this are even in a paired comparison (a tenth of a decade).
EVEN = 0.1


@dataclass
class Pairing:
    """A reference series against another on the problems (function, instance, seed) both ran in one dimension,
    at N x D evaluations: how often the reference's best regret is lower by more than EVEN decades (ahead), within
    EVEN (even, both at the 1e-8 floor included) or higher (behind), and the two-sided sign test's p-value of
    ahead against behind: small when one of the two is ahead on more problems than chance would give."""

    dim: int
    other: str
    n: int
    ahead: int
    even: int
    behind: int
    p: float


def paired(runs: Sequence[Run], reference: str) -> list[Pairing]:
    """Every other series paired with `reference` (a series name, e.g. "bamsoo W=64") at each checkpoint."""
    from scipy.stats import binomtest

    ok = [r for r in runs if r.error is None and r.improvements]
    by = {(series(r), r.job.dim, r.job.function, r.job.instance, r.job.seed): r for r in ok}
    out = []
    for dim in sorted({r.job.dim for r in ok}):
        mine = {key[2:]: run for key, run in by.items() if key[0] == reference and key[1] == dim}
        for other in dict.fromkeys(series(r) for r in ok if r.job.dim == dim and series(r) != reference):
            shared = [(run, by[(other, dim, *problem)]) for problem, run in mine.items()
                      if (other, dim, *problem) in by]
            if not shared:
                continue
            factor = min(min(a.job.budget, b.job.budget) for a, b in shared) / dim
            for c in (c for c in CHECKPOINTS if c <= factor + 1e-9):
                gaps = np.array([floored_log_regret(b, c * dim) - floored_log_regret(a, c * dim) for a, b in shared])
                ahead, behind = int((gaps > EVEN).sum()), int((gaps < -EVEN).sum())
                p = binomtest(ahead, ahead + behind).pvalue if ahead + behind else 1.0
                out.append(Pairing(dim, other, c, ahead, len(gaps) - ahead - behind, behind, float(p)))
    return out


def format_paired(pairings: Sequence[Pairing], reference: str) -> str:
    """One line per dimension and other series: ahead / even / behind and the sign test's p at each N x D."""
    if not pairings:
        return f"paired with {reference}: no problem that it and another series both ran"
    width = max(len(p.other) for p in pairings) + 1
    out = [f"paired with {reference}: problems where its best regret is lower by more than {EVEN} decade "
           f"(ahead), within it (even) or higher (behind), and the two-sided sign test's p of ahead vs behind"]
    for dim, other in dict.fromkeys((p.dim, p.other) for p in pairings):
        cells = [f"@{p.n}D {p.ahead:>3}/{p.even:>3}/{p.behind:<3} p={p.p:<5.2g}"
                 for p in pairings if (p.dim, p.other) == (dim, other)]
        out.append(f"D={dim} vs {other:<{width}}" + "  ".join(cells))
    return "\n".join(out)


def plot_ecdfs(runs: Sequence[Run], path: Path, title: str = "") -> None:
    """ECDF curves against log10(evaluations / D): one row of panels per dimension, one panel per function set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in runs if r.error is None]
    dims = sorted({r.job.dim for r in ok})
    names = list(dict.fromkeys(series(r) for r in ok))
    sets = {scope: ids for scope, ids in scopes().items() if any(r.job.function in ids for r in ok)}
    fig, axes = plt.subplots(max(len(dims), 1), len(sets), figsize=(3.2 * len(sets), 2.8 * max(len(dims), 1)),
                             squeeze=False, sharey=True)
    colors = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for i, dim in enumerate(dims):
        for j, (scope, ids) in enumerate(sets.items()):
            ax = axes[i][j]
            for k, name in enumerate(names):
                chosen = [r for r in ok if r.job.dim == dim and r.job.function in ids and series(r) == name]
                if chosen:
                    evals = np.arange(1, max(r.job.budget for r in chosen) + 1)
                    ax.step(np.log10(evals / dim), ecdf(chosen, evals), where="post", color=colors(k), label=name,
                            linestyle="-" if k < 10 else "--")
            ax.set_title(f"D={dim}, {scope}", fontsize=8)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            if i == len(dims) - 1:
                ax.set_xlabel("log10(evaluations / D)")
        axes[i][0].set_ylabel("fraction of (f, target) solved")
    axes[0][0].legend(fontsize=6, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
