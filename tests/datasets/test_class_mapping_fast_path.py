"""The run-based class mapping equals a plain per-pixel lookup, errors included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpsbench.datasets.common import (
    INVALID_ID,
    evaluation_frame,
    lookup_table,
    map_classes,
    native_to_evaluation_frame,
)
from vpsbench.errors import InputError
from vpsbench.formats.step import decode_step
from vpsbench.video import PanopticFrame

THINGS = frozenset({11, 12, 13})


def per_pixel(native: PanopticFrame, table: np.ndarray) -> PanopticFrame:
    """The independent oracle: a lookup per pixel and a thing test per pixel."""
    classes = table[native.semantic]
    is_thing = np.isin(classes, list(THINGS))
    return PanopticFrame.from_arrays(classes, np.where(is_thing, native.instance, 0))


def blocky(rng: np.random.Generator, shape: tuple[int, int], values: list[int]) -> np.ndarray:
    cells = rng.choice(values, (shape[0], shape[1] // 6 + 1))
    array = np.repeat(cells, 6, axis=1)[:, : shape[1]]
    noise = rng.random(shape) < 0.03
    array[noise] = rng.choice(values, int(noise.sum()))
    return array


TABLES = {
    "identity": lookup_table({**{c: c for c in range(19)}, 255: 255}, 256),
    "renaming": lookup_table({**{c: 18 - c for c in range(19)}, 7: 255, 255: 255}, 256),
}


@pytest.mark.parametrize("table_name", sorted(TABLES))
@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (7, 5), (33, 47)])
def test_fused_mapping_equals_lookup_per_pixel(table_name: str, shape: tuple[int, int]) -> None:
    table = TABLES[table_name]
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    native = PanopticFrame.from_arrays(
        blocky(rng, shape, [0, 2, 7, 11, 12, 13, 18, 255]), rng.integers(0, 2000, shape)
    )
    fused = native_to_evaluation_frame(native, table, THINGS, Path("x.png"))
    expected = per_pixel(native, table)
    np.testing.assert_array_equal(fused.semantic, expected.semantic)
    np.testing.assert_array_equal(fused.instance, expected.instance)
    assert fused.semantic.dtype == fused.instance.dtype == np.int32
    old = evaluation_frame(
        map_classes(native.semantic, table, Path("x.png")), native.instance, THINGS
    )
    np.testing.assert_array_equal(fused.instance, old.instance)


@pytest.mark.parametrize("bad", [19, 254, 256, -3])
def test_fused_mapping_names_the_same_bad_ids(bad: int) -> None:
    table = TABLES["identity"]
    semantic = np.array([[0, 0, bad, 1], [bad, 19 if bad != 19 else 2, 255, 255]])
    native = PanopticFrame.from_arrays(semantic, np.zeros_like(semantic))
    with pytest.raises(InputError) as fused:
        native_to_evaluation_frame(native, table, THINGS, Path("f.png"))
    with pytest.raises(InputError) as plain:
        map_classes(native.semantic, table, Path("f.png"))
    assert str(fused.value) == str(plain.value)
    assert str(bad) in str(fused.value)


def test_empty_frame() -> None:
    empty = PanopticFrame.from_arrays(np.zeros((0, 4)), np.zeros((0, 4)))
    frame = native_to_evaluation_frame(empty, TABLES["identity"], THINGS, Path("e.png"))
    assert frame.shape == (0, 4)
    assert INVALID_ID not in frame.semantic


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (16, 9)])
def test_step_split_equals_channel_arithmetic(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[1])
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 255, 255)
    frame = decode_step(rgb)
    np.testing.assert_array_equal(frame.semantic, rgb[:, :, 0].astype(np.int64))
    expected = rgb[:, :, 1].astype(np.int64) * 256 + rgb[:, :, 2]
    np.testing.assert_array_equal(frame.instance, expected)
    strided = decode_step(np.asfortranarray(rgb))  # not C-contiguous: the general path
    np.testing.assert_array_equal(strided.instance, expected)
    assert frame.semantic.dtype == frame.instance.dtype == np.int32
