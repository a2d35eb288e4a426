"""Pictures: palette colours, track tints, outlines, tiling, and the `visualize` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import layouts
from tests.cli_runner import run_cli
from vpsbench.datasets.base import LabelSpace
from vpsbench.formats.png import read_png
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame
from vpsbench.visualize import (
    CITYSCAPES_COLORS,
    OUTLINE_COLOR,
    class_palette,
    colorize,
    comparison_strip,
    legend_entries,
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
    # title bar; 3 rows of (label bar + 3-pixel tiles + gap); legend road, car (one line each at
    # this width) and the note line
    assert picture.shape == (14 + 3 * (14 + 3 + 4) + 3 * 14, 3 * 4 + 2 * 4, 3)
    legend_top = 14 + 3 * (14 + 3 + 4)
    assert picture[legend_top + 4, 6].tolist() == list(CITYSCAPES_COLORS[0])  # road swatch
    assert picture[legend_top + 14 + 4, 6].tolist() == list(CITYSCAPES_COLORS[13])  # car swatch
    args = ["visualize", "--pred", str(tmp_path / "preds"), "--dataset", "kitti-step"]
    args += ["--root", str(root), "--sequence", "0002", "--out", str(tmp_path / "x.png")]
    code, _, err = run_cli([*args, "--frames", "0,a"], capsys)
    assert code != 0 and err.strip().splitlines() == [
        "error: --frames expects comma-separated frame indices, got 'a'"
    ]
    assert not (tmp_path / "x.png").exists()
    code, _, err = run_cli([*args[:-1], str(tmp_path)], capsys)
    assert code == 2 and err.strip().splitlines() == [
        f"error: {tmp_path}: --out names a folder; give a file name"
    ]


def test_legend_lists_the_classes_present_in_class_order() -> None:
    space = LabelSpace("t", ("road", "car", "sky", "person"), frozenset({1, 3}))
    palette = class_palette(4, cityscapes=False)
    frames = [
        PanopticFrame.from_arrays([[2, 2], [255, 0]], [[0, 0], [0, 0]]),
        PanopticFrame.from_arrays([[0, 3], [3, 3]], [[0, 1], [1, 1]]),
    ]
    entries = legend_entries(space, palette, frames)
    assert [name for name, _ in entries] == ["road", "sky", "person"]
    assert [color for _, color in entries] == [tuple(int(v) for v in palette[c]) for c in (0, 2, 3)]


def test_strip_labels_rows_and_draws_the_legend() -> None:
    tile = np.full((10, 200, 3), 200, dtype=np.uint8)
    legend = [("road", (1, 2, 3)), ("car", (4, 5, 6))]
    strip = comparison_strip(
        [[tile, tile], [tile, tile]], ["a", "b"], 4, ["seq 1 frame 0", "seq 1 frame 5"], legend
    )
    row_step = 14 + 10 + 4
    assert strip.shape == (14 + 2 * row_step + 14, 2 * 200 + 4, 3)  # both entries on one line
    label_bar = strip[14 : 14 + 14, :100]
    assert (label_bar != 32).any()  # the row label is drawn
    assert strip[14 + 14, 0].tolist() == [200, 200, 200]  # the tile starts below its label
    legend_top = 14 + 2 * row_step
    assert strip[legend_top + 5, 6].tolist() == [1, 2, 3]
    swatches = {tuple(p) for p in strip[legend_top + 5].tolist()}
    assert (4, 5, 6) in swatches
