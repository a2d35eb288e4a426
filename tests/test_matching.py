"""Pseudo-class matching (paper Sec. 3.3) on hand-built overlap matrices."""

from __future__ import annotations

import numpy as np
import pytest

from vpsbench.matching import MatchingMode, match_pseudo_classes

# Ground truth: classes 0 (road, stuff), 1 (sky, stuff), 2 (car, thing), 3 (person, thing).
GT_CLASSES = (0, 1, 2, 3)
GT_THINGS = (2, 3)
# Pseudo-classes 0..4; 3 and 4 carry instances (things).
OVERLAP = np.array(
    [
        [90, 5, 50, 0],  # stuff pseudo 0: mostly road, but also much car
        [10, 80, 0, 0],  # stuff pseudo 1: sky
        [70, 0, 0, 0],  # stuff pseudo 2: road again (surplus)
        [0, 0, 60, 10],  # thing pseudo 3: car
        [0, 0, 40, 5],  # thing pseudo 4: car again, a bit of person
    ]
)
PSEUDO_THINGS = np.array([False, False, False, True, True])


def test_thing_stuff_hungarian_keeps_kinds_and_sends_surplus_to_argmax() -> None:
    matching = match_pseudo_classes(OVERLAP, PSEUDO_THINGS, GT_CLASSES, GT_THINGS)
    # Stuff: Hungarian on [[90,5],[10,80],[70,0]] picks 0→road, 1→sky (170); 2 is surplus → road.
    # Things: Hungarian on [[60,10],[40,5]]: 3→car,4→person (65) beats 3→person,4→car (50).
    assert matching.as_dict() == {0: 0, 1: 1, 2: 0, 3: 2, 4: 3}


def test_plain_hungarian_may_cross_kinds() -> None:
    matching = match_pseudo_classes(
        OVERLAP, PSEUDO_THINGS, GT_CLASSES, GT_THINGS, MatchingMode.HUNGARIAN
    )
    # Enumerating by hand, the best one-to-one total is 0→road(90) 1→sky(80) 3→car(60)
    # 4→person(5) = 235 (e.g. 2→road 1→sky 0→car 3→person gives only 210); 2 is surplus → road.
    assert matching.as_dict() == {0: 0, 1: 1, 2: 0, 3: 2, 4: 3}


def test_plain_hungarian_crosses_kinds_when_that_gains_overlap() -> None:
    overlap = np.array([[0, 0, 100, 0], [50, 40, 0, 0], [0, 0, 0, 30]])
    things = np.array([False, True, True])  # stuff pseudo 0 is really a car
    paper = match_pseudo_classes(overlap, things, GT_CLASSES, GT_THINGS)
    plain = match_pseudo_classes(overlap, things, GT_CLASSES, GT_THINGS, "hungarian")
    assert paper.as_dict()[0] in (0, 1)  # stuff stays stuff
    assert plain.as_dict()[0] == 2  # plain matching sends it to car


def test_majority_is_argmax_per_pseudo_class() -> None:
    matching = match_pseudo_classes(OVERLAP, PSEUDO_THINGS, GT_CLASSES, GT_THINGS, "majority")
    assert matching.as_dict() == {0: 0, 1: 1, 2: 0, 3: 2, 4: 2}


def test_one_to_one_sends_surplus_to_void() -> None:
    matching = match_pseudo_classes(OVERLAP, PSEUDO_THINGS, GT_CLASSES, GT_THINGS, "one-to-one")
    assert matching.as_dict() == {0: 0, 1: 1, 2: -1, 3: 2, 4: 3}


def test_none_is_identity_on_evaluated_classes() -> None:
    overlap = np.zeros((6, 4), dtype=np.int64)
    matching = match_pseudo_classes(overlap, np.zeros(6, bool), GT_CLASSES, GT_THINGS, "none")
    assert matching.as_dict() == {0: 0, 1: 1, 2: 2, 3: 3, 4: -1, 5: -1}


def test_absent_pseudo_class_cannot_take_a_ground_truth_class() -> None:
    overlap = np.array([[0, 0], [30, 0], [0, 20]])  # pseudo 0 never predicted
    matching = match_pseudo_classes(overlap, np.zeros(3, bool), (0, 1), ())
    assert matching.as_dict() == {0: -1, 1: 0, 2: 1}


def test_ties_go_to_the_lowest_class_id() -> None:
    overlap = np.array([[10, 10], [10, 10], [10, 10]])
    first = match_pseudo_classes(overlap, np.zeros(3, bool), (0, 1), ())
    again = match_pseudo_classes(overlap, np.zeros(3, bool), (0, 1), ())
    assert first.as_dict() == again.as_dict()
    assert first.as_dict()[2] == 0  # the surplus pseudo-class goes to the lower id


def test_pseudo_things_without_ground_truth_things_go_to_void() -> None:
    overlap = np.array([[5, 1], [3, 4]])
    matching = match_pseudo_classes(overlap, np.array([False, True]), (0, 1), ())
    assert matching.as_dict() == {0: 0, 1: -1}


def test_overlap_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="columns"):
        match_pseudo_classes(np.zeros((2, 3)), np.zeros(2, bool), (0, 1), ())
