"""Search spaces: named variables in natural units, mapped to and from the unit cube [0, 1]^d.

Every optimizer works in the unit cube; only this module knows natural units. Integers and categoricals
give each value an equal share of [0, 1], so both integer bounds are as reachable as any inner value, and
natural -> unit -> natural is exact for them.

Example:
    >>> space = Space.from_dict({"lora_rank": {"type": "int", "low": 2, "high": 64},
    ...                          "learning_rate": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}})
    >>> space.from_unit(np.array([1.0, 0.0]))
    {'lora_rank': 64, 'learning_rate': 1e-06}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np


class SpaceError(ValueError):
    """An invalid search space; the message names the variable."""


@dataclass(frozen=True)
class Variable:
    """One hyperparameter. `kind` is float, int or categorical; `log` applies to float and int."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        where = f"space variable {self.name!r}"
        if self.kind not in ("float", "int", "categorical"):
            raise SpaceError(f"{where}: unknown type {self.kind!r} (use float, int or categorical)")
        if self.kind == "categorical":
            if not self.choices:
                raise SpaceError(f"{where}: categorical needs a non-empty list of choices")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise SpaceError(f"{where}: duplicate choices {list(self.choices)}")
            if self.log:
                raise SpaceError(f"{where}: log does not apply to a categorical")
            return
        if self.low is None or self.high is None:
            raise SpaceError(f"{where}: {self.kind} needs low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise SpaceError(f"{where}: bounds must be finite, got low={self.low} high={self.high}")
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise SpaceError(f"{where}: int bounds must be whole numbers, got low={self.low} high={self.high}")
        if self.low >= self.high:
            raise SpaceError(f"{where}: low must be below high, got low={self.low} high={self.high}")
        if self.log and self.low <= 0:
            raise SpaceError(f"{where}: log scale needs low > 0, got low={self.low}")

    @property
    def n_values(self) -> int | None:
        """Number of distinct values, or None for a continuous variable."""
        if self.kind == "categorical":
            return len(self.choices)
        if self.kind == "int":
            return int(self.high) - int(self.low) + 1
        return None

    def from_unit(self, u: float) -> Any:
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "categorical":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.kind == "int":
            lo, hi = int(self.low), int(self.high)
            if self.log:
                # Equal shares of log-space between log(lo) and log(hi + 1): value v owns [log v, log(v+1)).
                v = int(math.floor(math.exp(math.log(lo) + u * (math.log(hi + 1) - math.log(lo)))))
            else:
                v = lo + int(u * (hi - lo + 1))
            return min(max(v, lo), hi)
        if u == 0.0:
            return float(self.low)
        if u == 1.0:
            return float(self.high)
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))

    def to_unit(self, value: Any) -> float:
        """The unit coordinate of a natural value: the centre of its share for ints and categoricals."""
        if self.kind == "categorical":
            for i, choice in enumerate(self.choices):
                if choice == value:
                    return (i + 0.5) / len(self.choices)
            raise SpaceError(f"space variable {self.name!r}: {value!r} is not one of {list(self.choices)}")
        value = float(value)
        if not self.low <= value <= self.high:
            raise SpaceError(f"space variable {self.name!r}: {value} is outside [{self.low}, {self.high}]")
        if self.kind == "int":
            if value != int(value):
                raise SpaceError(f"space variable {self.name!r}: {value} is not an integer")
            lo, hi, v = int(self.low), int(self.high), int(value)
            if self.log:
                span = math.log(hi + 1) - math.log(lo)
                return ((math.log(v) + math.log(v + 1)) / 2 - math.log(lo)) / span
            return (v - lo + 0.5) / (hi - lo + 1)
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def to_number(self, value: Any) -> float:
        """A numeric column for logs: the value itself, or a categorical's index."""
        if self.kind == "categorical":
            return float(self.choices.index(value))
        return float(value)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        spec: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            spec["log"] = True
        return spec


_KEYS = {"float": {"type", "low", "high", "log"}, "int": {"type", "low", "high", "log"},
         "categorical": {"type", "choices"}}


@dataclass(frozen=True)
class Space:
    """An ordered set of variables; columns of unit points follow this order."""

    variables: tuple[Variable, ...]

    def __post_init__(self) -> None:
        if not self.variables:
            raise SpaceError("the search space is empty: give at least one variable")
        seen: set[str] = set()
        for var in self.variables:
            if var.name in seen:
                raise SpaceError(f"space variable {var.name!r} is defined twice")
            seen.add(var.name)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping[str, Any]]) -> "Space":
        """Build from the YAML mapping `name: {type, low, high, log} | {type: categorical, choices}`."""
        if not isinstance(spec, Mapping):
            raise SpaceError(f"the search space must be a mapping of name -> spec, got {type(spec).__name__}")
        variables = []
        for name, item in spec.items():
            if not isinstance(item, Mapping):
                raise SpaceError(f"space variable {name!r}: spec must be a mapping, got {item!r}")
            kind = item.get("type", "float")
            unknown = set(item) - _KEYS.get(kind, set(item))
            if unknown:
                raise SpaceError(f"space variable {name!r}: unknown key(s) {sorted(unknown)} for type {kind!r}")
            try:
                variables.append(Variable(
                    name=str(name), kind=kind,
                    low=None if item.get("low") is None else float(item["low"]),
                    high=None if item.get("high") is None else float(item["high"]),
                    log=bool(item.get("log", False)),
                    choices=tuple(item.get("choices") or ()),
                ))
            except (TypeError, ValueError) as exc:
                if isinstance(exc, SpaceError):
                    raise
                raise SpaceError(f"space variable {name!r}: {exc}") from None
        return cls(tuple(variables))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {var.name: var.to_dict() for var in self.variables}

    @property
    def names(self) -> list[str]:
        return [var.name for var in self.variables]

    @property
    def dim(self) -> int:
        return len(self.variables)

    def from_unit(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Natural parameters, by name, of a unit point (shape (d,))."""
        u = np.asarray(u, dtype=float)
        if u.shape != (self.dim,):
            raise ValueError(f"unit point has shape {u.shape}, expected ({self.dim},)")
        return {var.name: var.from_unit(ui) for var, ui in zip(self.variables, u)}

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        missing = [n for n in self.names if n not in params]
        if missing:
            raise SpaceError(f"parameters lack space variable(s) {missing}")
        return np.array([var.to_unit(params[var.name]) for var in self.variables])

    def to_numbers(self, params: Mapping[str, Any]) -> np.ndarray:
        """Natural values as one float row in space order (categoricals as their index)."""
        return np.array([var.to_number(params[var.name]) for var in self.variables])

    def snap(self, u: np.ndarray) -> np.ndarray:
        """The canonical unit point of the natural value that `u` maps to (shape (d,)).

        Two unit points that decode to the same integers and categoricals snap to the same point, which is how
        optimizers recognise a duplicate proposal.
        """
        return self.to_unit(self.from_unit(u))
