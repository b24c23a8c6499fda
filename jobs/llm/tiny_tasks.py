"""Synthetic string tasks for the embedded tiny LLM study.

A task maps a word to an answer under a tag: `tag:word=answer`. Pre-training teaches the base model copy,
reverse and three letter ciphers, in a plain form and in a four-choice form (`...\\nAnswer: C`). A study's
trial then LoRA-tunes it to a new cipher under a new tag, `zx`, that the base model never saw, and lm-eval
scores it in the HellaSwag format (pick the right ending) and the MMLU format (pick the right letter).
"""

from __future__ import annotations

import string
from typing import Callable

import numpy as np

LETTERS = string.ascii_lowercase
CHOICE_LETTERS = "ABCD"
NEW_TAG = "zx"


def _cipher(seed: int) -> Callable[[str], str]:
    table = dict(zip(LETTERS, np.random.default_rng(seed).permutation(list(LETTERS))))
    return lambda word: "".join(table[c] for c in word)


#: The tasks the base model is pre-trained on, and the new one each trial learns.
BASE_TASKS: dict[str, Callable[[str], str]] = {
    "cp": lambda w: w, "rv": lambda w: w[::-1], "ka": _cipher(101), "kb": _cipher(102), "kc": _cipher(103),
}
NEW_TASK = _cipher(7)


def random_word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(LETTERS), size=int(rng.integers(3, 7))))


def plain(tag: str, word: str, answer: str) -> tuple[str, str]:
    """(prompt, response) of the plain form; the response follows the `=` directly."""
    return f"{tag}:{word}=", answer


def near_misses(answer: str, rng: np.random.Generator, n: int = 3) -> list[str]:
    """Wrong endings that keep about half the letters of the right one, so the surface has a gradient."""
    out: list[str] = []
    while len(out) < n:
        keep = rng.random(len(answer)) < 0.5
        if keep.all():
            keep[rng.integers(len(answer))] = False
        wrong = "".join(a if k else rng.choice([c for c in LETTERS if c != a]) for a, k in zip(answer, keep))
        if wrong not in out:
            out.append(wrong)
    return out


def strangers(answer: str, rng: np.random.Generator, n: int = 3) -> list[str]:
    """Wrong options for the four-choice form: random words of the same length, each with another first letter."""
    out: list[str] = []
    while len(out) < n:
        wrong = "".join(rng.choice(list(LETTERS), size=len(answer)))
        if wrong[0] != answer[0] and wrong[0] not in [w[0] for w in out]:
            out.append(wrong)
    return out


def four_choice(tag: str, word: str, answer: str, rng: np.random.Generator) -> tuple[str, list[str], int]:
    """(question, choices, index of the right one) of the MMLU-style form."""
    choices = strangers(answer, rng)
    right = int(rng.integers(4))
    choices.insert(right, answer)
    return f"{tag}:{word}=?", choices, right


def mmlu_prompt(question: str, choices: list[str]) -> str:
    """lm-eval's MMLU prompt (tasks/mmlu/default/_default_template_yaml)."""
    lines = [question] + [f"{letter}. {c}" for letter, c in zip(CHOICE_LETTERS, choices)]
    return "\n".join(lines) + "\nAnswer:"


def example(tag: str, word: str, fn: Callable[[str], str], rng: np.random.Generator,
            p_choice: float) -> tuple[str, str]:
    """One (prompt, response) pair: the four-choice form with probability p_choice, else the plain form."""
    answer = fn(word)
    if rng.random() < p_choice:
        question, choices, right = four_choice(tag, word, answer, rng)
        return mmlu_prompt(question, choices), " " + CHOICE_LETTERS[right]
    return plain(tag, word, answer)


def words(n: int, rng: np.random.Generator, exclude: set[str] = frozenset()) -> list[str]:
    out: list[str] = []
    seen = set(exclude)
    while len(out) < n:
        w = random_word(rng)
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out
