"""The two baselines: random search and the Latin hypercube design."""

import numpy as np
import pytest

from pbo.optimizers import make_optimizer
from pbo.space import Space

CUBE = Space.from_dict({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)})


def draw(opt, n):
    return np.array([opt.ask().u for _ in range(n)])


@pytest.mark.parametrize("name", ["random", "lhs"])
def test_same_seed_same_points_other_seed_other_points(name):
    a, b, c = (draw(make_optimizer(name, CUBE, seed=s, budget=10), 10) for s in (0, 0, 1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_lhs_puts_one_point_in_each_slice_of_every_axis():
    points = draw(make_optimizer("lhs", CUBE, seed=4, budget=12), 12)
    for axis in range(CUBE.dim):
        assert sorted(np.floor(points[:, axis] * 12).astype(int)) == list(range(12))


def test_lhs_continues_with_random_points_after_its_design():
    opt = make_optimizer("lhs", CUBE, seed=0, budget=3)
    draw(opt, 3)
    assert opt.ask().meta["phase"] == "random"


def test_lhs_design_size_overrides_the_budget():
    opt = make_optimizer("lhs", CUBE, seed=0, budget=50, design_size=5)
    assert len(opt.design) == 5


def test_lhs_without_a_budget_is_refused():
    with pytest.raises(ValueError, match="lhs needs a budget"):
        make_optimizer("lhs", CUBE, seed=0)


def test_random_points_cover_the_cube():
    points = draw(make_optimizer("random", CUBE, seed=0), 400)
    assert points.min() >= 0.0 and points.max() <= 1.0
    assert np.allclose(points.mean(axis=0), 0.5, atol=0.05)
