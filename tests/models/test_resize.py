"""detectron2's ResizeShortestEdge rule on hand-computed sizes (tests/equivalence: 1.8k more)."""

from __future__ import annotations

import numpy as np
import pytest

from vpsbench.models.resize import resize_frame, shortest_edge_size


@pytest.mark.parametrize(
    ("size", "limits", "expected"),
    [
        ((480, 640), (800, 1333), (800, 1067)),  # 640 · 800/480 = 1066.67 → 1067
        ((1024, 2048), (800, 1333), (667, 1333)),  # 1600 > 1333: both shrink by 1333/1600
        ((640, 480), (800, 1333), (1067, 800)),  # portrait: the width is the short side
        ((360, 640), (360, 1333), (360, 640)),  # already there
        ((100, 200), (0, 1333), (100, 200)),  # min_size 0 keeps the frame
    ],
)
def test_output_size_follows_detectron2(
    size: tuple[int, int], limits: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert shortest_edge_size(*size, *limits) == expected


def test_resize_frame_keeps_uint8_and_returns_the_frame_when_the_size_is_unchanged() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    assert resize_frame(frame, (6, 10)) is frame
    resized = resize_frame(frame, (3, 5))
    assert resized.shape == (3, 5, 3) and resized.dtype == np.uint8
    constant = np.full((6, 10, 3), 77, dtype=np.uint8)
    assert (resize_frame(constant, (9, 15)) == 77).all()
