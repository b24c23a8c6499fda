"""Running `python -m pbo.run` as a subprocess (alone or under mpirun) for the runtime tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
TRIAL_LINE = re.compile(r"^trial\s+(\d+)\s+worker\s+(\d+)\s+(\w+)\s+(.*)$", re.M)


def mpirun() -> str:
    candidate = Path(sys.executable).parent / "mpirun"
    return str(candidate) if candidate.exists() else shutil.which("mpirun")


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    return env


def command(args: list[str], np: int | None = None) -> list[str]:
    base = [sys.executable, "-m", "pbo.run", *args]
    return base if np is None else [mpirun(), "-np", str(np), *base]


def run_pbo(args: list[str], np: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run in a scratch folder, so that default log files (runs/...) do not land in the repository."""
    with tempfile.TemporaryDirectory() as scratch:
        return subprocess.run(command(args, np), cwd=scratch, env=environment(), capture_output=True, text=True,
                              timeout=timeout)


def write_config(path: Path, **values) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


def alive(pid: int) -> bool:
    """Whether a process still runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def trials(stdout: str) -> list[tuple[int, int, str, str]]:
    """(trial id, worker, status, rest of line) of every progress line."""
    return [(int(t), int(w), s, rest) for t, w, s, rest in TRIAL_LINE.findall(stdout)]
