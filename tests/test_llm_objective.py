"""The LLM objective through its public interface: resolve_objective("llm", options) on the tiny study.

Trials here are shortened (few steps, a slice of each task) to keep the file fast; the full tiny study's
surface is measured by jobs/llm/tiny_surface.py (docs/llm.md).
"""

from pathlib import Path

import pytest
import torch
import yaml

from pbo.objectives import ObjectiveError, resolve_objective
from pbo.objectives.llm.config import TINY_PATHS, LLMConfig
from pbo.objectives.llm.data import load_records, tokenize
from pbo.objectives.llm.model import load_tokenizer
from pbo.objectives.llm.train import TrialFailed, train
from pbo.space import Space

STUDY = Path(__file__).resolve().parents[1] / "pbo" / "studies" / "tiny_llm.yaml"
OPTIONS = {**yaml.safe_load(STUDY.read_text())["objective_options"], "max_steps": 40, "limit": 60}
TINY_SPACE = Space.from_dict(yaml.safe_load(STUDY.read_text())["space"])
GOOD = {"lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.0, "learning_rate": 1e-2, "weight_decay": 1e-4}


@pytest.fixture(scope="module")
def objective():
    return resolve_objective("llm", OPTIONS)


@pytest.fixture(scope="module")
def baseline(objective):
    return objective.baseline()


@pytest.fixture(scope="module")
def trial(objective):
    return objective.function(GOOD)


@pytest.mark.slow
def test_trial_reports_task_metrics_with_stderr_costs_and_the_key(trial, objective):
    for task in ("hellaswag_tiny", "mmlu_tiny"):
        assert 0 <= trial[f"{task}/acc"] <= 1 and trial[f"{task}/acc_stderr"] > 0
    for name in ("train_tokens_per_s", "train_seconds", "eval_seconds", "peak_memory_mb", "pad_fraction"):
        assert trial[name] > 0, name
    assert objective.key in trial


@pytest.mark.slow
def test_baseline_scores_the_untuned_model_near_chance(baseline):
    assert 0.1 <= baseline["hellaswag_tiny/acc"] <= 0.4
    assert "train_seconds" not in baseline


@pytest.mark.slow
def test_a_good_configuration_beats_the_base_model(trial, baseline):
    assert trial["hellaswag_tiny/acc"] > baseline["hellaswag_tiny/acc"] + 0.15


@pytest.mark.slow
def test_near_zero_learning_rate_scores_exactly_the_base_model_even_with_alpha_over_rank_above_one(
        objective, baseline):
    # The reference study saw alpha/rank >= 1.2 collapse to chance at any learning rate; a fresh LoRA adapter
    # (B = 0) must change nothing.
    metrics = objective.function({"lora_rank": 2, "lora_alpha": 32, "learning_rate": 1e-12, "max_steps": 3})
    for name, value in baseline.items():
        if "/" in name:
            assert metrics[name] == value, name


def test_diverging_loss_fails_the_trial_with_the_reason():
    objective = resolve_objective("llm", {**OPTIONS, "target_modules": ["q_proj", "v_proj", "lm_head"]})
    with pytest.raises(TrialFailed, match="loss (diverged|is nan)"):
        objective.function({"learning_rate": 30.0, "max_grad_norm": 0.0, "max_steps": 10})


def test_nan_loss_stops_training_at_the_first_step():
    from transformers import AutoModelForCausalLM

    cfg = LLMConfig.from_mapping({**OPTIONS, "max_steps": 50})
    tokenizer = load_tokenizer(cfg.resolve("model"))
    seqs = tokenize(load_records(cfg.resolve("dataset"))[:64], tokenizer, cfg.prompt_template, 128)
    model = AutoModelForCausalLM.from_pretrained(cfg.resolve("model"))
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    with pytest.raises(TrialFailed, match="loss is nan at step 1 of 50"):
        train(model, seqs, cfg, torch.device("cpu"), tokenizer.pad_token_id)


def test_check_accepts_the_tiny_study(objective):
    objective.check(TINY_SPACE)


@pytest.mark.parametrize("change, message", [
    ({"model": "./no/such/model"}, "model folder './no/such/model' does not exist"),
    ({"model": "no-such-org/no-such-model"}, "cannot load model 'no-such-org/no-such-model'"),
    ({"dataset": "./missing.jsonl"}, "dataset file './missing.jsonl' does not exist"),
    ({"tasks": ["hellaswag_tiny", "arc_tiny"], "objective": "hellaswag_tiny/acc"}, r"unknown task\(s\) \['arc_tiny'\]"),
    ({"target_modules": ["q_proj", "query_key_value"]}, r"target module\(s\) \['query_key_value'\] not in model"),
])
def test_start_up_errors_name_the_problem_in_one_line(change, message, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, not after retries
    with pytest.raises(ObjectiveError, match=message) as info:
        resolve_objective("llm", {**OPTIONS, **change}).check(TINY_SPACE)
    assert "\n" not in str(info.value)


def test_unknown_hyperparameter_in_the_study_space_fails_at_start_up():
    space = Space.from_dict({"lora_rank": {"type": "int", "low": 1, "high": 8},
                             "lora_droput": {"type": "float", "low": 0, "high": 0.3}})
    with pytest.raises(ObjectiveError, match=r"\['lora_droput'\] map to no training setting"):
        resolve_objective("llm", OPTIONS).check(space)


def test_training_fields_beyond_lora_are_tunable():
    space = Space.from_dict({"warmup_ratio": {"type": "float", "low": 0, "high": 0.2},
                             "max_steps": {"type": "int", "low": 10, "high": 100}})
    resolve_objective("llm", OPTIONS).check(space)


def test_missing_task_folder_is_an_error():
    with pytest.raises(ObjectiveError, match="is not a folder"):
        resolve_objective("llm", {**OPTIONS, "task_dir": str(TINY_PATHS["task_dir"] / "nope")}).check(TINY_SPACE)
