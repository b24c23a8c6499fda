"""Every benchmarked algorithm behind one ask/tell shape, in a registry (name -> `Algorithm`).

An adapter minimizes a function on the unit cube [0, 1]^D. `ask()` returns `(token, u)` or None when it
cannot propose anything until outstanding results come back; `tell(token, value)` reports one result, in any
order. `minimize(evaluate, budget)` is the sequential run; an adapter whose algorithm drives the loop itself
(scipy's DIRECT calls the objective) overrides it and is marked `sequential_only`, which keeps it out of the
asynchronous mode.

Algorithms are selected by specs `label=name:{options}` (see `parse_specs`), so that a pbo change can be run
side by side with the current code: `soo,soo_deep=soo:{h_max: 1000}`. Options go to the algorithm's own
constructor (pbo's `make_optimizer`, Optuna's sampler, ...); `check_spec` builds each adapter once, so that a
misspelt option fails at the command line, not in a worker an hour later.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np
import yaml

Token = Any
Point = tuple[Token, np.ndarray]


class SpecError(ValueError):
    """A bad `--algorithms` entry; the message is one line naming the entry."""


class Adapter:
    """Base: a sequential `minimize` through ask/tell. Subclasses implement `ask` and `tell`."""

    def __init__(self, dim: int, budget: int, seed: int, workers: int = 1) -> None:
        self.dim, self.budget, self.seed, self.workers = dim, budget, seed, workers

    def ask(self) -> Point | None:
        raise NotImplementedError

    def tell(self, token: Token, value: float) -> None:
        raise NotImplementedError

    def minimize(self, evaluate: Callable[[np.ndarray], float], budget: int) -> None:
        """Ask, evaluate, tell, `budget` times; stops early if the algorithm has nothing left to propose."""
        for _ in range(budget):
            point = self.ask()
            if point is None:
                return
            token, u = point
            self.tell(token, evaluate(u))


class PboAdapter(Adapter):
    """A pbo optimizer (`make_optimizer(name, ...)`) on D floats in [0, 1], minimizing."""

    def __init__(self, name: str, dim: int, budget: int, seed: int, workers: int = 1, **options: Any) -> None:
        from pbo.optimizers import make_optimizer
        from pbo.space import Space

        super().__init__(dim, budget, seed, workers)
        space = Space.from_dict({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(dim)})
        self.opt = make_optimizer(name, space, seed=seed, minimize=True, budget=budget, **options)

    def ask(self) -> Point | None:
        cand = self.opt.ask()
        return None if cand is None else (cand.id, np.asarray(cand.u, dtype=float))

    def tell(self, token: Token, value: float) -> None:
        self.opt.tell(token, value)


class DirectAdapter(Adapter):
    """scipy.optimize.direct, DIRECT-L by default (`locally_biased=True`). It calls the objective itself, so
    the budget is enforced by the caller's `evaluate` raising once it is spent."""

    def __init__(self, dim: int, budget: int, seed: int, workers: int = 1, locally_biased: bool = True,
                 eps: float = 1e-4) -> None:
        super().__init__(dim, budget, seed, workers)
        self.locally_biased, self.eps = bool(locally_biased), float(eps)

    def minimize(self, evaluate: Callable[[np.ndarray], float], budget: int) -> None:
        from scipy.optimize import direct

        # scipy allocates arrays of maxfun entries (10**9 crashes it); DIRECT overshoots maxfun by at most one
        # iteration, so twice the budget is never the binding limit. Tolerances 0: stop on the budget only.
        direct(evaluate, [(0.0, 1.0)] * self.dim, maxfun=2 * budget + 100, maxiter=10 * budget + 100,
               locally_biased=self.locally_biased, eps=self.eps, vol_tol=0.0, len_tol=0.0)


class OptunaAdapter(Adapter):
    """An Optuna study (minimize) driven by `study.ask()` / `study.tell()`; trials still running when another
    is asked are what the sampler sees as running (TPE's constant liar, GPSampler's pending points)."""

    def __init__(self, kind: str, dim: int, budget: int, seed: int, workers: int = 1, **options: Any) -> None:
        import optuna

        super().__init__(dim, budget, seed, workers)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if kind == "gp":  # BBOB is noise-free: tell the GP so, as its documentation advises
            sampler = optuna.samplers.GPSampler(**{"seed": seed, "deterministic_objective": True, **options})
        else:
            sampler = optuna.samplers.TPESampler(**{"seed": seed, "constant_liar": True, **options})
        self.study = optuna.create_study(sampler=sampler, direction="minimize")
        self.names = [f"x{i}" for i in range(dim)]
        self.distributions = {n: optuna.distributions.FloatDistribution(0.0, 1.0) for n in self.names}

    def ask(self) -> Point | None:
        trial = self.study.ask(self.distributions)
        return trial, np.array([trial.params[n] for n in self.names])

    def tell(self, token: Token, value: float) -> None:
        self.study.tell(token, value)


def _scalar(value: Any) -> float:
    """float() as numpy < 2.4 had it: a size-1 array converts to its element."""
    if isinstance(value, np.ndarray) and value.ndim > 0 and value.size == 1:
        return float(value.reshape(()))
    return float(value)


def _patch_nevergrad_metamodel() -> None:
    """nevergrad 1.0.12's metamodel does `float(model.predict(x))` on a shape-(1,) array, which numpy >= 2.4
    refuses (TypeError; nevergrad issue #1612), ending every NGOpt run that reaches its metamodel step. Give that
    module a `float` that converts size-1 arrays as older numpy did; nothing else in nevergrad is touched."""
    from nevergrad.optimization import metamodel

    metamodel.float = _scalar  # type: ignore[attr-defined]  # a module global shadows the builtin there only


class NevergradAdapter(Adapter):
    """A nevergrad optimizer (default NGOpt, its algorithm selector) told the budget and the worker count."""

    def __init__(self, dim: int, budget: int, seed: int, workers: int = 1, optimizer: str = "NGOpt") -> None:
        import nevergrad as ng

        _patch_nevergrad_metamodel()
        super().__init__(dim, budget, seed, workers)
        if optimizer not in ng.optimizers.registry:
            raise ValueError(f"nevergrad has no optimizer {optimizer!r}")
        param = ng.p.Array(shape=(dim,), lower=0.0, upper=1.0)
        param.random_state = np.random.RandomState(seed)
        self.opt = ng.optimizers.registry[optimizer](parametrization=param, budget=budget, num_workers=workers)

    def ask(self) -> Point | None:
        cand = self.opt.ask()
        return cand, np.clip(np.asarray(cand.value, dtype=float), 0.0, 1.0)

    def tell(self, token: Token, value: float) -> None:
        self.opt.tell(token, value)


class CMAAdapter(Adapter):
    """CMA-ES (`cma`) in [0, 1]^D, with IPOP restarts (population doubled, new random start) whenever it
    stops before the budget. Members of a generation are asked one at a time; the generation is told when
    all of them are back, so with more workers than the population some workers wait (ask returns None)."""

    def __init__(self, dim: int, budget: int, seed: int, workers: int = 1, sigma0: float = 0.3,
                 x0: str = "random", popsize: int | None = None, ipop: bool = True) -> None:
        super().__init__(dim, budget, seed, workers)
        if x0 not in ("random", "center"):
            raise ValueError(f"cma: x0 must be 'random' or 'center', got {x0!r}")
        if not 0 < sigma0 <= 1:
            raise ValueError(f"cma: sigma0 must lie in (0, 1], got {sigma0!r}")
        self.sigma0, self.x0, self.ipop = float(sigma0), x0, bool(ipop)
        self.rng = np.random.default_rng(seed)
        self.restarts = 0
        self.popsize = popsize
        self._start()

    def _start(self) -> None:
        import cma

        x0 = self.rng.random(self.dim) if self.x0 == "random" else np.full(self.dim, 0.5)
        opts = {"bounds": [0.0, 1.0], "seed": int(self.rng.integers(1, 2 ** 31)), "verbose": -9}
        if self.popsize:
            opts["popsize"] = self.popsize
        self.es = cma.CMAEvolutionStrategy(x0, self.sigma0, opts)
        self.popsize = self.es.popsize
        self._generation: list[np.ndarray] = []
        self._values: list[float | None] = []
        self._next = 0

    def ask(self) -> Point | None:
        if self._next == len(self._generation):
            if any(v is None for v in self._values):
                return None  # wait for the rest of this generation
            self._generation, self._values, self._next = self.es.ask(), [], 0
            self._values = [None] * len(self._generation)
        i, self._next = self._next, self._next + 1
        return (self.restarts, i), np.clip(self._generation[i], 0.0, 1.0)

    def tell(self, token: Token, value: float) -> None:
        start, i = token
        if start != self.restarts:
            raise ValueError(f"cma: result for generation of start {start} told after the restart")
        self._values[i] = value
        if self._next == len(self._generation) and all(v is not None for v in self._values):
            self.es.tell(self._generation, self._values)
            self._generation, self._values, self._next = [], [], 0
            if self.es.stop():
                self.restarts += 1
                if self.ipop:
                    self.popsize *= 2
                self._start()


@dataclass(frozen=True)
class Algorithm:
    """A registry entry. `cost` is a rough relative cost per evaluation, used to start the slowest jobs first.
    A `deterministic` algorithm ignores its seed, so a sequential benchmark runs it for one seed only (the
    ECDF and the medians of identical copies are those of one run). `takes_failures`: told NaN, it records a
    failed trial (pbo's `tell`, Optuna's `study.tell`), so it can run where trials crash."""

    factory: Callable[..., Adapter]
    description: str
    sequential_only: bool = False
    cost: float = 1.0
    deterministic: bool = False
    takes_failures: bool = False


def _registry() -> dict[str, Algorithm]:
    pbo = {"soo": (1, "pbo SOO"), "bamsoo": (20, "pbo BaMSOO (SOO + GP skip rule)"), "bo": (150, "pbo GP-BO (LogEI)"),
           "mfbamsoo": (20, "pbo multi-fidelity BaMSOO (BBOB does not report: every trial in full)"),
           "lhs": (1, "pbo Latin hypercube"), "random": (1, "pbo uniform random search")}
    entries = {name: Algorithm(partial(PboAdapter, name), text, cost=cost, deterministic=name == "soo",
                               takes_failures=True)
               for name, (cost, text) in pbo.items()}
    entries.update({
        "direct": Algorithm(DirectAdapter, "scipy DIRECT-L (locally biased)", sequential_only=True,
                            deterministic=True),
        "optuna_gp": Algorithm(partial(OptunaAdapter, "gp"), "Optuna GPSampler", cost=100, takes_failures=True),
        "optuna_tpe": Algorithm(partial(OptunaAdapter, "tpe"), "Optuna TPESampler (constant liar)", cost=5,
                                takes_failures=True),
        "ngopt": Algorithm(NevergradAdapter, "nevergrad NGOpt", cost=3),
        "cma": Algorithm(CMAAdapter, "CMA-ES (cma), IPOP restarts", cost=2),
    })
    return entries


ALGORITHMS: dict[str, Algorithm] = _registry()


@dataclass(frozen=True)
class Spec:
    """One benchmarked configuration: a label (the column in every table), an algorithm name and its options."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def algorithm(self) -> Algorithm:
        return ALGORITHMS[self.name]

    def options_json(self) -> str:
        """Canonical text of the options: part of a run's identity, so changed options are never reused."""
        return json.dumps(self.options, sort_keys=True)

    def build(self, dim: int, budget: int, seed: int, workers: int = 1) -> Adapter:
        return self.algorithm.factory(dim=dim, budget=budget, seed=seed, workers=workers, **self.options)


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside brackets, so that `a,b=soo:{k: 3, h_max: 9}` is two entries."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if depth < 0:
            raise SpecError(f"unbalanced brackets in {text!r}")
        if ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise SpecError(f"unbalanced brackets in {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_spec(entry: str) -> Spec:
    """`name`, `label=name` or `label=name:{yaml options}` -> Spec."""
    label, _, rest = entry.partition("=") if "=" in entry.split(":", 1)[0] else ("", "", entry)
    name, colon, text = rest.partition(":")
    name, label = name.strip(), label.strip()
    if name not in ALGORITHMS:
        raise SpecError(f"unknown algorithm {name!r} in {entry!r} (choose from {', '.join(ALGORITHMS)})")
    options: Any = {}
    if colon:
        try:
            options = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"bad options in {entry!r}: {' '.join(str(exc).split())}") from None
        if not isinstance(options, dict):
            raise SpecError(f"options in {entry!r} must be a mapping like {{h_max: 1000}}, got {text.strip()!r}")
        if options and not label:
            raise SpecError(f"give the variant {entry!r} a label: label={entry}")
    return Spec(label or name, name, options or {})


def parse_specs(text: str) -> list[Spec]:
    """A comma-separated list of specs; labels must be unique."""
    specs = [parse_spec(entry) for entry in split_top_level(text)]
    labels = [s.label for s in specs]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise SpecError(f"duplicate algorithm label(s) {duplicated}: give variants distinct labels")
    if not specs:
        raise SpecError("no algorithm given")
    return specs


def check_spec(spec: Spec) -> None:
    """Build the adapter once on a small problem, so that a bad option is a one-line error up front."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Optuna's ExperimentalWarning for deterministic_objective
            spec.build(dim=2, budget=10, seed=0)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{spec.label}: {' '.join(str(exc).split())}") from None
    except ImportError as exc:
        raise SpecError(f"{spec.label}: {exc.name or exc} is not installed (pip install -e '.[bench]')") from None
