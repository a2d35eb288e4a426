"""The Cityscapes label tables against the facts in shared/spec/datasets.md §0 and §1.4."""

from __future__ import annotations

from vpsbench.datasets.cityscapes_labels import (
    CS19_NAMES,
    CS19_THINGS,
    CS27_NAMES,
    CS27_THINGS,
    LABELS,
    TRAIN_ID_TO_CS27,
    cs27_label_space_from_train_ids,
    train_id_mapping,
)


def test_label_ids_are_complete() -> None:
    assert [label.label_id for label in LABELS] == list(range(34))
    assert all(label.cs27_id == 255 for label in LABELS[:7])
    assert [label.cs27_id for label in LABELS[7:]] == list(range(27))


def test_train_ids() -> None:
    assert len(CS19_NAMES) == 19
    assert CS19_NAMES[0] == "road"
    assert CS19_NAMES[10] == "sky"
    assert CS19_NAMES[18] == "bicycle"
    assert frozenset(range(11, 19)) == CS19_THINGS


def test_27_classes() -> None:
    assert len(CS27_NAMES) == 27
    assert CS27_NAMES[2] == "parking"
    assert CS27_NAMES[11] == "polegroup"
    assert CS27_NAMES[17] == "person"
    assert CS27_NAMES[26] == "bicycle"
    assert frozenset(range(17, 27)) == CS27_THINGS


def test_train_id_to_27_matches_the_spec_table() -> None:
    spec = {0: 0, 1: 1, 2: 4, 3: 5, 4: 6, 5: 10, 6: 12, 7: 13, 8: 14, 9: 15, 10: 16}
    spec |= {11: 17, 12: 18, 13: 19, 14: 20, 15: 21, 16: 24, 17: 25, 18: 26}
    assert spec == TRAIN_ID_TO_CS27
    assert train_id_mapping("cs27") == spec | {255: 255}
    assert train_id_mapping("cs19") == {i: i for i in range(19)} | {255: 255}


def test_27_class_space_for_train_id_ground_truth() -> None:
    space = cs27_label_space_from_train_ids()
    never = {2, 3, 7, 8, 9, 11, 22, 23}
    assert set(space.evaluated_classes) == set(range(27)) - never
    assert space.thing_classes == CS27_THINGS
    assert cs27_label_space_from_train_ids(frozenset({11, 13})).thing_classes == {17, 19}
