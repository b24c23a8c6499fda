"""jobs/bench_pruning.py: pruners on a simulated reference study, on a budget small enough for a test."""

import json

import pytest


@pytest.fixture(scope="module")
def bench():
    from jobs import bench_pruning

    return bench_pruning


@pytest.fixture(scope="module")
def result(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "pruning.json"
    assert bench.main(["--algorithms", "random", "--seeds", "1", "--budget", "16", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_it_writes_one_row_per_pruner_with_the_command(result):
    assert result["command"] == f"python jobs/bench_pruning.py --algorithms random --seeds 1 --budget 16 --json " \
                                f"{result['command'].split('--json ')[1]}"
    assert [(r["algorithm"], r["pruner"]) for r in result["rows"]] == [("random", p) for p in ("none", "asha", "median")]


def test_pruning_spends_less_training_and_stops_the_doomed_trials_by_a_quarter(result):
    rows = {r["pruner"]: r for r in result["rows"]}
    assert rows["none"]["training"] == 16 and rows["none"]["doomed_stopped"] == 0
    assert rows["asha"]["training"] < 0.6 * 16 and rows["asha"]["gpu_hours"] < rows["none"]["gpu_hours"]
    assert rows["asha"]["doomed"] > 0 and rows["asha"]["doomed_stopped"] >= 0.8


def test_the_unpruned_run_reaches_its_own_best(result):
    none = result["rows"][0]
    assert none["reached"] == 1 and 0 < none["gpu_hours_to_best"] <= none["gpu_hours"]


def test_pruners_must_start_with_none(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--pruners", "asha,none"])
    assert "give none first" in capsys.readouterr().err


def test_a_reference_algorithm_sets_the_best_every_other_one_is_timed_to(bench, tmp_path):
    out = tmp_path / "reference.json"
    assert bench.main(["--algorithms", "random,lhs", "--reference", "lhs", "--pruners", "none", "--seeds", "1",
                       "--budget", "8", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    runs = {r["algorithm"]: r for r in result["runs"]}
    assert result["settings"]["reference"] == "lhs" and runs["lhs"]["gpu_hours_to_best"] is not None
    assert (runs["random"]["gpu_hours_to_best"] is not None) == (runs["random"]["best"] >= runs["lhs"]["best"])


def test_an_unknown_reference_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--algorithms", "random", "--reference", "bamsoo"])
    assert "--reference: 'bamsoo' is not one of --algorithms (random)" in capsys.readouterr().err


def test_the_tiny_study_reuses_unpruned_runs_only_from_the_same_study(tmp_path, capsys):
    from jobs import bench_pruning_tiny as tiny

    settings = {"algorithm": "bamsoo", "budget": 30, "max_steps": 150, "eval_at": [0.125, 0.25, 0.5],
                "eval_limit": 60, "workers": 2}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"settings": {**settings, "budget": 20}, "runs": []}))
    with pytest.raises(SystemExit, match="a different study \\(budget\\)"):
        tiny.main(["--pruners", "none,asha", "--workers", "2", "--unpruned-from", str(earlier)])
    earlier.write_text(json.dumps({"settings": settings, "runs": [{"pruner": "none", "seed": 0, "finals": {}}]}))
    with pytest.raises(SystemExit):
        tiny.main(["--pruners", "none,asha", "--workers", "2", "--seeds", "2", "--unpruned-from", str(earlier)])
    assert "has no unpruned run for seed(s) [1]" in capsys.readouterr().err
