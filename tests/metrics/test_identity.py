"""IDF1/IDP/IDR equal TrackEval's Identity metric; hand cases (motmetrics: see test_clear.py)."""

from __future__ import annotations

import pytest

from tests.metrics.test_clear import _track
from tests.metrics.test_hota import CAR, HAND_SPACE, THINGS, random_tracking_split, score
from tests.metrics.trackeval_oracle import assert_matches_trackeval, trackeval_scores


@pytest.mark.parametrize("seed", range(8))
def test_identity_equals_trackeval_on_random_videos(seed: int) -> None:
    split = random_tracking_split(seed)
    compared = assert_matches_trackeval(
        score(split), trackeval_scores(split, THINGS, 255), "Identity", THINGS, 1e-9
    )
    assert compared > 50


def test_perfect_identity_is_one() -> None:
    summary = score({"s": _track([4, 4, 4, 4])}, HAND_SPACE).per_class[CAR].summary()
    assert (summary["IDF1"], summary["IDP"], summary["IDR"]) == (1.0, 1.0, 1.0)


def test_switch_halfway_gives_half_the_identity_matches() -> None:
    """Ids 1,1,1,2,2,2: the best one-to-one track assignment keeps 3 of 6 detections."""
    summary = score({"s": _track([1, 1, 1, 2, 2, 2])}, HAND_SPACE).per_class[CAR].summary()
    assert (summary["IDTP"], summary["IDFN"], summary["IDFP"]) == (3, 3, 3)
    assert summary["IDF1"] == pytest.approx(0.5)


def test_identity_across_sequences_sums_counts() -> None:
    split = {"a": _track([1, 1, 2]), "b": _track([5, None, 5])}
    result = score(split, HAND_SPACE)
    a, b = (result.per_sequence[n][CAR].summary() for n in ("a", "b"))
    total = result.per_class[CAR].summary()
    for field in ("IDTP", "IDFN", "IDFP"):
        assert total[field] == a[field] + b[field]
    assert total["IDF1"] == pytest.approx(
        total["IDTP"] / (total["IDTP"] + 0.5 * total["IDFN"] + 0.5 * total["IDFP"])
    )
