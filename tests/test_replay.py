"""Replay from the record: a restored optimizer takes the recorded decisions, so numerics that differ on another
machine (a GP fitted with another BLAS or torch) warn, naming the first divergence, instead of refusing to
resume, and the run goes on from the state it had: the same trials, the same tree, no finished trial re-run."""

from __future__ import annotations

import os
import subprocess
import warnings

import numpy as np
import pytest

from log_support import CONFIG, SPACE, baseline_result, drive, new_log, new_optimizer
from pbo.log import RunLog, load_resume, read
from pbo.optimizers import ReplayDivergence, make_optimizer
from pbo.optimizers.bo import GPBO
from pbo.optimizers.soo import SOO
from pbo.surrogate import GPSurrogate
from pbo_process import command, environment, run_pbo
from tree_support import unit_space

FAST_BO = {"num_restarts": 1, "raw_samples": 16, "n_init": 4}
#: Added to the GP mean (relative and absolute): far beyond what replay treats as equal (1e-9), far below what
#: would matter to the search; what another BLAS does to the last bits, only larger.
NUDGE = 1e-6


def bumpy(cand) -> float:
    x = cand.u
    return float(-np.sum((x - 0.3) ** 2) - 0.3 * np.sin(7 * x[0]))


def interrupted(opt, n: int, workers: int = 3, seed: int = 0):
    """`n` asks with `workers` outstanding, results told in a random order; stops with `workers - 1` pending."""
    rng, pending = np.random.default_rng(seed), []
    for _ in range(n):
        pending.append(opt.ask())
        if len(pending) == workers:
            done = pending.pop(rng.integers(len(pending)))
            opt.tell(done.id, bumpy(done))
    return opt


def continued(opt, n: int):
    """Tell what is pending, then `n` asks and tells more; returns the ids asked."""
    for cand in opt.pending():
        opt.tell(cand.id, bumpy(cand))
    asked = []
    for _ in range(n):
        cand = opt.ask()
        asked.append(cand.id)
        opt.tell(cand.id, bumpy(cand))
    return asked


def assert_same_trees(a, b):
    for name, column in a.tree_table().items():
        np.testing.assert_array_equal(b.tree_table()[name], column, err_msg=name)


@pytest.fixture
def other_machine(monkeypatch):
    """Call it to change the numerics from then on: BaMSOO's GP predicts means NUDGE off, GP-BO's lengthscales
    are NUDGE off, and SOO prefers the sides it measured least instead of most among equally wide ones."""
    predict, scores, fit = GPSurrogate.predict, SOO._side_scores, GPBO._hyperparameters

    def nudged(self, u, pending=None):
        mean, sd = predict(self, u, pending)
        return mean * (1 + NUDGE) + NUDGE, sd

    def change():
        monkeypatch.setattr(GPSurrogate, "predict", nudged)
        monkeypatch.setattr(SOO, "_side_scores", lambda self: -scores(self))
        monkeypatch.setattr(GPBO, "_hyperparameters", lambda self, n, quick=False: {
            key: value * (1 + NUDGE) if key.endswith("lengthscale") else value for key, value in fit(self, n).items()})

    return change


def assert_goes_on_with_new_points(opt, n=10):
    done = {cid for cid, trial in opt.trials.items() if trial.state.is_finished()}
    asked = continued(opt, n)
    assert asked == list(range(len(opt.trials) - n + 1, len(opt.trials) + 1)) and not set(asked) & done
    assert len({opt._key(t.candidate.u) for t in opt.trials.values()}) == len(opt.trials)


def test_soo_restored_with_other_split_preferences_warns_and_rebuilds_the_recorded_tree(other_machine):
    before = interrupted(SOO(unit_space(3), seed=0), 40)
    other_machine()
    after = SOO(unit_space(3), seed=0)
    with pytest.warns(ReplayDivergence, match=r"soo: replay diverged from the record at trial \d+: node \d+ split "
                                              r"along side \d recorded, \d recomputed; continuing from the record"):
        after.load_state_dict(before.state_dict())
    assert after.state_dict() == before.state_dict()
    assert_same_trees(before, after)
    assert_goes_on_with_new_points(after)


def test_bamsoo_restored_with_a_perturbed_gp_warns_and_keeps_the_recorded_decisions(other_machine):
    before = interrupted(make_optimizer("bamsoo", unit_space(2), seed=0), 30)
    assert before.n_approximated > 0
    other_machine()
    after = make_optimizer("bamsoo", unit_space(2), seed=0)
    with pytest.warns(ReplayDivergence, match=r"bamsoo: replay diverged from the record at trial \d+: node \d+ "
                                              r"(evaluated \(GP mean|approximated by)"):
        after.load_state_dict(before.state_dict())
    assert after.state_dict() == before.state_dict() and after.n_approximated == before.n_approximated
    assert after._estimates == before._estimates  # what its pending nodes compete with
    assert_same_trees(before, after)
    assert_goes_on_with_new_points(after)


def test_bamsoo_replayed_with_the_same_numerics_recomputes_every_decision_alike():
    before = interrupted(make_optimizer("bamsoo", unit_space(2), seed=0), 30)
    after = make_optimizer("bamsoo", unit_space(2), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplayDivergence)
        after.load_state_dict(before.state_dict())
    assert after._replay_checks  # it compared to the end


@pytest.mark.parametrize("algorithm", ["soo", "bamsoo"])
def test_a_restored_tree_optimizer_on_the_same_numerics_goes_on_as_the_interrupted_one(algorithm):
    before = interrupted(make_optimizer(algorithm, unit_space(2), seed=0), 25)
    after = make_optimizer(algorithm, unit_space(2), seed=0)
    after.load_state_dict(before.state_dict())
    continued(after, 15)
    continued(before, 15)
    assert after.state_dict() == before.state_dict()


def test_gpbo_restored_with_a_perturbed_gp_takes_the_logged_points_without_any_gp_work(monkeypatch, other_machine):
    """Its replay takes every GP point from the record, so there is no GP decision to compare (no warning)."""
    before = interrupted(make_optimizer("bo", unit_space(2), seed=0, **FAST_BO), 10)
    after = make_optimizer("bo", unit_space(2), seed=0, **FAST_BO)
    with monkeypatch.context() as patch:
        patch.setattr(GPBO, "_hyperparameters", lambda self, n: pytest.fail("replay fitted a GP"))
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReplayDivergence)
            after.load_state_dict(before.state_dict())
    assert after.state_dict()["events"] == before.state_dict()["events"]
    other_machine()
    assert_goes_on_with_new_points(after, 3)


@pytest.mark.parametrize("algorithm", ["soo", "bamsoo", "bo"])
def test_a_logged_run_resumed_with_other_numerics_goes_on_from_the_logged_state(tmp_path, algorithm, other_machine):
    """Through the log: the restored optimizer holds the logged trials and, for tree methods, the logged tree
    (/tree as of the last result); the run then finishes its budget without re-running a finished trial."""
    config = {**CONFIG, "algorithm": algorithm, "budget": 24}
    before = new_optimizer(config)
    with new_log(tmp_path / "run.h5", config) as log:
        log.record_result(baseline_result())
        drive(log, before, 24, workers=3, stop_after=14)
    logged = read(tmp_path / "run.h5")
    state = load_resume(tmp_path / "run.h5")
    other_machine()
    after = new_optimizer(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReplayDivergence)
        redo = state.restore(after)
    divergences = [w for w in caught if w.category is ReplayDivergence]
    assert len(divergences) == (algorithm != "bo")  # GP-BO recomputes nothing a GP decides
    assert after.state_dict()["events"] == before.state_dict()["events"]
    if algorithm != "bo":
        assert_same_trees(before, after)
        then = new_optimizer(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReplayDivergence)
            then.replay(state.events[: max(i for i, e in enumerate(state.events) if e["op"] != "ask") + 1])
        for name, column in then.tree_table().items():
            np.testing.assert_array_equal(logged.tree[name], column, err_msg=name)
    with RunLog.reopen(tmp_path / "run.h5", n_workers=3) as log:
        finished = drive(log, after, 24, workers=3, redo=redo)
    assert not set(finished) & set(logged.trials["trial_id"].tolist())
    assert sorted(read(tmp_path / "run.h5").trials["trial_id"]) == list(range(25))  # each once, baseline too


PERTURB = f"""
import pbo.surrogate
predict = pbo.surrogate.GPSurrogate.predict
def nudged(self, u, pending=None):
    mean, sd = predict(self, u, pending)
    return mean * (1 + {NUDGE}) + {NUDGE}, sd
pbo.surrogate.GPSurrogate.predict = nudged
"""


def test_the_cli_resumes_a_bamsoo_log_on_other_numerics_with_one_warning_line(tmp_path):
    """`--resume` on a machine whose GP differs: a warning naming the first divergence, then the run goes on
    from the logged tree and finishes its larger budget; the logged trials are kept and none is run again."""
    path = str(tmp_path / "run.h5")
    args = ["--algorithm", "bamsoo", "--objective", "branin", "--seed", "1", "--simulate", "3",
            "--cost", "{kind: lognormal, mean: 10, sigma: 0.5}"]
    first = run_pbo([*args, "--budget", "16", "--out", path])
    assert first.returncode == 0, first.stderr
    tree = read(path).tree
    (tmp_path / "perturb").mkdir()
    (tmp_path / "perturb" / "sitecustomize.py").write_text(PERTURB)  # imported by every python that starts
    env = {**environment(), "PYTHONPATH": f"{tmp_path / 'perturb'}{os.pathsep}{environment()['PYTHONPATH']}"}
    resumed = subprocess.run(command(["--resume", path, "--budget", "24"]), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    warned = [line for line in resumed.stderr.splitlines() if line.startswith("pbo: warning:")]
    assert len(warned) == 1 and f"resuming {path}: bamsoo: replay diverged from the record at trial" in warned[0]
    assert "continuing from the record" in warned[0]
    assert sorted(read(path).trials["trial_id"].tolist()[16:]) == list(range(17, 25))  # the 16 logged ones kept
    assert sorted(read(path).trials["trial_id"]) == list(range(1, 25))
    after = read(path).tree
    n = len(tree["node_id"])
    for name in ("parent", "depth", "lower", "upper", "center"):  # the logged nodes, grown from, not rebuilt
        np.testing.assert_array_equal(after[name][:n], tree[name], err_msg=name)
    settled = tree["state"] != "pending"
    np.testing.assert_array_equal(after["value"][:n][settled], tree["value"][settled])
    np.testing.assert_array_equal(after["state"][:n][settled], tree["state"][settled])
