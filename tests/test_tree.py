"""Partition tree: split geometry, widest side, middle-child inheritance, node table."""

import math

import numpy as np
import pytest

from pbo.space import Space
from pbo.tree import APPROXIMATED, EVALUATED, INHERITED, PENDING, Tree, share_edges, widest


def test_split_makes_k_equal_boxes_in_order_with_centres():
    tree = Tree(dim=2)
    children = tree.expand(0, k=3)
    assert [c.lower.tolist() for c in children] == [[0, 0], [1 / 3, 0], [2 / 3, 0]]
    assert [c.upper.tolist() for c in children] == [[1 / 3, 1], [2 / 3, 1], [1, 1]]
    assert np.allclose([c.center for c in children], [[1 / 6, 0.5], [0.5, 0.5], [5 / 6, 0.5]])
    assert [c.depth for c in children] == [1, 1, 1] and all(c.parent == 0 for c in children)


def test_split_takes_the_widest_side():
    tree = Tree(dim=3)
    left = tree.expand(0, k=3)[0]  # widths (1/3, 1, 1): sides 1 and 2 tie, the lowest index wins
    assert tree.split_side(left) == 1
    grandchild = tree.expand(left.id, k=3)[0]  # widths (1/3, 1/3, 1)
    assert tree.split_side(grandchild) == 2


def test_discrete_side_is_cut_at_share_edges_into_at_most_its_values():
    edges = np.arange(5) / 4  # a variable with four values
    tree = Tree(dim=1, edges=[edges])
    children = tree.expand(0, k=3)
    assert [(c.lower[0], c.upper[0]) for c in children] == [(0, 0.25), (0.25, 0.75), (0.75, 1)]
    pair = tree.expand(children[1].id, k=3)  # two values left: two children, no middle one
    assert [(c.lower[0], c.upper[0]) for c in pair] == [(0.25, 0.5), (0.5, 0.75)]
    assert not tree.can_expand(pair[0])


def test_box_with_one_value_per_discrete_side_cannot_expand():
    tree = Tree(dim=1, edges=[np.array([0.0, 1.0])])
    assert not tree.can_expand(tree.root)
    with pytest.raises(ValueError, match="cannot be split"):
        tree.expand(0)


def test_share_edges_match_the_space_mapping():
    space = Space.from_dict({"x": {"type": "float", "low": 0, "high": 1},
                             "r": {"type": "int", "low": 2, "high": 9},
                             "k": {"type": "int", "low": 1, "high": 300, "log": True},
                             "c": {"type": "categorical", "choices": ["a", "b", "c"]}})
    edges = share_edges(space)
    assert edges[0] is None
    for var, e in zip(space.variables[1:], edges[1:]):
        assert len(e) == var.n_values + 1 and e[0] == 0 and e[-1] == 1
        inside = [var.from_unit(u) for u in (e[:-1] + e[1:]) / 2]  # one point inside each share
        assert len(set(map(repr, inside))) == var.n_values
        assert all(var.from_unit(a + 1e-9) == var.from_unit(b - 1e-9) for a, b in zip(e[:-1], e[1:]))


def test_middle_child_keeps_parent_centre_and_inherits_a_real_value():
    tree = Tree(dim=2)
    tree.set_value(0, 2.5, EVALUATED)
    middle = tree.expand(0, k=3)[1]
    assert np.array_equal(middle.center, tree.root.center)
    assert (middle.state, middle.value) == (INHERITED, 2.5)
    grand_middle = tree.expand(middle.id, k=3)[1]
    assert (grand_middle.state, grand_middle.value) == (INHERITED, 2.5)


def test_middle_child_does_not_inherit_an_approximation_or_a_pending_parent():
    tree = Tree(dim=1)
    tree.set_value(0, 1.0, APPROXIMATED)
    assert tree.expand(0, k=3)[1].state == PENDING
    assert tree.expand(1, k=3)[1].state == PENDING  # node 1 is still pending


def test_even_k_has_no_middle_child():
    tree = Tree(dim=1)
    tree.set_value(0, 1.0, EVALUATED)
    children = tree.expand(0, k=4)
    assert all(c.state == PENDING for c in children)
    assert np.allclose([c.center[0] for c in children], [0.125, 0.375, 0.625, 0.875])


def test_leaves_by_depth_follow_expansions():
    tree = Tree(dim=2)
    tree.expand(0)
    tree.expand(2)
    assert [n.id for n in tree.leaves(1)] == [1, 3]
    assert [n.id for n in tree.leaves(2)] == [4, 5, 6]
    assert tree.depth == 2


def test_table_has_the_log_columns_one_row_per_node():
    tree = Tree(dim=2)
    tree.set_value(0, 1.0, EVALUATED)
    tree.expand(0)
    table = tree.table(sign=-1.0)
    assert set(table) == {"node_id", "parent", "depth", "lower", "upper", "center", "value", "state", "expanded"}
    assert all(len(col) == 4 for col in table.values())
    assert table["lower"].shape == table["upper"].shape == table["center"].shape == (4, 2)
    assert table["parent"].tolist() == [-1, 0, 0, 0]
    assert table["expanded"].tolist() == [True, False, False, False]
    assert table["state"].tolist() == ["evaluated", "pending", "inherited", "pending"]
    assert table["value"][0] == -1.0 and math.isnan(table["value"][1])


def test_unknown_state_is_refused():
    with pytest.raises(ValueError, match="unknown node state"):
        Tree(dim=1).set_value(0, 1.0, "done")


def test_table_follows_the_tree_as_it_grows():
    tree = Tree(dim=2)
    tree.expand(0)
    tree.table()
    tree.expand(3)
    tree.set_value(3, 4.0, EVALUATED)
    table = tree.table()
    assert len(table["node_id"]) == 7 and table["expanded"][3] and table["value"][3] == 4.0
    for key in ("lower", "upper", "center"):
        assert np.array_equal(table[key], np.array([getattr(n, key) for n in tree.nodes]))


def test_the_side_chooser_is_offered_every_splittable_side_and_decides():
    offered = []

    def last(node, sides):
        offered.append(sides)
        return sides[-1]

    tree = Tree(dim=3, choose_side=last)
    tree.set_value(0, 0.0, "evaluated")
    assert tree.split_side(tree.root) == 2 and offered == [[0, 1, 2]]
    left = tree.expand(0, k=3)[0]
    assert tree.split_side(left) == 2 and offered[-1] == [0, 1, 2]


def test_widest_sides_are_those_of_largest_width_or_weighted_width():
    tree = Tree(dim=3)
    tree.set_value(0, 0.0, "evaluated")
    left = tree.expand(0, k=3)[0]  # a third as wide along side 0
    assert widest(left, [0, 1, 2]) == [1, 2]
    assert widest(left, [0, 1, 2], weights=np.array([4.0, 1.0, 1.0])) == [0]


def test_new_centres_are_those_a_split_adds_beside_the_middle_child():
    tree = Tree(dim=2)
    node = tree.nodes[0]
    preview = tree.new_centers(node, k=3)
    children = tree.expand(0, k=3)
    assert [c.tolist() for c in preview] == [children[0].center.tolist(), children[2].center.tolist()]
