"""Saved adapters: keep_top_k keeps the k best trials' adapters; retrain saves one configuration's adapter."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from pbo.objectives.llm.adapters import RECORD, keep_adapter
from pbo.objectives.llm.config import LLMConfig
from pbo.objectives.llm.model import add_lora, load_model
from pbo.objectives.llm.retrain import main as retrain

STUDY = Path(__file__).resolve().parents[1] / "pbo" / "studies" / "tiny_llm.yaml"
OPTIONS = yaml.safe_load(STUDY.read_text())["objective_options"]


def kept_values(root: Path) -> list[float]:
    return sorted(json.loads(p.read_text())["metrics"]["hellaswag_tiny/acc"] for p in root.glob(f"*/{RECORD}"))


def test_keep_top_k_keeps_the_adapters_of_the_k_best_trials(tmp_path):
    cfg = LLMConfig.from_mapping({**OPTIONS, "keep_top_k": 2, "adapter_dir": str(tmp_path)})
    model = add_lora(load_model(cfg, torch.device("cpu")), cfg)
    for value in (0.3, 0.5, 0.2, 0.4):
        keep_adapter(model, cfg, {"lora_rank": 8}, {"hellaswag_tiny/acc": value})
    assert kept_values(tmp_path) == [0.4, 0.5]
    assert all((p.parent / "adapter_config.json").is_file() for p in tmp_path.glob(f"*/{RECORD}"))


@pytest.mark.slow
def test_retrain_saves_a_loadable_adapter_with_its_metrics(tmp_path, capsys, tiny_study):
    from peft import PeftModel

    study = tiny_study
    study["objective_options"].update(max_steps=3, limit=20)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    params = {"lora_rank": 4, "lora_alpha": 8, "learning_rate": 3e-3}
    code = retrain(["--config", str(tmp_path / "study.yaml"), "--params", json.dumps(params),
                    "--out", str(tmp_path / "best")])
    assert code == 0
    record = json.loads((tmp_path / "best" / RECORD).read_text())
    assert record["params"] == params and 0 <= record["metrics"]["hellaswag_tiny/acc"] <= 1
    cfg = LLMConfig.from_mapping(study["objective_options"])
    loaded = PeftModel.from_pretrained(load_model(cfg, torch.device("cpu")), str(tmp_path / "best"))
    assert loaded.peft_config["default"].r == 4


@pytest.mark.parametrize("args, message", [
    (["--params", "{not json"], "--params is not JSON"),
    (["--params", '{"lora_rnak": 4}'], "'lora_rnak'"),
])
def test_retrain_rejects_bad_params_in_one_line(args, message, tmp_path, capsys):
    assert retrain(["--config", str(STUDY), "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
