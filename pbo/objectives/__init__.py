"""Objectives by name (`OBJECTIVES`): the synthetic benchmark set, `curve` (a synthetic function reached along
a learning curve it reports, to try pruning), the LLM study, its cheap stand-in `llm_landscape`, or a user's
`module:function`.

Every rank resolves the objective itself from its name and options (plain config data), so nothing but
parameters and metrics ever crosses MPI.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pbo.objectives.synthetic import FUNCTIONS, TestFunction
from pbo.space import Space


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
    #: Start-up validation against the study's search space, run on the master before any worker starts
    #: (missing files, unknown tasks, variables that map to nothing); raises ObjectiveError in one line.
    check: Callable[[Space], None] | None = None
    #: Scores the untuned baseline once per study (recorded as trial 0, never told to the optimizer).
    baseline: Callable[[], Mapping[str, float]] | None = None


def _synthetic(function: TestFunction, options: Mapping[str, Any]) -> Objective:
    if options:
        raise ObjectiveError(f"objective {function.name!r} takes no options, got {sorted(options)}")
    return Objective(function.name, function, space=function.space(), optimum=function.optimum)


def _landscape(options: Mapping[str, Any]) -> Objective:
    from pbo.objectives.landscape import NAMES, SPACE, LLMLandscape, ReportingLandscape

    curve_options = ("eval_at", "eval_limit", "steps")
    unknown = sorted(set(options) - {"items", "seed", "noise", "peak", *curve_options})
    if unknown:
        raise ObjectiveError(f"objective 'llm_landscape' has no option(s) {unknown} "
                             f"(it takes items, seed, noise, peak, {', '.join(curve_options)})")
    options = dict(options)
    curve = {name: options.pop(name) for name in curve_options if name in options}
    try:
        land = LLMLandscape(**options)
        # Only with eval_at does the function take `report`: without it trials neither report nor change.
        function: Any = land
        if curve.get("eval_at"):
            function = ReportingLandscape(land, **{**curve, "eval_at": tuple(curve["eval_at"])})
    except (TypeError, ValueError) as exc:
        raise ObjectiveError(f"llm_landscape: {exc}") from None

    def check(space: Space) -> None:
        if sorted(space.names) != sorted(NAMES):
            raise ObjectiveError(f"llm_landscape: the space must have exactly the variables {', '.join(NAMES)}, "
                                 f"got {', '.join(space.names)}")

    return Objective("llm_landscape", function, key="acc", space=SPACE, optimum=land.true_value(land.best_point),
                     check=check, baseline=land.baseline)


def _curve(options: Mapping[str, Any]) -> Objective:
    from pbo.objectives.curves import LearningCurve, make_curve

    known = set(LearningCurve.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ObjectiveError(f"objective 'curve' has no option(s) {unknown} (it takes {', '.join(sorted(known))})")
    try:
        curve = make_curve(options)
    except (TypeError, ValueError) as exc:
        raise ObjectiveError(f"curve: {exc}") from None
    return Objective("curve", curve, space=curve.function.space(), optimum=curve.function.optimum)


def _llm(options: Mapping[str, Any]) -> Objective:
    from pbo.objectives.llm.objective import make_objective  # imports torch: only when asked for

    return make_objective(options)


#: Built-in objectives by name: each factory takes the objective's options and returns the Objective (or raises
#: ObjectiveError). A new built-in is one entry here; anything else is a user's `module:function`.
OBJECTIVES: dict[str, Callable[[Mapping[str, Any]], Objective]] = {
    **{name: functools.partial(_synthetic, function) for name, function in FUNCTIONS.items()},
    "curve": _curve,
    "llm": _llm,
    "llm_landscape": _landscape,
}


def resolve_objective(name: str, options: Mapping[str, Any] | None = None) -> Objective:
    """The objective called `name`: a built-in of `OBJECTIVES`, or `module:function`, for which the options
    `key` and `minimize` describe its output and every other option is passed to the callable as a keyword
    argument.

    Example:
        >>> objective = resolve_objective("branin")
        >>> objective.space["x1"], round(objective.optimum, 3)
        ({'type': 'float', 'low': 0.0, 'high': 1.0}, -0.398)
    """
    options = dict(options or {})
    if name in OBJECTIVES:
        return OBJECTIVES[name](options)
    if ":" in name:
        return _user_objective(name, options)
    known = ", ".join(sorted(OBJECTIVES))
    raise ObjectiveError(f"unknown objective {name!r} (built-in: {known}; or module:function)")


def _user_objective(name: str, options: dict[str, Any]) -> Objective:
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
