"""Run settings: one table of options from which both the YAML config keys and the command-line flags come.

Precedence: table defaults < config file (`--config`; without it and without `--objective`, the packaged
tiny LLM study `pbo/studies/tiny_llm.yaml`) < flags. Every value is checked on the master before anything
starts; a bad one raises ConfigError with one line naming the option. To add an option, add one `Option` row
to OPTIONS: it becomes a YAML key, a flag and an entry of `--help`.

Example:
    >>> cfg = parse_args(["--objective", "branin", "--budget", "8"])
    >>> cfg.budget, cfg.objective
    (8, 'branin')
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from pbo.optimizers import ALGORITHMS
from pbo.asker import ASK_AHEAD_MODES
from pbo.pruners import PRUNERS, make_pruner

DEFAULT_STUDY = Path(__file__).parent / "studies" / "tiny_llm.yaml"


class ConfigError(ValueError):
    """Bad settings; the message is one line naming the option."""


class Config(dict):
    """Validated settings by option name, readable as attributes; a plain dict, so it crosses MPI as is."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# ---- value checks: each takes a raw value and returns it normalised, or raises ConfigError (without the name)

def integer(low: int | None = None, optional: bool = False) -> Callable[[Any], int | None]:
    def check(value: Any) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"must be an integer, got {value!r}")
        if low is not None and value < low:
            raise ConfigError(f"must be >= {low}, got {value}")
        return value
    return check


def positive_number(optional: bool = False) -> Callable[[Any], float | None]:
    def check(value: Any) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"must be a number > 0, got {value!r}")
        return float(value)
    return check


def boolean(optional: bool = False) -> Callable[[Any], bool | None]:
    def check(value: Any) -> bool | None:
        if value is None and optional:
            return None
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {value!r}")
        return value
    return check


def mapping(optional: bool = False) -> Callable[[Any], dict | None]:
    def check(value: Any) -> dict | None:
        if value is None and optional:
            return None
        if not isinstance(value, Mapping):
            raise ConfigError(f"must be a mapping (key: value, ...), got {value!r}")
        return dict(value)
    return check


def text(choices: Sequence[str] = (), optional: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, got {value!r}")
        if choices and value not in choices:
            raise ConfigError(f"unknown value {value!r} (choose from {', '.join(choices)})")
        return value
    return check


@dataclass(frozen=True)
class Option:
    name: str
    check: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""
    #: Take the flag's text as is (a name), instead of reading it as YAML (numbers, mappings).
    raw: bool = False


OPTIONS: list[Option] = [
    Option("algorithm", text(tuple(ALGORITHMS)), "random", "optimizer: " + " | ".join(ALGORITHMS), "NAME", raw=True),
    Option("objective", text(optional=True), None,
           "built-in objective (branin, hartmann6, ...) or module:function of your own", "NAME", raw=True),
    Option("objective_options", mapping(), {}, "the objective's own options (YAML mapping)", "YAML"),
    Option("budget", integer(low=1), 20, "real evaluations to run", "N"),
    Option("seed", integer(), 0, "random seed of the optimizer", "S"),
    Option("space", mapping(optional=True), None,
           "search space {name: {type, low, high, log} | {type: categorical, choices}}; default: the objective's",
           "YAML"),
    Option("minimize", boolean(optional=True), None, "minimize the objective (default: the objective's own sense)"),
    Option("optimizer", mapping(), {}, "the algorithm's own options (YAML mapping)", "YAML"),
    Option("workers", integer(low=1), 1, "local worker processes when not started by mpirun", "W"),
    Option("simulate", integer(low=1, optional=True), None,
           "simulate W workers on a virtual clock with the cost model (nothing sleeps)", "W"),
    Option("simulate_master_time", boolean(), False,
           "with --simulate, add the master's real compute time (asks, tells) to the virtual clock; "
           "not deterministic"),
    Option("ask_ahead", text(ASK_AHEAD_MODES), "auto",
           "keep points ready, asked on a thread, while every worker is busy, so a freed worker need not wait for the "
           "optimizer: auto (when an ask takes over 1/1000 of a trial) | always | never", "MODE",
           raw=True),
    Option("timeout", positive_number(optional=True), None, "seconds before a trial is killed and recorded as timeout",
           "SEC"),
    Option("isolate", boolean(), True, "run each evaluation in a child process of its worker"),
    Option("pruner", text(tuple(PRUNERS)), "none",
           "stop trials early from their intermediate reports: " + " | ".join(PRUNERS), "NAME", raw=True),
    Option("pruner_options", mapping(), {},
           "the pruner's own options (median: warmup_trials, warmup_steps; asha: eta, min_resource)", "YAML"),
    Option("prune_grace", positive_number(), 30.0,
           "seconds a trial told to stop may take to end before it is killed (it is recorded as pruned)", "SEC"),
    Option("report_raises", boolean(), False,
           "report() raises pbo.trial.TrialPruned instead of returning False when the trial is to stop"),
    Option("max_failures", integer(low=0, optional=True), None,
           "stop the run once more than this many trials failed or timed out", "N"),
    Option("gpus_per_worker", integer(low=1), 1, "GPUs pinned to each worker", "G"),
    Option("gpus", integer(low=0, optional=True), None,
           "GPUs per node when CUDA_VISIBLE_DEVICES is unset (default: count them with nvidia-smi -L)", "N"),
    Option("master_gpu", boolean(), False, "give the master (rank 0) a GPU slot too"),
    Option("cost", mapping(optional=True), None,
           "cost model of each trial {kind: fixed|lognormal, mean: SEC, sigma, seed}: sleeps, or virtual time "
           "with --simulate", "YAML"),
    Option("progress", boolean(), True, "print one line per finished trial"),
    Option("out", text(optional=True), None,
           "HDF5 log of the run (default: runs/<algorithm>-<objective>-<time>.h5; none with --simulate)", "FILE.h5",
           raw=True),
    Option("resume", text(optional=True), None,
           "continue the run logged in FILE.h5 (its settings are reused; a larger --budget is accepted)",
           "FILE.h5", raw=True),
    Option("overwrite", boolean(), False, "replace the --out file if it exists"),
]

_BY_NAME = {opt.name: opt for opt in OPTIONS}


def build_config(values: Mapping[str, Any]) -> Config:
    """Defaults overridden by `values`, every value checked."""
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(_BY_NAME)})")
    config = Config()
    for opt in OPTIONS:
        value = values.get(opt.name, opt.default)
        try:
            config[opt.name] = opt.check(value)
        except ConfigError as exc:
            raise ConfigError(f"{opt.name}: {exc}") from None
    if config.objective is None:
        raise ConfigError("no objective: set `objective` in the config file or give --objective")
    try:
        make_pruner(config.pruner, **config.pruner_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner_options: {exc}") from None
    return config


def load_file(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, got {type(data).__name__}")
    return data


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, raised instead of usage + exit
        raise ConfigError(message)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m pbo.run",
        description="Partition-based hyperparameter optimization. Every option is also a key of the YAML "
                    "config file; flags win over the file. Under mpirun, rank 0 is the master and every other "
                    "rank a worker.",
        argument_default=argparse.SUPPRESS)
    parser.add_argument("--config", metavar="FILE", help=f"YAML config file (default: {DEFAULT_STUDY.name}, "
                                                         "the packaged default study)")
    for opt in OPTIONS:
        flag = "--" + opt.name.replace("_", "-")
        default = "" if opt.default is None or opt.default == {} else f" (default: {opt.default})"
        if opt.default is True or opt.default is False or opt.metavar == "":
            parser.add_argument(flag, dest=opt.name, action=argparse.BooleanOptionalAction,
                                help=opt.help + default)
        else:
            parser.add_argument(flag, dest=opt.name, metavar=opt.metavar, help=opt.help + default)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The run's settings from the command line (and the config file it names)."""
    return build_config(given_values(argv))


def given_values(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The values the user gave, unchecked: the config file's overridden by the flags.

    Without --config the packaged study is the base, except when resuming (the logged run's settings take its
    place) or when --objective names another objective (the study's space and options belong to its own)."""
    args = vars(make_parser().parse_args(argv))
    path = args.pop("config", None if "resume" in args or "objective" in args else DEFAULT_STUDY)
    values = {} if path is None else load_file(path)
    for name, raw in args.items():
        values[name] = raw if isinstance(raw, bool) or _BY_NAME[name].raw else _flag_value(name, raw)
    return values


def _flag_value(name: str, raw: str) -> Any:
    """A flag's text read as YAML, so `--budget 8`, `--timeout 2.5` and `--space '{x: {...}}'` all work."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"{name}: cannot read {raw!r} as a value") from None
