"""Search space: natural <-> unit mapping and validation."""

import numpy as np
import pytest

from pbo.space import Space, SpaceError


def space(**spec):
    return Space.from_dict(spec)


def test_int_bounds_are_reachable_with_equal_shares():
    s = space(r={"type": "int", "low": 2, "high": 4})
    grid = np.linspace(0, 1, 3001)
    values = [s.from_unit([u])["r"] for u in grid]
    counts = [values.count(v) for v in (2, 3, 4)]
    assert set(values) == {2, 3, 4}
    assert max(counts) - min(counts) <= 2


def test_int_and_categorical_round_trip_exactly():
    s = space(r={"type": "int", "low": 2, "high": 64}, k={"type": "int", "low": 1, "high": 512, "log": True},
              c={"type": "categorical", "choices": ["cosine", "linear", 3]})
    for r in range(2, 65):
        for k in (1, 2, 7, 100, 511, 512):
            for c in ("cosine", "linear", 3):
                params = {"r": r, "k": k, "c": c}
                assert s.from_unit(s.to_unit(params)) == params


def test_log_bounds_are_exact():
    s = space(lr={"type": "float", "low": 1e-6, "high": 1e-2, "log": True})
    assert s.from_unit([0.0])["lr"] == 1e-6
    assert s.from_unit([1.0])["lr"] == 1e-2
    assert s.from_unit([0.5])["lr"] == pytest.approx(1e-4)


def test_unit_columns_follow_space_order():
    s = space(b={"type": "float", "low": 0, "high": 10}, a={"type": "float", "low": 0, "high": 1})
    assert s.names == ["b", "a"]
    assert s.from_unit([0.5, 0.25]) == {"b": 5.0, "a": 0.25}


@pytest.mark.parametrize("spec, message", [
    ({"x": {"type": "float", "low": 1, "high": 1}}, "'x': low must be below high"),
    ({"x": {"type": "float", "low": 2, "high": 1}}, "'x': low must be below high"),
    ({"x": {"type": "float", "low": 0, "high": 1, "log": True}}, "'x': log scale needs low > 0"),
    ({"x": {"type": "complex", "low": 0, "high": 1}}, "'x': unknown type 'complex'"),
    ({"x": {"type": "categorical", "choices": []}}, "'x': categorical needs a non-empty list"),
    ({"x": {"type": "int", "low": 0.5, "high": 3}}, "'x': int bounds must be whole numbers"),
    ({"x": {"type": "float", "low": 0, "high": 1, "step": 2}}, "'x': unknown key(s) ['step']"),
    ({}, "the search space is empty"),
])
def test_invalid_space_names_the_variable(spec, message):
    with pytest.raises(SpaceError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        Space.from_dict(spec)


def test_duplicate_names_are_rejected():
    from pbo.space import Variable
    with pytest.raises(SpaceError, match="'x' is defined twice"):
        Space((Variable("x", "float", 0, 1), Variable("x", "float", 0, 1)))


def test_snap_merges_points_with_the_same_natural_value():
    s = space(r={"type": "int", "low": 0, "high": 3})
    assert np.array_equal(s.snap(np.array([0.26])), s.snap(np.array([0.49])))
