"""The `llm_landscape` objective: the LLM case's properties, its noise, its resolution by name and the CLI."""

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from pbo.log import read
from pbo.objectives import ObjectiveError, resolve_objective
from pbo.objectives.landscape import SPACE, LLMLandscape, ReportingLandscape
from pbo.space import Space
from pbo.worker import takes_report
from pbo_process import run_pbo

ROOT = Path(__file__).resolve().parents[1]
LAND = LLMLandscape()
BEST = LAND.best_point


def sample(n: int, seed: int = 0) -> list[dict]:
    space, rng = Space.from_dict(SPACE), np.random.default_rng(seed)
    return [space.from_unit(u) for u in rng.random((n, space.dim))]


@pytest.mark.parametrize("rank,alpha", [(2, 64), (64, 1), (16, 16), (8, 16), (2, 1)])
@pytest.mark.parametrize("lr", [1e-10, 1e-9, 9e-9])  # lr * 32 below 10^-6.5
def test_tiny_learning_rates_score_the_base_model_at_any_alpha_over_rank(rank, alpha, lr):
    for dropout, wd in [(0.0, 1e-5), (0.5, 1e-1)]:
        params = {"lora_rank": rank, "lora_alpha": alpha, "lora_dropout": dropout, "learning_rate": lr,
                  "weight_decay": wd}
        assert LAND.true_value(params) == LAND.base and LAND.region(params) == "dead"


def test_most_of_the_space_is_dead_or_collapsed():
    regions = [LAND.region(p) for p in sample(5000)]
    assert regions.count("dead") > 0.4 * len(regions) and regions.count("collapsed") > 0.2 * len(regions)


@pytest.mark.parametrize("rank,alpha", [(2, 3), (8, 10), (16, 20), (2, 64), (50, 63)])
@pytest.mark.parametrize("lr", [1e-5, 1e-4, 3e-4, 1e-2])
def test_alpha_over_rank_from_1_25_collapses_to_chance_once_it_trains(rank, alpha, lr):
    assert alpha / rank >= 1.25
    params = {**BEST, "lora_rank": rank, "lora_alpha": alpha, "learning_rate": lr}
    assert LAND.true_value(params) == LAND.chance and LAND.region(params) == "collapsed"


@pytest.mark.parametrize("rank,alpha", [(64, 1), (16, 16), (8, 9)])
def test_too_large_an_effective_step_falls_to_chance(rank, alpha):
    lr = 10 ** (LAND.peak + 0.9) * rank / alpha  # 0.9 decades above the best effective step
    params = {**BEST, "lora_rank": rank, "lora_alpha": alpha, "learning_rate": lr}
    assert LAND.true_value(params) == LAND.chance


def test_alpha_over_rank_multiplies_the_learning_rate():
    grid = np.logspace(-6, -1, 1001)

    def best_lr(rank: int, alpha: int) -> float:
        return float(grid[np.argmax([LAND.true_value({**BEST, "lora_rank": rank, "lora_alpha": alpha,
                                                      "learning_rate": lr}) for lr in grid])])

    assert best_lr(64, 16) / best_lr(16, 16) == pytest.approx(4, rel=0.03)
    assert best_lr(16, 2) / best_lr(16, 16) == pytest.approx(8, rel=0.03)


def test_the_documented_optimum_is_the_maximum_over_a_dense_sample():
    objective = resolve_objective("llm_landscape")
    assert objective.optimum == LAND.true_value(BEST) == LAND.best == 0.479
    rng = np.random.default_rng(1)
    near = [{**BEST, "lora_rank": int(rng.integers(12, 21)), "lora_alpha": int(rng.integers(12, 21)),
             "lora_dropout": float(rng.uniform(0, 0.2)), "learning_rate": 10 ** rng.uniform(-4, -3),
             "weight_decay": 10 ** rng.uniform(-4, -2)} for _ in range(5000)]
    values = [LAND.true_value(p) for p in sample(30000) + near]
    assert max(values) <= objective.optimum and max(values) > objective.optimum - LAND.stderr


def test_dropout_and_weight_decay_cost_at_most_about_one_stderr_each():
    for name, values in [("lora_dropout", [0.0, 0.3, 0.5]), ("weight_decay", [1e-5, 1e-2, 1e-1])]:
        losses = [LAND.best - LAND.true_value({**BEST, name: v}) for v in values]
        assert all(0 < loss <= 1.1 * LAND.stderr for loss in losses), (name, losses)


@pytest.mark.parametrize("noise", ["binomial", "gaussian"])
def test_observations_have_the_stated_stderr(noise):
    draws = [LLMLandscape(items=1000, seed=seed, noise=noise)(BEST) for seed in range(2000)]
    accs = np.array([d["acc"] for d in draws])
    stderr = math.sqrt(0.479 * 0.521 / 1000)
    assert accs.mean() == pytest.approx(0.479, abs=3 * stderr / math.sqrt(len(accs)))
    assert accs.std() == pytest.approx(stderr, rel=0.08)
    assert np.mean([d["acc_stderr"] for d in draws]) == pytest.approx(stderr, rel=0.02)


def test_observations_are_reproducible_for_a_seed_and_point():
    point = sample(1)[0]
    shuffled = dict(reversed(list(point.items())))  # the space's order does not change the draw
    assert LLMLandscape(seed=4)(point) == LLMLandscape(seed=4)(shuffled)
    assert LLMLandscape(seed=4)(point) != LLMLandscape(seed=5)(point)
    assert LLMLandscape(noise="none")(point) == {"acc": LAND.true_value(point), "acc_stderr": 0.0}


def test_the_objective_resolves_by_name_with_its_space():
    objective = resolve_objective("llm_landscape", {"items": 1000, "seed": 2, "noise": "gaussian"})
    assert objective.key == "acc" and not objective.minimize and objective.space == SPACE
    objective.check(Space.from_dict(SPACE))
    assert set(objective.function(BEST)) == {"acc", "acc_stderr"}


@pytest.mark.parametrize("options,message", [
    ({"itmes": 10}, "has no option(s) ['itmes']"),
    ({"noise": "loud"}, "noise must be one of binomial, gaussian, none"),
    ({"items": 1}, "items must be an integer >= 2"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ObjectiveError, match=re.escape(message)):
        resolve_objective("llm_landscape", options)


def test_a_space_without_the_five_variables_is_rejected():
    objective = resolve_objective("llm_landscape")
    with pytest.raises(ObjectiveError, match="must have exactly the variables"):
        objective.check(Space.from_dict({"lora_rank": SPACE["lora_rank"]}))


def test_the_cli_runs_a_few_trials_and_logs_acc_with_its_stderr(tmp_path):
    out = tmp_path / "land.h5"
    proc = run_pbo(["--objective", "llm_landscape", "--algorithm", "random", "--budget", "5", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    logged = read(out)
    assert logged.n_trials == 6 and list(logged.trials["trial_id"]) == [0, 1, 2, 3, 4, 5]  # baseline first
    assert logged.key == "acc" and logged.optimum == 0.479
    assert np.all((logged.trials["acc_stderr"] > 0.004) & (logged.trials["acc_stderr"] < 0.006))


# ---- learning curves (eval_at) ------------------------------------------------------------------------------

CURVES = {"eval_at": [0.125, 0.25, 0.5], "steps": 800, "noise": "none"}


def reports_of(objective, params):
    seen = []
    final = objective.function(params, report=lambda step, value, fidelity, **m: seen.append((step, value)) or True)
    return seen, final["acc"]


def test_without_eval_at_the_landscape_takes_no_report_and_is_unchanged():
    objective = resolve_objective("llm_landscape", {"items": 1000})
    assert not takes_report(objective.function) and objective.function(BEST) == LLMLandscape(items=1000)(BEST)


def test_a_trained_configuration_reports_at_the_eval_at_steps_and_climbs_to_its_final_accuracy():
    seen, final = reports_of(resolve_objective("llm_landscape", CURVES), BEST)
    assert [step for step, _ in seen] == [100, 200, 400]
    values = [value for _, value in seen]
    assert LAND.base < values[0] < values[1] < values[2] < final == LAND.best


def test_a_dead_configuration_reports_the_base_model_and_a_collapsing_one_chance_from_its_first_report():
    objective = resolve_objective("llm_landscape", CURVES)
    dead, _ = reports_of(objective, {**BEST, "learning_rate": 1e-9})
    collapsing, _ = reports_of(objective, {**BEST, "lora_alpha": 32})
    assert [v for _, v in dead] == [LAND.base] * 3 and [v for _, v in collapsing] == [LAND.chance] * 3


def test_a_trial_that_runs_to_its_end_returns_what_it_returns_without_reports():
    params = sample(1, seed=4)[0]
    with_curves = resolve_objective("llm_landscape", {"eval_at": [0.5], "seed": 3})
    assert with_curves.function(params, report=lambda *a, **k: True) == LLMLandscape(seed=3)(params)


def test_a_stop_answer_ends_the_trial_at_that_report():
    objective = resolve_objective("llm_landscape", CURVES)
    seen = []
    out = objective.function(BEST, report=lambda step, value, fidelity, **m: seen.append(value) or False)
    assert len(seen) == 1 and out["acc"] == seen[0]


@pytest.mark.parametrize("options,message", [
    ({"eval_at": [0.5, 0.25]}, "eval_at must be increasing fractions"),
    ({"eval_at": [0.5], "steps": 0}, "steps must be an integer >= 1"),
])
def test_bad_curve_options_are_one_line_errors(options, message):
    with pytest.raises(ObjectiveError, match=message):
        resolve_objective("llm_landscape", options)


# ---- jobs/bench_llm_landscape.py -------------------------------------------------------------------------

def bench():
    pytest.importorskip("optuna")
    sys.path.insert(0, str(ROOT))
    from jobs import bench_llm_landscape

    return bench_llm_landscape


def test_run_metrics_separate_the_best_true_value_from_a_lucky_draw():
    b = bench()
    run = b.Run(b.RunKey("x", "random", "{}", 0, 1, "default"), true=[0.25, 0.476, 0.479], observed=[0.3, 0.49, 0.47],
                regions="ctt", point_ids=[], seconds=0.0)
    metrics = b.run_metrics(run, optimum=0.479, stderr=0.005)
    assert metrics == {"best": 0.479, "reported": 0.476, "collapsed": 1, "dead": 0, "hit": 2.0}


def test_the_benchmark_runs_a_tiny_configuration_and_writes_its_json(tmp_path, capsys):
    b, out = bench(), tmp_path / "land.json"
    assert b.main(["--algorithms", "soo,random,direct,tpe=optuna_tpe:{n_startup_trials: 4}", "--seeds", "1",
                   "--budget", "8", "--workers", "1,2", "--orders", "default,reversed", "--jobs", "1",
                   "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].startswith("python jobs/bench_llm_landscape.py --algorithms")
    assert len(data["runs"]) == (4 + 3) * 2 and data["left_out"] == ["direct: sequential only, left out at W=2"]
    assert all(r["error"] is None and len(r["true"]) == len(r["regions"]) == 8 for r in data["runs"])
    shared = {(r["label"], r["workers"]): r["shared"] for r in data["orders"]}
    assert shared["soo", 1][0] == shared["soo", 2][0] == 8  # SOO is order-free: every point shared
    text = capsys.readouterr().out
    assert "| tpe | 2 |" in text and "shared points" in text


@pytest.mark.parametrize("args,message", [
    (["--orders", "default,sideways"], "order 'sideways' is neither default, lr_first, reversed"),
    (["--orders", "learning_rate/lora_rank"], "nor a '/'-separated permutation"),
    (["--algorithms", "ngopt"], "ngopt: ngopt is not run on the landscape"),
    (["--algorithms", "s=soo:{hmax: 3}"], "s: algorithm 'soo' has no option(s) ['hmax']"),
    (["--workers", "0"], "expected integers >= 1"),
])
def test_bad_benchmark_arguments_are_a_one_line_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench().parse_args(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]
