"""Pictures: palette colours, track tints, outlines, tiling, and the `visualize` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import layouts
from tests.cli_runner import run_cli
from vpsbench.formats.png import read_png
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame
from vpsbench.visualize import (
    CITYSCAPES_COLORS,
    OUTLINE_COLOR,
    class_palette,
    colorize,
    comparison_strip,
)


def test_colorize_uses_the_palette_outlines_segments_and_tints_tracks() -> None:
    palette = class_palette(19, cityscapes=True)
    frame = PanopticFrame.from_arrays(
        [[0, 0, 0, 13, 13, 13], [0, 0, 0, 13, 13, 13], [255, 255, 0, 13, 13, 13]],
        [[0, 0, 0, 4, 4, 4], [0, 0, 0, 4, 4, 4], [0, 0, 0, 4, 4, 4]],
    )
    image = colorize(frame, palette, frozenset({13}))
    assert tuple(image[0, 0]) == CITYSCAPES_COLORS[0]  # road, interior pixel
    assert tuple(image[1, 3]) == OUTLINE_COLOR  # left edge of the car
    assert tuple(image[2, 1]) == OUTLINE_COLOR  # void pixel right below road: outlined
    car = image[1, 4]
    assert tuple(car) not in (CITYSCAPES_COLORS[13], OUTLINE_COLOR)  # tinted by its track
    other_track = colorize(
        PanopticFrame.from_arrays(frame.semantic, np.where(frame.instance, 5, 0)),
        palette,
        frozenset({13}),
    )
    assert tuple(other_track[1, 4]) != tuple(car)  # another id, another tint


def test_void_is_black_and_unknown_classes_too() -> None:
    palette = class_palette(3, cityscapes=False)
    image = colorize(
        PanopticFrame.from_arrays([[255, 255], [-1, -1]], [[0, 0], [0, 0]]), palette, frozenset()
    )
    assert image[0, 0].tolist() == [0, 0, 0]


def test_strip_tiles_rows_and_columns() -> None:
    tile = np.full((10, 20, 3), 200, dtype=np.uint8)
    strip = comparison_strip([[tile, tile, tile], [tile, tile, tile]], ["a", "b", "c"], gap=4)
    assert strip.shape == (14 + 2 * (10 + 4), 3 * 20 + 2 * 4, 3)
    assert strip[14, 0].tolist() == [200, 200, 200]  # first tile starts below the title bar


def test_visualize_command_writes_a_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = PanopticFrame.from_arrays([[0, 0, 13, 13]] * 3, [[0, 0, 2, 2]] * 3)
    root = layouts.write_kitti_step(tmp_path / "data", "val", {"0002": [truth] * 3})
    for t in range(3):
        write_step_png(
            tmp_path / "preds" / "0002" / f"{t:06d}.png",
            PanopticFrame.from_arrays([[4, 4, 7, 7]] * 3, [[0, 0, 1, 1]] * 3),
        )
    out = tmp_path / "strip.png"
    code, stdout, _ = run_cli(
        [
            "visualize",
            "--pred",
            str(tmp_path / "preds"),
            "--dataset",
            "kitti-step",
            "--root",
            str(root),
            "--sequence",
            "0002",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and "picture written" in stdout
    picture = read_png(out)
    assert picture.shape == (14 + 3 * (3 + 4), 3 * 4 + 2 * 4, 3)
    args = ["visualize", "--pred", str(tmp_path / "preds"), "--dataset", "kitti-step"]
    args += ["--root", str(root), "--sequence", "0002", "--out", str(tmp_path / "x.png")]
    code, _, err = run_cli([*args, "--frames", "0,a"], capsys)
    assert code != 0 and err.strip().splitlines() == [
        "error: --frames expects comma-separated frame indices, got 'a'"
    ]
    assert not (tmp_path / "x.png").exists()
