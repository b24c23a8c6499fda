"""The simulated cluster: the real scheduler and optimizer on a virtual clock."""

import pytest

from pbo.backends.simulated import SimulatedBackend
from pbo.objectives import resolve_objective
from pbo.objectives.cost import CostModel
from pbo.optimizers import make_optimizer
from pbo.scheduler import run_study
from pbo.space import Space


def simulate(workers, budget, seed=0, cost=None, algorithm="random", timeout=None):
    objective = resolve_objective("hartmann6")
    optimizer = make_optimizer(algorithm, Space.from_dict(objective.space), seed=seed, budget=budget)
    cost = cost or CostModel("lognormal", mean=60.0, sigma=0.5, seed=seed)
    backend = SimulatedBackend(objective, workers, cost, timeout=timeout)
    return run_study(optimizer, backend, budget=budget)


def fingerprint(summary):
    return [(r.trial_id, r.worker, r.t_start, r.t_end, r.value) for r in summary.results]


def test_the_same_seed_gives_the_same_run():
    assert fingerprint(simulate(16, 64, seed=3)) == fingerprint(simulate(16, 64, seed=3))


def test_another_seed_gives_another_run():
    assert fingerprint(simulate(16, 64, seed=3)) != fingerprint(simulate(16, 64, seed=4))


def test_one_worker_with_a_fixed_cost_is_busy_all_the_time():
    summary = simulate(1, 10, cost=CostModel("fixed", mean=5.0))
    assert summary.makespan == pytest.approx(50.0) and summary.utilization == pytest.approx(1.0)


def test_workers_run_in_parallel_on_the_virtual_clock():
    summary = simulate(4, 8, cost=CostModel("fixed", mean=5.0))
    assert summary.makespan == pytest.approx(10.0)
    assert {r.worker for r in summary.results} == {1, 2, 3, 4}


def test_a_thousand_workers_and_four_thousand_trials_are_fast():
    summary = simulate(1024, 4096)
    assert summary.evaluations == 4096 and len({r.worker for r in summary.results}) == 1024


def test_the_cost_of_a_candidate_depends_only_on_seed_and_parameters():
    model = CostModel("lognormal", mean=10.0, sigma=0.5, seed=1)
    draws = [model.duration({"x": i / 1000}) for i in range(2000)]
    assert model.duration({"x": 0.5}) == model.duration({"x": 0.5})
    assert sum(draws) / len(draws) == pytest.approx(10.0, rel=0.05)
    assert CostModel("lognormal", mean=10.0, sigma=0.5, seed=2).duration({"x": 0.5}) != model.duration({"x": 0.5})


def test_master_time_adds_the_masters_real_compute_to_the_virtual_clock():
    import time

    from pbo.optimizers.random import RandomSearch

    class SlowAsk(RandomSearch):
        def _ask(self):
            time.sleep(0.02)
            return super()._ask()

    objective = resolve_objective("hartmann6")
    space = Space.from_dict(objective.space)
    fixed = CostModel("fixed", mean=1.0)
    plain = run_study(SlowAsk(space), SimulatedBackend(objective, 1, fixed), budget=5)
    charged = run_study(SlowAsk(space), SimulatedBackend(objective, 1, fixed, master_time=True), budget=5)
    assert plain.makespan == pytest.approx(5.0)
    assert 5.0 + 5 * 0.02 <= charged.makespan < 5.0 + 5 * 0.2


@pytest.mark.parametrize("master_time", [False, True])
def test_asks_are_told_a_time_limit_only_when_the_masters_time_is_charged_to_the_clock(master_time):
    objective = resolve_objective("hartmann6")
    optimizer = make_optimizer("random", Space.from_dict(objective.space), budget=6)
    run_study(optimizer, SimulatedBackend(objective, 2, CostModel("fixed", mean=8.0), master_time=master_time),
              budget=6)
    assert optimizer.time_per_ask == (pytest.approx(0.5 * 8.0 / 2) if master_time else None)
