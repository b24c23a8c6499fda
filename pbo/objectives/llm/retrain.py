"""Re-train one configuration of an LLM study and save its adapter (studies keep no adapters by default).

    python -m pbo.objectives.llm.retrain --config study.yaml --params '{"lora_rank": 8, ...}' --out DIR

DIR gets peft's adapter files (load with `PeftModel.from_pretrained(base, DIR)`) and `trial.json` with the
hyperparameters and the metrics of the re-trained adapter (`--no-score` skips scoring).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from pbo.objectives import ObjectiveError
from pbo.objectives.llm.adapters import save_adapter
from pbo.objectives.llm.config import LLMConfig
from pbo.objectives.llm.objective import check_resources, fine_tune, scored


def load_study_options(path: Path) -> dict:
    """The `objective_options` of an LLM study YAML."""
    try:
        study = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ObjectiveError(f"cannot read study config {str(path)!r}: {exc}") from None
    if not isinstance(study, dict) or study.get("objective", "llm") != "llm":
        raise ObjectiveError(f"study config {str(path)!r} is not an LLM study (objective: llm)")
    return dict(study.get("objective_options") or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbo.objectives.llm.retrain", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the study's YAML")
    parser.add_argument("--params", required=True, help="the hyperparameters as a JSON object")
    parser.add_argument("--out", type=Path, required=True, help="folder for the adapter")
    parser.add_argument("--no-score", action="store_true", help="save without scoring with lm-eval")
    args = parser.parse_args(argv)
    try:
        params = json.loads(args.params)
        if not isinstance(params, dict):
            raise ObjectiveError(f"--params must be a JSON object, got {args.params!r}")
        cfg = LLMConfig.from_mapping(load_study_options(args.config)).with_params(params)
        check_resources(cfg)
        model, tokenizer, metrics, _ = fine_tune(cfg)
        if not args.no_score:
            metrics.update(scored(model, tokenizer, cfg))
    except json.JSONDecodeError as exc:
        print(f"error: --params is not JSON: {exc}", file=sys.stderr)
        return 2
    except ObjectiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    save_adapter(model, args.out, params, metrics)
    tokenizer.save_pretrained(args.out)
    print(json.dumps({k: round(v, 4) for k, v in metrics.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
