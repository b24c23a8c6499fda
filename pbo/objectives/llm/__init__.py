"""The LLM objective: LoRA fine-tuning (transformers + peft) scored in process by lm-eval.

Heavy imports (torch, transformers, peft, lm-eval) happen when a trial runs or the objective is built, never
when `pbo.objectives` is imported, so synthetic studies start fast.
"""
