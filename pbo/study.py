"""From checked settings to the objects of a run: the objective (with its cost model), the search space and
the optimizer. Every rank builds the objective itself from the same plain settings.

Whether a study minimizes is worked out here only (`minimizes`); the log records the answer (`study_attributes`)
and every reader takes it from there.
"""

from __future__ import annotations

import math
from typing import Any

from pbo.config import Config, ConfigError
from pbo.objectives import Objective, resolve_objective
from pbo.objectives.cost import CostModel, delayed
from pbo.optimizers import Optimizer, make_optimizer
from pbo.pruners import Pruner, make_pruner
from pbo.space import Space


def cost_model(config: Config) -> CostModel | None:
    return None if config.cost is None else CostModel.from_dict(config.cost)


def build_objective(config: Config, *, sleep: bool = True) -> Objective:
    """The objective of the run; with `sleep` (real runs) each evaluation also takes the cost model's time."""
    objective = resolve_objective(config.objective, config.objective_options)
    model = cost_model(config)
    return delayed(objective, model) if sleep and model is not None else objective


def build_space(config: Config, objective: Objective) -> Space:
    spec = config.space if config.space is not None else objective.space
    if spec is None:
        raise ConfigError(f"no search space: objective {objective.name!r} has no default space, "
                          "so give `space` in the config")
    return Space.from_dict(spec)


def minimizes(config: Config, objective: Objective) -> bool:
    """The study's sense: the config's `minimize` when set, else the objective's own (a `module:function`
    objective declares it in its options; built-in objectives maximize)."""
    return objective.minimize if config.minimize is None else bool(config.minimize)


def study_attributes(config: Config, objective: Objective) -> dict[str, Any]:
    """What the log records so that readers need not recompute it: the effective `minimize`, the objective's
    `key` (the metric optimized) and its known `optimum` (NaN when unknown)."""
    optimum = math.nan if objective.optimum is None else float(objective.optimum)
    return {"minimize": minimizes(config, objective), "key": str(objective.key), "optimum": optimum}


def build_optimizer(config: Config, objective: Objective) -> Optimizer:
    return make_optimizer(config.algorithm, build_space(config, objective), seed=config.seed,
                          minimize=minimizes(config, objective), budget=config.budget, **config.optimizer)


def build_pruner(config: Config, objective: Objective) -> Pruner | None:
    """The run's pruner in the study's sense, or None for `pruner: none`."""
    if config.pruner == "none":
        return None
    return make_pruner(config.pruner, minimize=minimizes(config, objective), **config.pruner_options)
