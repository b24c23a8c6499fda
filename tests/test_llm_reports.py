"""Intermediate reports of the LLM objective on the tiny study (shortened trials): a quick lm-eval score at the
`eval_at` fractions of the training, in the objective's key, with the loss, tokens and seconds as metrics."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pbo.objectives import resolve_objective
from pbo.objectives.llm.config import LLMConfig
from pbo.objectives.llm.data import load_records, tokenize
from pbo.objectives.llm.model import load_tokenizer
from pbo.objectives.llm.train import train
from pbo.worker import takes_report

STUDY = Path(__file__).resolve().parents[1] / "pbo" / "studies" / "tiny_llm.yaml"
OPTIONS = {**yaml.safe_load(STUDY.read_text())["objective_options"], "max_steps": 40, "limit": 60,
           "eval_at": [0.125, 0.25, 0.5], "eval_limit": 60}
KEY = "hellaswag_tiny/acc"
CHANCE = 0.25
COLLAPSING = {"lora_rank": 2, "lora_alpha": 32, "lora_dropout": 0.0, "learning_rate": 1e-1}  # alpha/rank 16
DEAD = {"lora_rank": 2, "lora_alpha": 32, "lora_dropout": 0.0, "learning_rate": 1e-9}


class Recorder:
    """A `report` that keeps every call and answers stop from report number `stop_at` on (None: never)."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[dict] = []
        self.stop_at = stop_at

    def __call__(self, step, value, fidelity=None, **metrics) -> bool:
        self.calls.append({"step": step, "value": value, "fidelity": fidelity, **metrics})
        return self.stop_at is None or len(self.calls) < self.stop_at


@pytest.fixture(scope="module")
def objective():
    return resolve_objective("llm", OPTIONS)


def test_the_llm_objective_takes_report_and_still_runs_without_it(objective):
    assert takes_report(objective.function)


def test_training_stops_at_the_step_where_on_step_says_false():
    from transformers import AutoModelForCausalLM

    cfg = LLMConfig.from_mapping({**OPTIONS, "max_steps": 20})
    tokenizer = load_tokenizer(cfg.resolve("model"))
    seqs = tokenize(load_records(cfg.resolve("dataset"))[:64], tokenizer, cfg.prompt_template, 128)
    model = AutoModelForCausalLM.from_pretrained(cfg.resolve("model"))
    seen = []
    stats = train(model, seqs, cfg, torch.device("cpu"), tokenizer.pad_token_id,
                  on_step=lambda at: seen.append((at.step, at.tokens)) or at.step < 3)
    assert (stats.steps, stats.stopped) == (3, True)
    assert [step for step, _ in seen] == [1, 2, 3] and seen[0][1] < seen[-1][1] == stats.tokens


def test_a_stop_answer_ends_the_trial_at_that_report_without_the_final_evaluation(objective):
    recorder = Recorder(stop_at=1)
    metrics = objective.function({**DEAD, "max_steps": 16}, report=recorder)
    assert [call["step"] for call in recorder.calls] == [2]
    assert metrics["train_steps"] == 2 and "hellaswag_tiny/acc_stderr" not in metrics  # no full lm-eval run
    assert metrics[KEY] == recorder.calls[0]["value"]


def test_an_empty_eval_at_sends_no_report():
    objective = resolve_objective("llm", {**OPTIONS, "eval_at": []})
    recorder = Recorder()
    metrics = objective.function({**DEAD, "max_steps": 4}, report=recorder)
    assert recorder.calls == [] and KEY in metrics


@pytest.mark.slow
def test_reports_carry_step_fidelity_loss_tokens_and_seconds_and_the_final_score_stays_the_full_eval(objective):
    recorder = Recorder()
    metrics = objective.function({"lora_rank": 8, "lora_alpha": 16, "learning_rate": 1e-2}, report=recorder)
    assert [(c["step"], c["fidelity"]) for c in recorder.calls] == [(5, 0.125), (10, 0.25), (20, 0.5)]
    for name in ("train_loss", "probe_loss", "tokens", "seconds", "eval_seconds"):
        values = [call[name] for call in recorder.calls]
        assert all(v > 0 for v in values), name
    assert [c["tokens"] for c in recorder.calls] == sorted(c["tokens"] for c in recorder.calls)
    assert metrics["train_steps"] == 40 and KEY in metrics and metrics["hellaswag_tiny/acc_stderr"] > 0
    assert recorder.calls[-1]["value"] > CHANCE + 0.1  # a training configuration rises above chance by half-way


@pytest.mark.slow
def test_a_reporting_trial_trains_exactly_as_a_silent_one(objective):
    # lm-eval re-seeds torch's RNG on every call: without care the quick evaluations would change the dropout
    # masks that follow, and with them the trial's result.
    params = {"lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.2, "learning_rate": 1e-2, "max_steps": 12}
    silent = objective.function(params)
    reporting = objective.function(params, report=Recorder())
    assert reporting["train_loss_last"] == silent["train_loss_last"] and reporting[KEY] == silent[KEY]


@pytest.mark.slow
def test_a_collapsing_configuration_reports_scores_at_chance_in_the_first_quarter_of_its_training(objective):
    recorder = Recorder()
    objective.function(COLLAPSING, report=recorder)
    early = [call["value"] for call in recorder.calls if call["fidelity"] <= 0.25]
    assert len(early) == 2 and max(early) <= CHANCE + 0.05


@pytest.mark.slow
def test_a_dead_configuration_reports_exactly_the_base_score_and_an_unchanged_probe_loss(objective):
    base = resolve_objective("llm", {**OPTIONS, "limit": OPTIONS["eval_limit"]}).baseline()[KEY]
    recorder = Recorder()
    objective.function(DEAD, report=recorder)
    assert [call["value"] for call in recorder.calls] == [base] * 3
    losses = [call["probe_loss"] for call in recorder.calls]
    assert losses == pytest.approx([losses[0]] * 3, rel=1e-6)  # a step of 1e-9 moves it in the 8th digit


@pytest.mark.slow
def test_through_pbo_run_asha_prunes_a_dead_trial_after_a_good_one_at_its_report(tmp_path, tiny_study):
    from pbo.log import read
    from pbo_process import run_pbo, write_config

    study = {**tiny_study, "algorithm": "lhs", "budget": 2, "workers": 1, "pruner": "asha",
             "pruner_options": {"eta": 2, "min_resource": 1},
             "space": {"learning_rate": {"type": "categorical", "choices": [1e-2, 1e-9]}}}  # good, then dead
    study["objective_options"].update(tasks=["hellaswag_tiny"], max_steps=24, limit=30, eval_at=[0.5],
                                      eval_limit=30)
    out = tmp_path / "run.h5"
    proc = run_pbo(["--config", write_config(tmp_path / "study.yaml", **study), "--out", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = read(out)
    rows = {int(t): i for i, t in enumerate(run.trials["trial_id"])}
    assert run.trials["status"][rows[1]] == "ok" and run.trials["status"][rows[2]] == "pruned"
    dead = run.curve(2)
    assert run.trials["step"][rows[2]] == dead["step"][-1] == 12 and run.trials["value"][rows[2]] == dead["value"][-1]
    assert np.isnan(run.trials["hellaswag_tiny.acc_stderr"][rows[2]])  # stopped before its full evaluation
