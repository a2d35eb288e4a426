"""vpsbench's SORT reproduces the original ``sort.py`` (abewley/sort) on MOT15 detections.

``../shared/reference-data/sort-mot15`` holds public MOT15 detections (``det/``) and what the
unmodified original outputs on them with ``max_age=1, min_hits=3, iou_threshold=0.3``
(``expected/``). vpsbench's tracker runs through its public API on every sequence found there and
must give the same rows in every frame: the same number of tracks, ids equal up to one consistent
one-to-one relabelling over the whole sequence, and boxes equal to 1e-6.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.equivalence.upstream import REFERENCE_DATA, require_data
from vpsbench.tracking.sort import Detection, Sort, SortConfig

DATA = "sort-mot15"
BOX_TOLERANCE = 1e-6
SEQUENCES = sorted(path.stem for path in (REFERENCE_DATA / DATA / "det").glob("*.txt"))

Rows = dict[int, dict[int, np.ndarray]]  # frame -> {track id: (x1, y1, x2, y2)}


def run_vpsbench_sort(detection_file: Path) -> Rows:
    """vpsbench's SORT on a MOTChallenge detection file, called once per frame as the original."""
    table = np.loadtxt(detection_file, delimiter=",", ndmin=2)
    tracker = Sort(SortConfig(max_age=1, min_hits=3, iou_threshold=0.3))
    rows: Rows = {}
    for frame in range(1, int(table[:, 0].max()) + 1):
        detections = [
            Detection((x, y, x + width, y + height), score)
            for x, y, width, height, score in table[table[:, 0] == frame, 2:7].tolist()
        ]
        output = tracker.update(detections)
        rows[frame] = {tracked.track_id: np.array(tracked.box) for tracked in output}
        assert len(rows[frame]) == len(output), f"frame {frame}: one track output twice"
    return rows


def read_expected(expected_file: Path) -> Rows:
    """The original's output rows ``frame,id,x1,y1,x2,y2`` grouped by frame."""
    rows: Rows = defaultdict(dict)
    for line in expected_file.read_text().splitlines():
        if line.strip():
            frame, track_id, *box = line.split(",")
            assert int(track_id) not in rows[int(frame)], f"frame {frame}: id {track_id} twice"
            rows[int(frame)][int(track_id)] = np.array([float(value) for value in box])
    return rows


def id_relabelling(ours: Rows, expected: Rows) -> dict[int, int]:
    """Our id -> the original's id: the candidates whose boxes agree in every frame both show.

    Each of our tracks keeps the expected ids whose box equals its own (to the tolerance) in
    every frame it is output; a track with no candidate left is a mismatch. Candidates shared by
    several tracks (identical boxes throughout) are resolved greedily; the caller then checks
    that the result is a bijection and reproduces every row.
    """
    candidates: dict[int, set[int]] = {}
    for frame, our_rows in ours.items():
        expected_rows = expected.get(frame, {})
        for our_id, box in our_rows.items():
            close = {
                expected_id
                for expected_id, expected_box in expected_rows.items()
                if np.abs(expected_box - box).max() <= BOX_TOLERANCE
            }
            candidates[our_id] = candidates[our_id] & close if our_id in candidates else close
            assert candidates[our_id], (
                f"frame {frame}: our track {our_id} at {box.tolist()} matches no track of the "
                f"original that has agreed with it so far (original rows: "
                f"{ {k: v.tolist() for k, v in expected_rows.items()} })"
            )
    mapping: dict[int, int] = {}
    taken: set[int] = set()
    for our_id in sorted(candidates, key=lambda track: (len(candidates[track]), track)):
        free = sorted(candidates[our_id] - taken)
        assert free, f"our track {our_id}: every candidate {candidates[our_id]} is taken"
        mapping[our_id] = free[0]
        taken.add(free[0])
    return mapping


@pytest.mark.parametrize("sequence", SEQUENCES or ["(no sequences)"])
def test_sort_matches_the_original_row_for_row(sequence: str) -> None:
    """Every frame: same track count, ids up to one bijection, boxes to 1e-6."""
    folder = require_data(DATA)
    detection_file, expected_file = folder / "det" / f"{sequence}.txt", folder / "expected"
    if not detection_file.exists():
        pytest.skip(f"no detection files in {folder / 'det'}")
    ours = run_vpsbench_sort(detection_file)
    expected = read_expected(expected_file / f"{sequence}.txt")
    assert set(expected) <= set(ours), "the original outputs frames beyond the last detection"
    assert sum(map(len, expected.values())) > 0, "the expected output is empty"
    mapping = id_relabelling(ours, expected)
    assert len(set(mapping.values())) == len(mapping), "the id relabelling is not one-to-one"
    for frame in sorted(ours):
        relabelled = {mapping[our_id]: box for our_id, box in ours[frame].items()}
        expected_rows = expected.get(frame, {})
        assert sorted(relabelled) == sorted(expected_rows), (
            f"frame {frame}: tracks {sorted(relabelled)} (relabelled) != "
            f"original {sorted(expected_rows)}"
        )
        for expected_id, box in relabelled.items():
            np.testing.assert_allclose(
                box,
                expected_rows[expected_id],
                rtol=0,
                atol=BOX_TOLERANCE,
                err_msg=f"frame {frame}, track {expected_id}",
            )
