"""Multi-fidelity BaMSOO: shallow cells evaluated at low fidelity, deep cells at full fidelity.

Why: in an LLM study a trial that collapses the model or trains nothing shows it within its first quarter of
training, so a tree that explores the large shallow cells on short trials and spends full trials only on the
small cells it reaches by refining the best ones spends a fraction of the compute on the doomed regions
(multi-fidelity tree search: MFPDOO, Sen, Kandasamy and Shakkottai, AISTATS 2019; MF-HOO, MF-SOO).

The fidelity of a cell is set by its depth: depths 0 .. band - 1 get `fidelities[0]`, the next `band` depths
`fidelities[1]`, and so on; the last fidelity is 1 (the full trial). A cell whose fidelity is below 1 is
proposed with `meta["fidelity"]` set, and the scheduler stops its trial at its first report at or past that
fraction (pbo.scheduler): the trial comes back `pruned` with the value reported there, which the cell ranks by.
An objective that does not report (or reports no fidelity) runs every trial to its end: then only the changes
below to BaMSOO remain, and they cost it on BBOB (docs/benchmarks.md): use `bamsoo` there.

The bias of low fidelity (a trained model scores below its final value early in training) never enters a
comparison, where the literature bounds it and adds it to the low-fidelity values: values are compared only
among cells of one fidelity. SOO's sweep compares the leaves of one depth (one fidelity by construction) and,
across depths, a leaf with v_max, the value the sweep split at a shallower depth; here v_max starts again at
-inf at the first depth of each fidelity band. BaMSOO's GP holds the full-fidelity values only (a pruned trial
never enters it), so its evaluate-or-approximate rule judges only children of full fidelity, against the best
full-fidelity value; children of lower fidelity are always evaluated (they are cheap). Splits are in two (`k`
must be even): with odd k the middle child keeps its parent's centre and value, which at a band's first depth
would be a lower fidelity's value among full-fidelity siblings, and a point is never evaluated twice.

A budget caps the low-fidelity trials at `low_share` of it (default half): past that, every new cell runs in
full whatever its depth, so a study too short to reach the full-fidelity band still ends with full trials to
recommend (a low-fidelity value in a depth that then holds full ones ranks as a pruned cell's does: below, as a
pessimistic estimate).

Options: BaMSOO's, `k` (even, default 2), `fidelities` (increasing fractions in (0, 1], ending with 1;
default [0.25, 1]: on the tiny LLM study an eighth of the training still ranks a collapsing configuration above a
good one, a quarter no longer does) and `band` (depths per fidelity; default the number of variables, so every
side has been halved once before trials run in full) and `low_share` (above). Figures: docs/benchmarks.md,
"Early stopping".

Example:
    >>> from pbo.space import Space
    >>> opt = MFBaMSOO(Space.from_dict({"x": {"type": "float", "low": 0, "high": 1}}), fidelities=[0.25, 1])
    >>> first = opt.ask()
    >>> first.meta["fidelity"], opt.fidelity(0), opt.fidelity(1)
    (0.25, 0.25, 1.0)
    >>> opt.tell_pruned(first.id, 0.1, step=25)   # stopped at a quarter of its training
    >>> [c.meta.get("fidelity") for c in (opt.ask(), opt.ask())]   # depth 1: full trials
    [None, None]
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from pbo.optimizers.base import Proposal
from pbo.optimizers.bamsoo import BaMSOO
from pbo.space import Space
from pbo.tree import Node


class MFBaMSOO(BaMSOO):
    """BaMSOO with a fidelity per depth band (see the module docstring)."""

    name = "mfbamsoo"

    def __init__(self, space: Space, *, k: int = 2, fidelities: Sequence[float] = (0.25, 1.0),
                 band: int | None = None, low_share: float = 0.5, **options: Any) -> None:
        if int(k) != k or k < 2 or k % 2:
            raise ValueError(f"{self.name}: k must be an even integer >= 2 (a middle child would keep a lower "
                             f"fidelity's value), got {k!r}")
        fidelities = [float(f) for f in fidelities]
        if (not fidelities or fidelities[-1] != 1.0 or any(not 0 < f <= 1 for f in fidelities)
                or fidelities != sorted(set(fidelities))):
            raise ValueError(f"{self.name}: fidelities must be increasing fractions in (0, 1] ending with 1, "
                             f"got {fidelities!r}")
        band = space.dim if band is None else band
        if isinstance(band, bool) or not isinstance(band, int) or band < 1:
            raise ValueError(f"{self.name}: band must be an integer >= 1, got {band!r}")
        if not 0 < low_share <= 1:
            raise ValueError(f"{self.name}: low_share must lie in (0, 1], got {low_share!r}")
        super().__init__(space, k=k, **options)
        self.fidelities, self.band, self.low_share = fidelities, band, float(low_share)
        self.n_low = 0  # cells proposed below full fidelity

    def fidelity(self, depth: int) -> float:
        """The fraction of a full trial a cell at `depth` is evaluated with."""
        return self.fidelities[min(depth // self.band, len(self.fidelities) - 1)]

    def _fidelity_now(self, node: Node) -> float:
        """The fidelity a new cell gets: its depth's, or 1 once the low-fidelity trials used their share."""
        capped = self.budget is not None and self.n_low >= self.low_share * self.budget
        return 1.0 if capped else self.fidelity(node.depth)

    def _proposal(self, node: Node) -> Proposal:
        fidelity = self._fidelity_now(node)
        proposal = super()._proposal(node)
        if fidelity < 1:
            proposal.meta["fidelity"] = fidelity
            self.n_low += 1
        return proposal

    def _judge(self, node: Node) -> tuple[bool, float | None]:
        """A child below full fidelity is always evaluated: the GP knows full-fidelity values only."""
        if self._fidelity_now(node) < 1:
            return True, None
        return super()._judge(node)

    def _sweep_step(self) -> bool:
        if self._depth > 0 and self.fidelity(self._depth) != self.fidelity(self._depth - 1):
            self._v_max = -math.inf  # a new band: its values are not compared with a lower fidelity's
        return super()._sweep_step()
