"""The demo's documented noise model does what its docstring says, deterministically."""

from __future__ import annotations

import numpy as np

from vpsbench.demo import CROWD_TRACK, TrackFate, _pseudo_class_table, perturb_frame, perturb_video
from vpsbench.video import PanopticFrame

ROAD, PERSON, CAR = 0, 11, 13


def street(car_id: int = 3) -> PanopticFrame:
    """20×20: road everywhere, a 6×6 car at rows 4..9, cols 4..9, a crowd person at the right."""
    semantic = np.full((20, 20), ROAD)
    instance = np.zeros((20, 20), dtype=int)
    semantic[4:10, 4:10] = CAR
    instance[4:10, 4:10] = car_id
    semantic[12:16, 15:18] = PERSON  # instance 0: crowd
    return PanopticFrame.from_arrays(semantic, instance)


def no_fate() -> TrackFate:
    return TrackFate(switch_at=None, split=False, merge_into=None, missed_frames=frozenset())


def test_classes_are_renamed_and_stuff_has_no_instances() -> None:
    table = _pseudo_class_table()
    out = perturb_frame(street(), 0, {(CAR, 3): no_fate()}, np.random.default_rng(0))
    assert out.semantic[0, 0] == table[ROAD]
    assert out.semantic[6, 6] == table[CAR]
    assert set(np.unique(out.semantic)) <= set(range(27))
    assert not out.instance[out.semantic == table[ROAD]].any()


def test_identity_switch_split_and_miss() -> None:
    rng = np.random.default_rng(0)
    switching = {
        (CAR, 3): TrackFate(switch_at=2, split=False, merge_into=None, missed_frames=frozenset())
    }
    assert perturb_frame(street(), 1, switching, rng).instance[6, 6] == 3
    assert perturb_frame(street(), 2, switching, rng).instance[6, 6] == 503
    split = {(CAR, 3): TrackFate(None, True, None, frozenset())}
    halves = perturb_frame(street(), 0, split, rng).instance
    assert halves[5, 6] == 3 and halves[9, 6] == 253
    missed = {(CAR, 3): TrackFate(None, False, None, frozenset({0}))}
    gone = perturb_frame(street(), 0, missed, rng)
    assert gone.instance[6, 6] == 0 and gone.semantic[6, 6] == _pseudo_class_table()[ROAD]


def test_crowd_becomes_one_extra_track() -> None:
    out = perturb_frame(street(), 0, {(CAR, 3): no_fate()}, np.random.default_rng(0))
    assert out.instance[13, 16] == CROWD_TRACK


def test_videos_are_deterministic_per_seed() -> None:
    video = [street() for _ in range(6)]
    first = perturb_video(video, seed=5)
    again = perturb_video(video, seed=5)
    other = perturb_video(video, seed=6)
    assert all(
        np.array_equal(a.semantic, b.semantic) and np.array_equal(a.instance, b.instance)
        for a, b in zip(first, again, strict=True)
    )
    assert any(
        not np.array_equal(a.semantic, b.semantic) for a, b in zip(first, other, strict=True)
    )
