"""The LLM objective: LoRA fine-tuning (transformers + peft) scored in process by lm-eval.

Heavy imports (torch, transformers, peft, lm-eval) happen when a trial runs or the objective is built, never
when `pbo.objectives` is imported, so synthetic studies start fast.
"""

import os

# Progress bars of transformers' loading and lm-eval's request building, from every worker for every trial,
# would bury the master's one line per trial. tqdm reads TQDM_* variables once, when it is first imported,
# which happens below this package (set TQDM_DISABLE=0 to see them).
os.environ.setdefault("TQDM_DISABLE", "1")
