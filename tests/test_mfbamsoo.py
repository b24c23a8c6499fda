"""Multi-fidelity BaMSOO: which fidelity a cell gets, how its low-fidelity trial ends, and what compares with what."""

from __future__ import annotations

import numpy as np
import pytest

from pbo.backends.simulated import SimulatedBackend
from pbo.log import RunLog, load_resume, read
from pbo.objectives import resolve_objective
from pbo.objectives.cost import CostModel
from pbo.optimizers import make_optimizer
from pbo.scheduler import run_study
from pbo.space import Space
from pbo_process import run_pbo

LINE = Space.from_dict({"x": {"type": "float", "low": 0, "high": 1}})
PLANE = Space.from_dict({"x1": {"type": "float", "low": 0, "high": 1}, "x2": {"type": "float", "low": 0, "high": 1}})


def test_a_cell_gets_the_fidelity_of_its_depth_band():
    opt = make_optimizer("mfbamsoo", PLANE, fidelities=[0.25, 0.5, 1], band=2)
    assert [opt.fidelity(depth) for depth in range(7)] == [0.25, 0.25, 0.5, 0.5, 1, 1, 1]
    assert make_optimizer("mfbamsoo", PLANE).band == 2  # by default one band per variable


@pytest.mark.parametrize("options, message", [
    ({"k": 3}, "k must be an even integer"),
    ({"fidelities": [0.5]}, "ending with 1"),
    ({"fidelities": [0.5, 0.25, 1]}, "increasing"),
    ({"fidelities": [0, 1]}, "in (0, 1]"),
    ({"band": 0}, "band must be an integer >= 1"),
    ({"low_share": 0}, "low_share must lie in"),
])
def test_bad_settings_are_refused_with_one_line(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make_optimizer("mfbamsoo", PLANE, **options)


def test_only_full_trials_are_proposed_past_the_low_bands_and_only_their_values_reach_the_gp():
    opt = make_optimizer("mfbamsoo", LINE, fidelities=[0.5, 1], band=1)
    root = opt.ask()
    assert root.meta["fidelity"] == 0.5
    opt.tell_pruned(root.id, 3.0, step=5)
    children = [opt.ask(), opt.ask()]
    assert [c.meta["depth"] for c in children] == [1, 1] and all("fidelity" not in c.meta for c in children)
    for cand, value in zip(children, (1.0, 2.0)):
        opt.tell(cand.id, value)
    assert opt._real_y == [1.0, 2.0]  # the root's low-fidelity 3.0 is in the tree, not in the GP
    assert opt.best().value == 2.0


def test_a_band_is_swept_without_comparing_it_with_a_lower_fidelitys_values():
    """A low-fidelity leaf split at value 9 must not keep the sweep from splitting the best full-fidelity leaf
    below it (3, measured on another scale): the next proposal refines that leaf, not another low-fidelity one."""
    opt = make_optimizer("mfbamsoo", LINE, k=4, fidelities=[0.5, 1], band=2, min_points=100)  # no GP: SOO's steps
    root = opt.ask()
    opt.tell_pruned(root.id, 5.0, step=1)
    low = [opt.ask() for _ in range(4)]
    for cand, value in zip(low, (9.0, 1.0, 1.0, 1.0)):
        assert cand.meta["depth"] == 1 and cand.meta["fidelity"] == 0.5
        opt.tell_pruned(cand.id, value, step=1)
    full = [opt.ask() for _ in range(4)]
    for cand, value in zip(full, (3.0, 2.0, 2.0, 2.0)):
        assert cand.meta["depth"] == 2 and "fidelity" not in cand.meta
        opt.tell(cand.id, value)
    assert opt.ask().meta["depth"] == 3  # with v_max 9 carried over, the sweep would split a depth-1 leaf


def test_a_study_stops_shallow_trials_at_their_fidelity_and_runs_deep_ones_in_full(tmp_path):
    path = tmp_path / "mf.h5"
    proc = run_pbo(["--objective", "curve", "--objective-options", "{steps: 8}", "--algorithm", "mfbamsoo",
                    "--optimizer", "{fidelities: [0.25, 1], band: 2}", "--budget", "16", "--workers", "2",
                    "--out", str(path)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    run = read(path)
    asked = run.decisions["kind"] == "ask"
    node_of = dict(zip(run.decisions["trial_id"][asked].tolist(), run.decisions["node"][asked].tolist()))
    depth_of = dict(zip(run.tree["node_id"].tolist(), run.tree["depth"].tolist()))
    seen = set()
    for trial_id, status in zip(run.trials["trial_id"].tolist(), run.trials["status"]):
        low = depth_of[node_of[trial_id]] < 2
        steps = run.curve(trial_id)["step"].tolist()
        assert (status, steps) == (("pruned", [1.0, 2.0]) if low else ("ok", [float(s) for s in range(1, 9)]))
        seen.add(low)
    assert seen == {True, False}
    assert run.trials["status"][run.best()] == "ok"


def test_a_resumed_study_issues_its_interrupted_low_fidelity_trials_with_their_fidelity(tmp_path):
    """The fidelity target travels with the candidate, not the log: replay rebuilds it from the node's depth."""
    objective = resolve_objective("curve", {"steps": 8})
    space = Space.from_dict(objective.space)
    config = {"algorithm": "mfbamsoo", "objective": "curve", "budget": 24, "seed": 0, "space": space.to_dict()}
    before = make_optimizer("mfbamsoo", space, budget=24, fidelities=[0.25, 1], band=2)
    results = []
    with RunLog.create(tmp_path / "run.h5", config=config, space=space, algorithm="mfbamsoo", seed=0,
                       n_workers=3) as log:
        run_study(before, SimulatedBackend(objective, 3, CostModel("lognormal", mean=1.0, sigma=0.5)), budget=24,
                  recorder=log, should_stop=lambda: len(results) >= 12, on_result=lambda r, s: results.append(r))
    assert {r.status.value for r in results} == {"pruned", "ok"}
    after = make_optimizer("mfbamsoo", space, budget=24, fidelities=[0.25, 1], band=2)
    redo = load_resume(tmp_path / "run.h5").restore(after)
    assert redo and after.state_dict()["events"] == before.state_dict()["events"]
    assert [(c.id, c.meta.get("fidelity")) for c in redo] == [(c.id, c.meta.get("fidelity")) for c in before.pending()]
    for name, column in before.tree_table().items():
        np.testing.assert_array_equal(after.tree_table()[name], column, err_msg=name)


def test_a_budget_keeps_half_of_it_for_full_trials_however_deep_the_low_band():
    opt = make_optimizer("mfbamsoo", PLANE, budget=10, band=50)  # the full band is out of reach of 10 trials
    asked = []
    for _ in range(10):
        cand = opt.ask()
        asked.append(cand.meta.get("fidelity"))
        if "fidelity" in cand.meta:
            opt.tell_pruned(cand.id, -cand.u.sum(), step=1)
        else:
            opt.tell(cand.id, -cand.u.sum())
    assert asked == [0.25] * 5 + [None] * 5 and opt.best() is not None
