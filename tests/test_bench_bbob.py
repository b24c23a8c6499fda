"""jobs/bench_bbob.py: the unit-cube mapping, the ECDF arithmetic, tiny real runs, --reuse and the asynchronous mode."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ioh")
pytest.importorskip("optuna")
pytest.importorskip("cma")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs import bench_bbob  # noqa: E402
from jobs.bbob.adapters import Spec, parse_specs  # noqa: E402
from jobs.bbob.report import ecdf, ecdf_area, format_paired, median_log_regret, paired  # noqa: E402
from jobs.bbob.suite import Job, Problem, Recorder, Run, run_async, run_job  # noqa: E402


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """In-process runs set torch to one thread, as the pool's workers do; the rest of the suite keeps its own."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def tiny_args(tmp_path, algorithms, *extra):
    """2 functions in 2-D, 10 evaluations each, in this process, no plot unless `extra` asks for one."""
    plot = ["--png", str(tmp_path / "b.png")] if "--png" in extra else ["--no-png"]
    return ["--dims", "2", "--functions", "1,15", "--instances", "1", "--budget-factor", "5", "--jobs", "1",
            "--algorithms", algorithms, "--json", str(tmp_path / "b.json"),
            *plot, *[e for e in extra if e != "--png"]]


def fake_run(improvements, evaluations, budget=None):
    job = Job(1, 2, 1, 0, "x", "random", "{}", budget or evaluations)
    return Run(job, evaluations, improvements, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("function", [1, 8, 15, 24])
@pytest.mark.parametrize("dim", [2, 5])
def test_the_unit_point_of_the_optimum_has_zero_regret(function, dim):
    problem = Problem(function, dim, instance=2)
    u = Problem.to_unit(problem.x_opt)
    assert np.all((u >= 0) & (u <= 1))
    assert problem(u) - problem.f_opt == pytest.approx(0.0, abs=1e-9)
    assert problem(np.full(dim, 0.5)) - problem.f_opt > 1e-3  # and the centre is not the optimum


def test_ecdf_counts_run_target_pairs_solved_by_each_evaluation():
    # Run a meets target 1 at evaluation 2 and 0.01 at evaluation 3; run b meets neither: 4 pairs.
    a = fake_run([[1, 10.0], [2, 0.5], [3, 0.005]], 3)
    b = fake_run([[1, 3.0], [2, 2.0]], 3)
    assert ecdf([a, b], [1, 2, 3], targets=(1.0, 0.01)).tolist() == [0.0, 0.25, 0.5]
    # Area over log10(evaluations) from 1 to 3: pair (a, 1) solved over [log 2, log 3], (a, 0.01) at log 3 only.
    assert ecdf_area([a, b], targets=(1.0, 0.01)) == pytest.approx((1 - math.log10(2) / math.log10(3)) / 4)
    # Median log10 regret after 2 evaluations: median of log10(0.5) and log10(2).
    assert median_log_regret([a, b], 2) == pytest.approx((math.log10(0.5) + math.log10(2.0)) / 2)


def labelled_run(label, function, final_regret, evaluations=20):
    job = Job(function, 2, 1, 0, label, "random", "{}", evaluations)
    return Run(job, evaluations, [[1, 100.0], [evaluations, final_regret]], 0.0, 0.0, 0.0)


def test_a_paired_comparison_counts_problems_ahead_even_and_behind_with_a_sign_test():
    # At 10 x D (20 evaluations in 2-D) the reference is ahead on f1-f3, even on f4 (0.05 decade) and on f5 (both
    # at the 1e-8 floor), behind on f6; f7 ran for the reference only.
    ref = [labelled_run("ref", f, r) for f, r in [(1, 1e-3), (2, 1e-3), (3, 1e-3), (4, 1e-3), (5, 1e-12), (6, 1.0),
                                                  (7, 1.0)]]
    peer = [labelled_run("peer", f, r) for f, r in [(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.12e-3), (5, 1e-9),
                                                    (6, 1e-3)]]
    (pairing,) = paired(ref + peer, "ref")
    assert (pairing.dim, pairing.other, pairing.n) == (2, "peer", 10)
    assert (pairing.ahead, pairing.even, pairing.behind) == (3, 2, 1)
    assert pairing.p == pytest.approx(0.625)  # 3 of 4 decided problems: 2 x (1 + 4) / 16
    assert "D=2 vs peer" in format_paired([pairing], "ref") and "3/  2/1" in format_paired([pairing], "ref")


def test_a_run_record_expands_to_the_best_so_far_curve():
    run = fake_run([[1, 5.0], [3, 1.0], [4, 1e-9]], 6)
    assert run.curve() == [5.0, 5.0, 1.0, 1e-9, 1e-9, 1e-9]
    assert (run.first_hit(2.0), run.first_hit(1e-8), run.first_hit(0.0)) == (3, 4, None)
    assert run.regret_at(2) == 5.0 and run.regret_at(100) == 1e-9


def test_a_tiny_run_writes_monotone_curves_of_budget_length_for_pbo_variants_and_peers(tmp_path, capsys):
    algorithms = "soo,soo_k5=soo:{k: 5},random,direct,optuna_tpe,cma"
    assert bench_bbob.main(tiny_args(tmp_path, algorithms, "--png")) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["complete"] and "--algorithms" in data["command"] and data["versions"]["ioh"] == "0.3.22"
    assert data["algorithms"]["soo_k5"] == {"name": "soo", "options": {"k": 5}}
    runs = [Run.from_dict(r) for r in data["runs"]]
    assert sorted({(r.job.label, r.job.function) for r in runs}) == sorted(
        (label, f) for label in ("soo", "soo_k5", "random", "direct", "optuna_tpe", "cma") for f in (1, 15))
    for run in runs:
        curve = run.curve()
        assert run.error is None and len(curve) == run.job.budget == 10, run.job
        assert all(later <= earlier for earlier, later in zip(curve, curve[1:]))
    k3 = next(r for r in runs if r.job.label == "soo" and r.job.function == 15).curve()
    k5 = next(r for r in runs if r.job.label == "soo_k5" and r.job.function == 15).curve()
    assert k3 != k5, "the option changed nothing: it did not reach make_optimizer"
    assert (tmp_path / "b.png").stat().st_size > 0
    out = capsys.readouterr()
    assert "D=2, all functions" in out.out and "soo_k5" in out.out
    assert "[12/12]" in out.err


def test_reuse_runs_only_the_jobs_the_earlier_file_lacks(tmp_path, monkeypatch):
    bench_bbob.main(tiny_args(tmp_path, "soo,random"))
    ran = []
    monkeypatch.setattr(bench_bbob, "run_job", lambda job: ran.append(job) or run_job(job))
    (tmp_path / "b.json").rename(tmp_path / "old.json")
    bench_bbob.main(tiny_args(tmp_path, "soo,random,lhs", "--reuse", str(tmp_path / "old.json")))
    assert sorted((j.label, j.function) for j in ran) == [("lhs", 1), ("lhs", 15)]
    assert len(json.loads((tmp_path / "b.json").read_text())["runs"]) == 6


def test_changed_options_under_the_same_label_are_not_reused(tmp_path, monkeypatch):
    bench_bbob.main(tiny_args(tmp_path, "v=soo:{k: 3}"))
    ran = []
    monkeypatch.setattr(bench_bbob, "run_job", lambda job: ran.append(job) or run_job(job))
    bench_bbob.main(tiny_args(tmp_path, "v=soo:{k: 5}", "--reuse", str(tmp_path / "b.json")))
    assert len(ran) == 2


class CountingAdapter:
    """Wraps an adapter and checks how many of its points are out at once."""

    def __init__(self, inner):
        self.inner, self.out, self.most, self.asked, self.told = inner, 0, 0, 0, 0

    def ask(self):
        point = self.inner.ask()
        if point is not None:
            self.asked += 1
            self.out += 1
            self.most = max(self.most, self.out)
        return point

    def tell(self, token, value):
        self.told += 1
        self.out -= 1
        self.inner.tell(token, value)


@pytest.mark.parametrize("algorithm", ["soo", "optuna_tpe", "cma"])
def test_async_mode_keeps_at_most_w_in_flight_and_spends_exactly_the_budget(algorithm):
    budget = 30
    adapter = CountingAdapter(Spec(algorithm, algorithm).build(dim=2, budget=budget, seed=0, workers=4))
    recorder = Recorder(Problem(3, 2, 1), budget)
    rng = np.random.default_rng(0)
    end, most = run_async(adapter, recorder, 4, lambda: float(rng.lognormal(-0.125, 0.5)))
    assert most == adapter.most == 4
    assert adapter.asked == adapter.told == recorder.evaluations == budget
    assert end > 0


def test_async_runs_are_labelled_by_w_and_leave_direct_out(tmp_path, capsys):
    bench_bbob.main(tiny_args(tmp_path, "random,direct", "--workers", "4"))
    out = capsys.readouterr().out
    assert "direct is sequential only" in out and "random W=4" in out
    runs = json.loads((tmp_path / "b.json").read_text())["runs"]
    assert {r["job"]["label"] for r in runs} == {"random"}
    assert all(r["max_in_flight"] == 4 and r["evaluations"] == 10 for r in runs)


def test_report_redraws_tables_from_a_json_without_running(tmp_path, monkeypatch, capsys):
    bench_bbob.main(tiny_args(tmp_path, "random"))
    capsys.readouterr()
    monkeypatch.setattr(bench_bbob, "run_job", lambda job: pytest.fail("--report ran a job"))
    assert bench_bbob.main(["--report", str(tmp_path / "b.json"), "--png", str(tmp_path / "r.png")]) == 0
    assert "D=2, all functions" in capsys.readouterr().out and (tmp_path / "r.png").exists()
    assert bench_bbob.main(["--report", str(tmp_path / "b.json"), "--no-png", "--versus", "random"]) == 0
    assert "paired with random: no problem" in capsys.readouterr().out


@pytest.mark.parametrize("algorithms, message", [
    ("soo,simplex", "unknown algorithm 'simplex'"),
    ("x=soo:{h_max: @}", "bad options"),
    ("x=soo:{hmax: 3}", "no option(s) ['hmax']"),
    ("soo:{h_max: 3}", "give the variant"),
    ("soo,soo", "duplicate algorithm label"),
])
def test_bad_algorithm_arguments_are_a_one_line_error(algorithms, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_bbob.parse_args(["--algorithms", algorithms])
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_deterministic_algorithm_runs_once_per_instance_and_ignores_its_seed():
    settings = bench_bbob.Settings(dims=[2], functions=[1], instances=[1, 2], seeds=3, budget_factor=5, workers=1,
                                   sigma=0.5)
    jobs = bench_bbob.make_jobs(settings, parse_specs("soo,random"))
    assert sorted((j.label, j.instance, j.seed) for j in jobs if j.label == "soo") == [("soo", 1, 0), ("soo", 2, 0)]
    assert len([j for j in jobs if j.label == "random"]) == 6
    same = [run_job(Job(15, 2, 1, seed, "soo", "soo", "{}", 20)).improvements for seed in (0, 1)]
    assert same[0] == same[1]


def test_nevergrad_metamodel_gets_size_one_arrays_as_floats_again():
    pytest.importorskip("nevergrad")
    from nevergrad.optimization import metamodel

    from jobs.bbob.adapters import NevergradAdapter

    NevergradAdapter(dim=2, budget=10, seed=0)
    assert metamodel.float(np.array([2.5])) == 2.5 and metamodel.float(3) == 3.0
    with pytest.raises(TypeError):
        metamodel.float(np.array([1.0, 2.0]))


def test_option_values_with_commas_stay_in_their_variant():
    specs = parse_specs("soo, deep=bamsoo:{h_max: 1000, eta: 0.01},cma")
    assert [(s.label, s.name, s.options) for s in specs] == [
        ("soo", "soo", {}), ("deep", "bamsoo", {"h_max": 1000, "eta": 0.01}), ("cma", "cma", {})]


def test_runs_with_crashes_spend_the_budget_count_the_crashes_and_leave_out_who_cannot_be_told(tmp_path, capsys):
    bench_bbob.main(tiny_args(tmp_path, "random,cma", "--crash", "0.5"))
    out = capsys.readouterr().out
    assert "cma cannot be told a failed trial" in out and "crashed trials per run" in out
    runs = json.loads((tmp_path / "b.json").read_text())["runs"]
    assert {r["job"]["label"] for r in runs} == {"random"}
    assert all(r["evaluations"] == 10 and r["job"]["crash"] == 0.5 for r in runs)
    assert 0 < sum(r["crashes"] for r in runs) < 20


def test_a_crashing_trial_spends_an_evaluation_and_leaves_the_best_regret_alone():
    problem = Problem(1, 2, 1, crash=0.5)
    direction, threshold = problem.crash
    inside = direction * (threshold + 0.1) / (direction @ direction)
    recorder = Recorder(problem, budget=5)
    assert math.isnan(recorder(inside))
    assert (recorder.evaluations, recorder.crashes, recorder.improvements) == (1, 1, [])


def test_a_share_of_crashes_outside_0_1_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        bench_bbob.parse_args(["--crash", "1.5"])
    assert "--crash" in capsys.readouterr().err.strip().splitlines()[-1]
