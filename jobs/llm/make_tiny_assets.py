"""Regenerate the embedded tiny LLM study's assets under pbo/objectives/llm/data/tiny/ (no network).

    nice -n 10 python jobs/llm/make_tiny_assets.py [--steps 1500] [--out pbo/objectives/llm/data/tiny]

Writes a character tokenizer, a 0.9 M-parameter Llama model pre-trained on the base tasks of tiny_tasks.py
(about 12 minutes on one busy core), the Alpaca-format fine-tuning set of the new task and two lm-eval tasks in the
HellaSwag and MMLU formats. Seeded throughout: the same torch version gives the same files (one thread).
"""

from __future__ import annotations

import argparse
import json
import shutil
import string
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

import tiny_tasks as tt  # noqa: E402

from pbo.objectives.llm.config import TINY_DIR, LLMConfig  # noqa: E402
from pbo.objectives.llm.data import tokenize  # noqa: E402
from pbo.objectives.llm.train import Progress, train  # noqa: E402

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits + " \n:=?.,;!'\"-#()/"
TEMPLATE = "{instruction}{input}"  # the tiny records carry the exact prompt text
N_TRAIN, N_EVAL = 2000, 200

HELLASWAG_YAML = """\
# The new cipher in the HellaSwag format: pick the right ending of `zx:word=` among four.
task: hellaswag_tiny
dataset_path: json
custom_dataset: !function docs.hellaswag_tiny
output_type: multiple_choice
test_split: test
doc_to_text: "{{ctx}}"
doc_to_target: "{{label}}"
doc_to_choice: "endings"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

MMLU_YAML = """\
# The new cipher in the MMLU format: four lettered choices, answer A-D (lm-eval's MMLU prompt).
task: mmlu_tiny
dataset_path: json
custom_dataset: !function docs.mmlu_tiny
output_type: multiple_choice
test_split: test
doc_to_text: "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nD. {{choices[3]}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

def build_tokenizer(out: Path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + list(CHARS))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # lm-eval decodes to compare prefixes: no spaces between characters
    # BOS in front, never EOS at the end: lm-eval splits context from continuation by the context's length.
    core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    tokenizer.save_pretrained(out)
    return tokenizer


def build_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


def records(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"instruction": p, "input": "", "output": r} for p, r in pairs]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TINY_DIR)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--examples", type=int, default=20000)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir, task_dir = args.out / "model", args.out / "tasks"
    loaders = (TINY_DIR / "tasks" / "docs.py").read_text()  # source code, not generated: kept as it is
    for d in (model_dir, task_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()

    eval_words = tt.words(2 * N_EVAL, rng)
    train_words = tt.words(N_TRAIN, rng, exclude=set(eval_words))
    pre_words = tt.words(args.examples, rng, exclude=set(eval_words) | set(train_words))

    tokenizer = build_tokenizer(model_dir)
    model = build_model(tokenizer)
    tags = list(tt.BASE_TASKS)
    pre = [tt.example(tags[i % len(tags)], w, tt.BASE_TASKS[tags[i % len(tags)]], rng, p_choice=0.3)
           for i, w in enumerate(pre_words)]
    seqs = tokenize(records(pre), tokenizer, TEMPLATE, 128)
    cfg = LLMConfig(model="tiny", dataset="tiny", tasks=("hellaswag_tiny",), objective="hellaswag_tiny/acc",
                    max_steps=args.steps, batch_size=64, micro_batch_size=64, learning_rate=2e-3,
                    weight_decay=0.01, warmup_ratio=0.05, divergence_factor=1e9)
    start = time.perf_counter()

    def progress(at: Progress) -> None:
        if at.step % 100 == 1:
            print(f"step {at.step - 1}: loss {at.loss:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)

    stats = train(model, seqs, cfg, torch.device("cpu"), tokenizer.pad_token_id, on_step=progress)
    print(f"pre-trained {sum(p.numel() for p in model.parameters()):,} parameters, {stats.steps} steps in "
          f"{time.perf_counter() - start:.0f} s, loss {stats.first_loss:.3f} -> {stats.last_loss:.3f}")
    model.save_pretrained(model_dir)

    new = [tt.example(tt.NEW_TAG, w, tt.NEW_TASK, rng, p_choice=0.3) for w in train_words]
    write_jsonl(args.out / "alpaca_tiny.jsonl", records(new))
    hellaswag, mmlu = [], []
    for w in eval_words[:N_EVAL]:
        prompt, answer = tt.plain(tt.NEW_TAG, w, tt.NEW_TASK(w))
        endings = tt.near_misses(answer, rng)
        label = int(rng.integers(4))
        endings.insert(label, answer)
        hellaswag.append({"ctx": prompt, "endings": endings, "label": label})
    for w in eval_words[N_EVAL:]:
        question, choices, right = tt.four_choice(tt.NEW_TAG, w, tt.NEW_TASK(w), rng)
        mmlu.append({"question": question, "choices": choices, "answer": right})
    write_jsonl(task_dir / "hellaswag_tiny.jsonl", hellaswag)
    write_jsonl(task_dir / "mmlu_tiny.jsonl", mmlu)
    (task_dir / "hellaswag_tiny.yaml").write_text(HELLASWAG_YAML)
    (task_dir / "mmlu_tiny.yaml").write_text(MMLU_YAML)
    (task_dir / "docs.py").write_text(loaders)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
