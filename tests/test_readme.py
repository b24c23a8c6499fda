"""The README's examples are code that runs: the Python API block is executed as a newcomer would paste it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(section: str) -> str:
    """The first ```python block under the README heading `## {section}`."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", body, re.S).group(1)


def test_the_readme_python_api_example_runs_and_finds_the_minimum(capsys):
    namespace: dict = {}
    exec(compile(python_block("Python API"), str(README), "exec"), namespace)
    best = namespace["best"]
    assert best.value < 1.5 and best.candidate.params["depth"] in (4, 5, 6)
    assert str(best.value) in capsys.readouterr().out
