"""Post-hoc analysis: figures, tables and the report, on runs built from plain arrays and on real logs."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from analysis import (Run, comparison_markdown, load_run, metrics_markdown, plot_convergence, plot_depths,
                      plot_effects, plot_parallel_coordinates, plot_partition, plot_timeline, state_counts,
                      write_report)
from analysis.convergence import curve
from analysis.document import problem
from analysis.partition import has_tree
from analysis.pruning import compute_by_status, compute_markdown, plot_compute, plot_learning_curves
from analysis.scaling import plot_scaling, scaling_markdown, scaling_points
from analysis.timeline import busy_workers
from pbo.log.writer import RunLog
from pbo.objectives.synthetic import FUNCTIONS
from pbo.space import Space
from pbo_process import ROOT, run_pbo

BRANIN = FUNCTIONS["branin"]


def trisection_tree(function, expansions):
    """A SOO-like tree: repeatedly split the best leaf in 3 along its widest side; middle child inherits."""
    lower, upper = [np.zeros(2)], [np.ones(2)]
    value, depth, parent, state, expanded = [function.at_unit(np.full(2, 0.5))], [0], [-1], ["evaluated"], [False]
    for _ in range(expansions):
        leaves = [i for i in range(len(value)) if not expanded[i]]
        node = max(leaves, key=lambda i: value[i])
        expanded[node] = True
        axis = int(np.argmax(upper[node] - lower[node]))
        width = (upper[node][axis] - lower[node][axis]) / 3
        for k in range(3):
            lo, hi = lower[node].copy(), upper[node].copy()
            lo[axis] += k * width
            hi[axis] = lo[axis] + width
            lower.append(lo)
            upper.append(hi)
            value.append(value[node] if k == 1 else function.at_unit((lo + hi) / 2))
            state.append("inherited" if k == 1 else ("approximated" if len(value) % 5 == 0 else "evaluated"))
            depth.append(depth[node] + 1)
            parent.append(node)
            expanded.append(False)
    lower, upper = np.array(lower), np.array(upper)
    return {"node_id": np.arange(len(value)), "parent": np.array(parent), "depth": np.array(depth),
            "lower": lower, "upper": upper, "center": (lower + upper) / 2, "value": np.array(value),
            "state": np.array(state), "expanded": np.array(expanded)}


def make_run(algorithm="random", seed=0, n=30, workers=3, fail=(), tree=False, metrics=False, name=None):
    """A run of `algorithm` on branin with `workers` workers and trials taking 1-2 s each."""
    rng = np.random.default_rng(seed)
    space = Space.from_dict(BRANIN.space())
    u = rng.random((n, 2))
    value = np.array([BRANIN.at_unit(p) for p in u])
    free = np.zeros(workers)
    worker, start, end = np.zeros(n, int), np.zeros(n), np.zeros(n)
    for i in range(n):
        worker[i] = int(np.argmin(free))
        start[i] = free[worker[i]] + 0.01
        end[i] = free[worker[i]] = start[i] + 1 + rng.random()
    order = np.argsort(end)
    trials = {"u": u, "x": u.copy(), "value": value, "worker": worker, "t_submit": start - 0.01, "t_start": start,
              "t_end": end}
    trials = {k: v[order] for k, v in trials.items()}  # rows in the order trials finished, as in a log
    trials["trial_id"] = np.arange(1, n + 1)
    trials["status"] = np.array(["failed" if i in fail else "ok" for i in range(n)])
    trials["error"] = np.array(["Traceback ...\nValueError: bad parameters" if i in fail else "" for i in range(n)])
    trials["value"][list(fail)] = np.nan
    baseline, names = None, []
    if metrics:
        names = ["task/acc", "task/acc_stderr", "train_seconds"]
        trials["task/acc"] = 0.25 + 0.5 * rng.random(n)
        trials["task/acc_stderr"] = np.full(n, 0.01)
        trials["train_seconds"] = np.ones(n)
        baseline = {"task/acc": 0.25, "task/acc_stderr": 0.012}
    return Run(name=name or f"{algorithm}-s{seed}", algorithm=algorithm, space=space, trials=trials, seed=seed,
               objective="branin", n_workers=workers, optimum=BRANIN.optimum, metrics=names, baseline=baseline,
               tree=trisection_tree(BRANIN, 8) if tree else None)


def with_reports(run, pruned=(0, 1, 2)):
    """`run` whose every trial reported at fidelities 0.25 and 0.5, the rows in `pruned` stopped at 0.25."""
    ids, fidelity, value = [], [], []
    for row, trial_id in enumerate(run.trials["trial_id"].tolist()):
        for f in (0.25,) if row in pruned else (0.25, 0.5):
            ids.append(trial_id)
            fidelity.append(f)
            value.append(run.trials["value"][row] - (1 - f))
    run.reports = {"trial_id": np.array(ids), "step": 4 * np.array(fidelity), "fidelity": np.array(fidelity),
                   "value": np.array(value), "t": np.zeros(len(ids))}
    run.trials["status"] = run.trials["status"].astype("U8")
    run.trials["status"][list(pruned)] = "pruned"
    return run


def saved(fig, tmp_path, name="fig.png"):
    path = tmp_path / name
    fig.savefig(path)
    return path.stat().st_size


def test_best_so_far_ignores_failures_and_never_decreases():
    run = make_run(fail=(0, 5))
    best = run.best_so_far()
    assert np.isnan(best[0]) and np.all(np.diff(best[1:]) >= 0)
    assert best[-1] == np.nanmax(run.trials["value"])


def test_minimized_runs_keep_the_lowest_value():
    run = make_run()
    run.minimize = True
    assert run.best_so_far()[-1] == np.min(run.trials["value"])
    assert run.trials["value"][run.best_index()] == np.min(run.trials["value"])


def test_utilization_is_busy_time_over_workers_times_makespan():
    run = make_run(workers=3)
    spans = run.trials["t_end"] - run.trials["t_start"]
    assert run.utilization() == pytest.approx(spans.sum() / (3 * run.trials["t_end"].max()))
    assert 0.9 < run.utilization() <= 1.0


def test_the_baseline_trial_counts_as_busy_time_and_gets_its_bar(tmp_path):
    run = make_run(workers=2, metrics=True)
    busy = run.busy_seconds()
    run.baseline_span = (0, run.makespan(), run.makespan() + 5.0)
    assert run.busy_seconds() == pytest.approx(busy + 5.0)
    assert len(plot_timeline(run).axes[0].patches) == len(run) + 1


def test_gpu_hours_count_busy_time_of_gpu_workers_only():
    run = make_run(workers=2)
    run.trials["device"] = np.array(["cpu@n1"] * len(run))
    assert run.gpu_hours() == 0.0
    run.trials["device"] = np.array(["gpu:0,1@n1"] * len(run))
    run.gpus_per_worker = 2
    assert run.gpu_hours() == pytest.approx(2 * run.busy_seconds() / 3600)


def test_busy_workers_never_exceeds_the_worker_count():
    times, busy = busy_workers(make_run(workers=4))
    assert busy.max() == 4 and busy.min() == 0 and busy[-1] == 0


def test_regret_curve_on_a_time_grid_holds_the_best_value_between_results():
    run = make_run()
    grid = np.array([0.0, run.trials["t_end"][0], run.trials["t_end"][-1] + 10])
    regret = curve(run, "time", grid, BRANIN.optimum)
    assert np.isnan(regret[0])
    assert regret[1] == pytest.approx(BRANIN.optimum - run.trials["value"][0])
    assert regret[2] == pytest.approx(BRANIN.optimum - np.nanmax(run.trials["value"]))


@pytest.mark.parametrize("x", ["evaluations", "time"])
def test_convergence_overlays_runs_with_a_median_per_algorithm(x, tmp_path):
    runs = [make_run("soo", s) for s in range(3)] + [make_run("bo", 0, n=12)]
    fig = plot_convergence(runs, x=x)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "soo (median of 3)" in labels and "bo (bo-s0)" in labels
    assert fig.axes[0].get_yscale() == "log"  # known optimum: regret
    assert saved(fig, tmp_path) > 5000


def test_convergence_without_a_known_optimum_plots_values():
    run = make_run()
    run.optimum = None
    assert plot_convergence([run]).axes[0].get_yscale() == "linear"


def test_timeline_draws_one_bar_per_trial(tmp_path):
    run = make_run(fail=(3,), workers=4)
    fig = plot_timeline(run)
    assert len(fig.axes[0].patches) == len(run)
    assert saved(fig, tmp_path) > 5000


def test_effects_and_parallel_coordinates_draw_every_trial(tmp_path):
    run = make_run(fail=(2,))
    assert saved(plot_effects(run), tmp_path, "a.png") > 5000
    fig = plot_parallel_coordinates(run)
    assert len(fig.axes[0].get_lines()) == len(run)
    assert saved(fig, tmp_path, "b.png") > 5000


def test_partition_view_counts_nodes_by_state(tmp_path):
    run = make_run("soo", tree=True)
    counts = state_counts(run)
    assert sum(counts.values()) == len(run.tree["node_id"]) == 25
    assert counts["inherited"] == 8 and counts["approximated"] > 0
    assert saved(plot_partition(run), tmp_path, "p.png") > 5000
    assert saved(plot_depths(run), tmp_path, "d.png") > 5000


def test_partition_view_of_a_run_without_tree_says_so():
    with pytest.raises(ValueError, match="no partition tree"):
        plot_partition(make_run("bo"))


def test_comparison_table_has_one_row_per_run_with_threshold_columns():
    runs = [make_run("soo", 0), make_run("bo", 1, fail=(0, 1))]
    table = comparison_markdown(runs)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| soo-s0 | soo | 0 | 30 | 0 |")
    assert lines[3].split(" | ")[4] == "2"  # failed
    assert "x1=" in lines[2] and "–" not in lines[2]  # both reach the default threshold


def test_task_metrics_sit_beside_the_baseline():
    table = metrics_markdown(make_run(metrics=True))
    assert "task/acc" in table and "0.2500 ± 0.0120" in table and "train_seconds" not in table


def test_empty_and_failed_runs_are_named_in_one_line():
    empty = make_run(n=0)
    failed = make_run(n=3, fail=(0, 1, 2))
    assert problem(empty).endswith("no finished trial yet")
    assert "all 3 trials failed" in problem(failed) and "ValueError: bad parameters" in problem(failed)
    assert problem(make_run()) is None


def test_report_embeds_every_figure_and_names_every_run(tmp_path):
    runs = [make_run("soo", 0, tree=True), make_run("soo", 1, tree=True), make_run("bo", 0, metrics=True),
            make_run("random", 0, n=4, fail=(0, 1, 2, 3), name="all-failed"), make_run("lhs", 0, n=0, name="empty")]
    report = write_report(runs, tmp_path / "report").read_text()
    for run in runs:
        assert f"## {run.name}" in report
    images = [line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert "convergence-time.png" in images and "soo-s0-partition.png" in images and "bo-s0-effects.png" in images
    for image in images:
        assert (tmp_path / "report" / image).stat().st_size > 5000
    assert "ValueError: bad parameters" in report and "## Task metrics" in report


def test_learning_curves_draw_one_line_per_reporting_trial_coloured_by_final_status(tmp_path):
    run = with_reports(make_run(n=10))
    fig = plot_learning_curves(run)
    lines = [line for line in fig.axes[0].get_lines() if line.get_label() != "untuned baseline"]
    assert len(lines) == 10
    colors = {line.get_color() for line in lines}
    assert colors == {"#4c9f70", "#7b6fb0"}  # ok, pruned
    assert "3 pruned" in fig.axes[0].get_title() and saved(fig, tmp_path) > 5000


def test_a_completed_trials_curve_ends_at_its_final_value_at_fidelity_one():
    run = with_reports(make_run(n=4), pruned=())
    line = plot_learning_curves(run).axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [0.25, 0.5, 1.0] and line.get_ydata()[-1] == run.trials["value"][0]


def test_compute_by_status_splits_worker_hours_and_the_fraction_done():
    run = with_reports(make_run(n=10))
    parts = compute_by_status(run)
    span = (run.trials["t_end"] - run.trials["t_start"]) / 3600
    assert parts["pruned"]["hours"] == pytest.approx(span[:3].sum()) and parts["ok"]["trials"] == 7
    assert (parts["pruned"]["fidelity"], parts["ok"]["fidelity"]) == (0.25, 1.0)
    assert "| pruned | 3 |" in compute_markdown(run) and "worker-hours" in compute_markdown(run)


def test_compute_figure_stacks_every_status(tmp_path):
    fig = plot_compute(with_reports(make_run(n=10, fail=(5,))))
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["ok", "pruned", "failed"]
    assert saved(fig, tmp_path) > 5000


def test_report_draws_curves_and_compute_only_for_runs_with_reports(tmp_path):
    report = write_report([with_reports(make_run("soo")), make_run("bo")], tmp_path / "report").read_text()
    assert "soo-s0-curves.png" in report and "soo-s0-compute.png" in report and "| pruned | 3 |" in report
    assert "bo-s0-curves" not in report and "bo-s0-compute" not in report


def test_strong_scaling_speedup_is_relative_to_one_worker(tmp_path):
    runs = [make_run("random", 0, n=24, workers=w, name=f"random-W{w}") for w in (1, 2, 4)]
    points = scaling_points(runs, "strong")
    assert [p.workers for p in points] == [1, 2, 4]
    assert points[0].speedup == pytest.approx(1.0)
    assert points[2].speedup == pytest.approx(runs[0].makespan() / runs[2].makespan())
    assert 3.0 < points[2].speedup <= 4.0 and points[2].efficiency == pytest.approx(points[2].speedup / 4)
    assert "| random | 4 | 24 |" in scaling_markdown(points)
    assert saved(plot_scaling(runs, "strong"), tmp_path) > 5000


def test_weak_scaling_efficiency_is_time_ratio_with_budget_growing_with_w():
    runs = [make_run("lhs", 0, n=8 * w, workers=w) for w in (1, 4)]
    weak = scaling_points(runs, "weak")
    assert weak[1].efficiency == pytest.approx(runs[0].makespan() / runs[1].makespan())
    assert weak[1].speedup == pytest.approx(4 * weak[1].efficiency)


# ---- on real logs written by short synthetic runs of `python -m pbo.run` -------------------------------------

SIMULATED = ["--objective", "branin", "--simulate", "3", "--cost", "{kind: lognormal, mean: 60}", "--no-progress"]


def report(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "analysis.report", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """SOO, BaMSOO and GP-BO on the simulator, and LHS on 2 real local workers with an objective that raises
    for half of its parameters."""
    folder = tmp_path_factory.mktemp("logs")
    runs = {"soo": SIMULATED + ["--algorithm", "soo", "--budget", "20"],
            "bamsoo": SIMULATED + ["--algorithm", "bamsoo", "--budget", "15", "--seed", "1"],
            "bo": SIMULATED + ["--algorithm", "bo", "--budget", "8"]}
    faulty = folder / "faulty.yaml"
    faulty.write_text(yaml.safe_dump({
        "objective": "faulty:behave", "objective_options": {"key": "score"}, "algorithm": "lhs", "budget": 8,
        "workers": 2, "progress": False,
        "space": {"mode": {"type": "categorical", "choices": ["ok", "raise"]},
                  "x": {"type": "float", "low": 0.0, "high": 1.0}}}))
    runs["with-failures"] = ["--config", str(faulty)]
    runs["curve-asha"] = ["--objective", "curve", "--objective-options", "{steps: 9}", "--simulate", "3",
                          "--cost", "{kind: lognormal, mean: 60}", "--no-progress", "--algorithm", "random",
                          "--budget", "20", "--pruner", "asha", "--pruner-options", "{eta: 3, min_resource: 1}"]
    for name, args in runs.items():
        result = run_pbo([*args, "--out", str(folder / f"{name}.h5")], timeout=300)
        assert result.returncode == 0, result.stderr
    return folder


def test_logs_load_with_the_run_attributes(logs):
    soo = load_run(logs / "soo.h5")
    assert (soo.algorithm, soo.objective, soo.n_workers, len(soo)) == ("soo", "branin", 3, 20)
    assert soo.optimum == BRANIN.optimum and has_tree(soo) and soo.ok.all()
    bo = load_run(logs / "bo.h5")
    assert bo.algorithm == "bo" and len(bo) == 8 and not has_tree(bo)
    faulty = load_run(logs / "with-failures.h5")
    assert 0 < faulty.count("failed") < len(faulty) == 8
    assert "score" in faulty.metrics


def test_report_on_real_logs_writes_images_and_names_every_run(logs, tmp_path):
    paths = sorted(logs.glob("*.h5"))
    result = report(*map(str, paths), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    for path in paths:
        assert f"## {path.stem}" in text
    images = [line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert {"soo-partition.png", "bamsoo-depths.png", "bo-effects.png", "with-failures-timeline.png",
            "curve-asha-curves.png", "curve-asha-compute.png"} <= set(images)
    assert "soo-curves.png" not in images
    for image in images:
        assert (tmp_path / "report" / image).stat().st_size > 5000
    assert "planned failure" in text


def test_report_on_a_live_log_shows_the_trials_finished_so_far(tmp_path):
    log = tmp_path / "live.h5"
    run = subprocess.Popen([sys.executable, "-m", "pbo.run", "--objective", "branin", "--algorithm", "lhs",
                            "--budget", "6", "--cost", "{kind: fixed, mean: 1.0}", "--no-progress", "--out", str(log)],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and len(load_run(log)) >= 1) and time.monotonic() < deadline:
            time.sleep(0.2)
        result = report(str(log), "--out", str(tmp_path / "r"))
        assert result.returncode == 0, result.stderr
        listed = next(line for line in (tmp_path / "r" / "report.md").read_text().splitlines() if "**live**" in line)
        assert int(listed.split(" trials on ")[0].rsplit(" ", 1)[1]) < 6
    finally:
        assert run.wait(timeout=60) == 0
    assert len(load_run(log)) == 6


def test_a_file_that_is_not_a_pbo_log_stops_the_report_with_one_line(tmp_path):
    other = tmp_path / "notes.h5"
    other.write_text("not hdf5")
    result = report(str(other), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "notes.h5" in result.stderr
    assert not (tmp_path / "r").exists()


def test_an_empty_log_is_named_and_nothing_is_reported(tmp_path):
    space = Space.from_dict(BRANIN.space())
    RunLog.create(tmp_path / "empty.h5", config={"objective": "branin"}, space=space, algorithm="soo", seed=0,
                  n_workers=2).close()
    result = report(str(tmp_path / "empty.h5"), "--out", str(tmp_path / "r"))
    assert result.returncode == 1
    assert "empty.h5: the log holds no finished trial yet" in result.stderr


def test_a_log_with_only_failures_is_reported_with_its_error(tmp_path):
    config = tmp_path / "fail.yaml"
    config.write_text(yaml.safe_dump({
        "objective": "faulty:behave", "objective_options": {"key": "score"}, "algorithm": "random", "budget": 3,
        "progress": False, "space": {"mode": {"type": "categorical", "choices": ["raise"]},
                                     "x": {"type": "float", "low": 0.0, "high": 1.0}}}))
    assert run_pbo(["--config", str(config), "--out", str(tmp_path / "fail.h5")]).returncode == 1
    result = report(str(tmp_path / "fail.h5"), "--out", str(tmp_path / "r"))
    assert result.returncode == 0
    assert "all 3 trials failed or timed out (first error: ZeroDivisionError: planned failure" in result.stderr
    assert (tmp_path / "r" / "fail-timeline.png").stat().st_size > 5000
