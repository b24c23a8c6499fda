"""LLMConfig: the study YAML's objective_options, validated at start-up with one-line errors."""

import pytest

from pbo.objectives import ObjectiveError
from pbo.objectives.llm.config import TINY_PATHS, LLMConfig

TINY = {"model": "tiny", "dataset": "tiny", "task_dir": "tiny", "tasks": ["hellaswag_tiny", "mmlu_tiny"],
        "objective": "hellaswag_tiny/acc"}


def test_unknown_option_is_an_error_naming_it():
    with pytest.raises(ObjectiveError, match="unknown option.*'lora_rnak'"):
        LLMConfig.from_mapping({**TINY, "lora_rnak": 4})


def test_with_params_sets_fields_by_name_in_their_type():
    cfg = LLMConfig.from_mapping(TINY).with_params({"lora_rank": 4.0, "learning_rate": "5e-4", "lora_alpha": 7})
    assert (cfg.lora_rank, cfg.learning_rate, cfg.lora_alpha) == (4, 5e-4, 7.0)
    assert isinstance(cfg.lora_rank, int)


def test_with_params_rejects_a_name_that_maps_to_nothing():
    with pytest.raises(ObjectiveError, match="'dropout'"):
        LLMConfig.from_mapping(TINY).with_params({"dropout": 0.1})


def test_fractional_rank_is_an_error():
    with pytest.raises(ObjectiveError, match="'lora_rank'.*whole number"):
        LLMConfig.from_mapping({**TINY, "lora_rank": 2.5})


def test_objective_metric_must_name_a_configured_task():
    with pytest.raises(ObjectiveError, match="'arc/acc'"):
        LLMConfig.from_mapping({**TINY, "objective": "arc/acc"})


def test_weighted_objective_reads_a_mean_under_its_own_key():
    cfg = LLMConfig.from_mapping({**TINY, "objective": {"hellaswag_tiny/acc": 1, "mmlu_tiny/acc": 3}})
    assert cfg.key == "objective"
    assert cfg.objective_weights == {"hellaswag_tiny/acc": 1.0, "mmlu_tiny/acc": 3.0}


def test_batch_size_must_be_a_multiple_of_the_micro_batch():
    with pytest.raises(ObjectiveError, match="batch_size 16 is not a multiple of micro_batch_size 5"):
        LLMConfig.from_mapping({**TINY, "batch_size": 16, "micro_batch_size": 5})


def test_tiny_names_the_shipped_assets():
    cfg = LLMConfig.from_mapping(TINY)
    assert cfg.resolve("model") == str(TINY_PATHS["model"])
    assert (TINY_PATHS["model"] / "config.json").is_file()
    assert (TINY_PATHS["task_dir"] / "hellaswag_tiny.yaml").is_file()


def test_defaults_are_the_reference_study():
    cfg = LLMConfig()
    assert (cfg.model, cfg.dataset, cfg.batch_size) == ("meta-llama/Llama-3.2-1B", "yahma/alpaca-cleaned", 16)
    assert cfg.target_modules == ("q_proj", "k_proj", "v_proj", "lm_head")


@pytest.mark.parametrize("eval_at", [[0.5, 0.25], [0.0, 0.5], [0.5, 1.0], [0.25, 0.25]])
def test_eval_at_must_be_increasing_fractions_inside_the_training(eval_at):
    with pytest.raises(ObjectiveError, match="eval_at must be increasing fractions"):
        LLMConfig.from_mapping({**TINY, "eval_at": eval_at})


def test_an_empty_eval_at_is_allowed_and_turns_reports_off():
    assert LLMConfig.from_mapping({**TINY, "eval_at": []}).eval_at == ()


def test_quick_evaluations_score_only_the_objective_tasks():
    assert LLMConfig.from_mapping(TINY).objective_tasks == ("hellaswag_tiny",)


@pytest.mark.parametrize("eval_limit", [0, -5])
def test_eval_limit_must_be_positive(eval_limit):
    with pytest.raises(ObjectiveError, match="eval_limit must be > 0"):
        LLMConfig.from_mapping({**TINY, "eval_limit": eval_limit})
