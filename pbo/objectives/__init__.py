"""Objectives by name: the synthetic benchmark set, the LLM study, or a user's `module:function`.

Every rank resolves the objective itself from its name and options (plain config data), so nothing but
parameters and metrics ever crosses MPI.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pbo.objectives.synthetic import FUNCTIONS


class ObjectiveError(ValueError):
    """An objective that cannot be resolved or set up; the message names the problem in one line."""


@dataclass(frozen=True)
class Objective:
    """A named function of the hyperparameters.

    `function(params)` returns a float or a dict of metrics; `key` names the metric to optimize in that dict.
    `space` is the default search space (used when the config gives none) and `optimum` the best value when
    known (synthetic functions), for regret.
    Every rank rebuilds the objective from its name and options, so it need not be picklable.
    """

    name: str
    function: Callable[[dict[str, Any]], float | Mapping[str, float]]
    key: str = "value"
    minimize: bool = False
    space: dict[str, dict[str, Any]] | None = None
    optimum: float | None = None
    #: Start-up validation, run on the master before any worker starts (missing files, unknown tasks, ...);
    #: raises ObjectiveError with one line naming the problem.
    check: Callable[[], None] | None = None
    #: Scores the untuned baseline once per study (recorded as trial 0, never told to the optimizer).
    baseline: Callable[[], Mapping[str, float]] | None = None


def resolve_objective(name: str, options: Mapping[str, Any] | None = None) -> Objective:
    """The objective called `name`. For `module:function`, the options `key` and `minimize` describe its
    output and every other option is passed to the callable as a keyword argument."""
    options = dict(options or {})
    if name in FUNCTIONS:
        if options:
            raise ObjectiveError(f"objective {name!r} takes no options, got {sorted(options)}")
        fn = FUNCTIONS[name]
        return Objective(name, fn, space=fn.space(), optimum=fn.optimum)
    if name == "llm":
        from pbo.objectives.llm.objective import make_objective

        return make_objective(options)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ObjectiveError(f"objective {name!r}: cannot import module {module_name!r} ({exc})") from None
        function = getattr(module, attr, None)
        if not callable(function):
            raise ObjectiveError(f"objective {name!r}: module {module_name!r} has no callable {attr!r}")
        key, minimize = options.pop("key", "value"), bool(options.pop("minimize", False))
        if options:  # the rest are the callable's own keyword arguments
            function = functools.partial(function, **options)
        return Objective(name, function, key=key, minimize=minimize)
    known = ", ".join(sorted(FUNCTIONS))
    raise ObjectiveError(f"unknown objective {name!r} (built-in: {known}; or module:function)")
