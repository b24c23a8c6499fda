"""Throughput of the LLM objective: LoRA training tokens/s and lm-eval scoring tokens/s, as a table.

    python jobs/bench_llm_throughput.py            # Llama-3.2-1B shape, random weights, on the GPU (bf16, SDPA)
    python jobs/bench_llm_throughput.py --tiny     # a small Llama shape that runs on 2 CPU cores in a minute

No download: the model is built from a config with random weights (throughput does not depend on them) and
text goes through the tiny study's character tokenizer. Training runs pbo's own loop (`train.train`) on a
peft LoRA model (r=16 on q, k, v, o); scoring runs lm-eval's HFLM loglikelihood on the same model object,
as a trial does. The last rows turn the measured rates into minutes per trial of the reference recipe.
Anchor (plain transformers + peft, bf16, one H200, batch 16 x 512): ~55,000 train tokens/s, ~157,000
scoring tokens/s.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbo.objectives.llm.config import TINY_PATHS, LLMConfig  # noqa: E402
from pbo.objectives.llm.data import Tokenized  # noqa: E402
from pbo.objectives.llm.model import add_lora, compute_dtype, load_tokenizer, pick_device  # noqa: E402
from pbo.objectives.llm.train import train  # noqa: E402

LLAMA_32_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                   num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096,
                   rope_theta=500000.0, tie_word_embeddings=True)
TINY = dict(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)
# Reference recipe sizes (Llama-3 tokenizer): Alpaca-cleaned 51,760 examples of ~270 tokens with the Alpaca
# template; lm-eval scores HellaSwag's 10,042 x 4 endings (~100 tokens each) and MMLU's 14,042 questions
# once each (~130 tokens; one-token answers share their context).
REFERENCE_TRAIN_TOKENS = 51_760 * 270
REFERENCE_SCORE_TOKENS = 10_042 * 4 * 100 + 14_042 * 130


def build_model(shape: dict, dtype: torch.dtype, device: torch.device):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**shape, attn_implementation="sdpa")
    return LlamaForCausalLM(config).to(device=device, dtype=dtype)


def bench_train(model, cfg: LLMConfig, device, dtype, seq_len: int, steps: int) -> dict:
    rng = np.random.default_rng(0)
    n = cfg.batch_size * (steps + 1)
    seqs = [Tokenized(list(rng.integers(4, 60, size=seq_len)), seq_len // 4) for _ in range(n)]
    model = add_lora(model, cfg)
    train(model, seqs[:cfg.batch_size], replace(cfg, max_steps=1), device, 0, dtype)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stats = train(model, seqs, replace(cfg, max_steps=steps), device, 0, dtype)
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"tokens_per_s": stats.tokens_per_second, "seconds": stats.seconds, "memory_gib": memory,
            "model": model}


def bench_score(model, tokenizer, batch_size: int, context: int, continuation: int, n: int, device) -> dict:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    rng = np.random.default_rng(1)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

    def text(k: int) -> str:
        return "".join(rng.choice(letters, size=k))

    requests = [Instance("loglikelihood", {}, (text(context), text(continuation)), i) for i in range(n)]
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=context + continuation + 8)
    lm.loglikelihood(requests[:batch_size], disable_tqdm=True)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    lm.loglikelihood(requests, disable_tqdm=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = n * (1 + context + continuation)  # BOS + characters: the tokenizer is character-level
    return {"tokens_per_s": tokens / seconds, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small shape for a CPU smoke run")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps")
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--micro-batch-size", type=int, default=None)
    parser.add_argument("--eval-batch-size", type=int, default=None)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    device = pick_device()
    shape = TINY if args.tiny else LLAMA_32_1B
    seq_len = args.seq_len or (128 if args.tiny else 512)
    steps = args.steps or (3 if args.tiny else 20)
    micro = args.micro_batch_size or (args.batch_size if device.type == "cuda" else 4)
    eval_batch = args.eval_batch_size or (64 if device.type == "cuda" else 8)
    cfg = LLMConfig(model="tiny", dataset="tiny", tasks=("x",), objective="x/acc", batch_size=args.batch_size,
                    micro_batch_size=micro, learning_rate=1e-4, lora_rank=16, lora_alpha=32, lora_dropout=0.05,
                    target_modules=("q_proj", "k_proj", "v_proj", "o_proj"), warmup_ratio=0.0,
                    gradient_checkpointing=args.gradient_checkpointing, divergence_factor=1e9)
    dtype = compute_dtype("auto", device)
    model = build_model(shape, dtype, device)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    n_params = sum(p.numel() for p in model.parameters())
    tokenizer = load_tokenizer(str(TINY_PATHS["model"]))
    trained = bench_train(model, cfg, device, dtype, seq_len, steps)
    n_score = 8 * eval_batch if args.tiny else 32 * eval_batch
    scored = bench_score(trained["model"], tokenizer, eval_batch, seq_len - 32, 32, n_score, device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; model: {'tiny Llama' if args.tiny else 'Llama-3.2-1B shape'} "
          f"({n_params / 1e6:.0f} M parameters, {dtype}), LoRA r=16 on q,k,v,o")
    print("| phase | batch | tokens/s | seconds | peak GPU GiB |")
    print("|---|---|---|---|---|")
    print(f"| LoRA training | {args.batch_size} x {seq_len} (micro {micro}) | {trained['tokens_per_s']:,.0f} | "
          f"{trained['seconds']:.1f} | {trained['memory_gib']:.1f} |")
    print(f"| lm-eval scoring | {eval_batch} x {seq_len} | {scored['tokens_per_s']:,.0f} | {scored['seconds']:.1f} | |")
    if not args.tiny:
        train_min = REFERENCE_TRAIN_TOKENS / trained["tokens_per_s"] / 60
        score_min = REFERENCE_SCORE_TOKENS / scored["tokens_per_s"] / 60
        print(f"reference trial estimate: train {train_min:.1f} min + score {score_min:.1f} min "
              f"= {train_min + score_min:.1f} GPU-minutes (target < 10)")


if __name__ == "__main__":
    main()
