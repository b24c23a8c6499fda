"""The BaMSOO paper's benchmark functions, scaled to [0, 1]^d and negated so that larger is better.

Each takes the parameters x1..xd (floats in [0, 1]) by name and returns the value to maximize; `optimum`
is the best value, so simple regret is `optimum - best value found`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class TestFunction:
    name: str
    dim: int
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    optimum: float
    raw: Callable[[np.ndarray], float]

    def space(self) -> dict[str, dict[str, Any]]:
        return {f"x{i + 1}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(self.dim)}

    def __call__(self, params: Mapping[str, Any]) -> float:
        u = np.array([float(params[f"x{i + 1}"]) for i in range(self.dim)])
        return self.at_unit(u)

    def at_unit(self, u: np.ndarray) -> float:
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        return -float(self.raw(lo + np.asarray(u, dtype=float) * (hi - lo)))


def _branin(x: np.ndarray) -> float:
    b, c, t = 5.1 / (4 * np.pi ** 2), 5 / np.pi, 1 / (8 * np.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * np.cos(x[0]) + 10


def _rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_SHEKEL_BETA = 0.1 * np.array([1, 2, 2, 4, 4, 6, 3, 7, 5, 5])
_SHEKEL_A = np.array([[4, 1, 8, 6, 3, 2, 5, 8, 6, 7], [4, 1, 8, 6, 7, 9, 3, 1, 2, 3.6],
                      [4, 1, 8, 6, 3, 2, 5, 8, 6, 7], [4, 1, 8, 6, 7, 9, 3, 1, 2, 3.6]], dtype=float)


def _hartmann(a: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray], float]:
    return lambda x: -float(np.sum(_H_ALPHA * np.exp(-np.sum(a * (x - p) ** 2, axis=1))))


def _shekel(x: np.ndarray) -> float:
    return -float(np.sum(1.0 / (np.sum((x[:, None] - _SHEKEL_A) ** 2, axis=0) + _SHEKEL_BETA)))



FUNCTIONS: dict[str, TestFunction] = {f.name: f for f in [
    TestFunction("branin", 2, (-5.0, 0.0), (10.0, 15.0), -0.397887357729739, _branin),
    TestFunction("rosenbrock", 2, (-5.0, -5.0), (10.0, 10.0), 0.0, _rosenbrock),
    TestFunction("hartmann3", 3, (0.0,) * 3, (1.0,) * 3, 3.862779787332663, _hartmann(_H3_A, _H3_P)),
    TestFunction("shekel", 4, (0.0,) * 4, (10.0,) * 4, 10.536443153483530, _shekel),
    TestFunction("hartmann6", 6, (0.0,) * 6, (1.0,) * 6, 3.322368011415515, _hartmann(_H6_A, _H6_P)),
]}
