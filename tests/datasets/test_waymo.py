"""Waymo PVPS loader: CUPS's cs19 table, native space, tracked/cameras maps, order, verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.layouts import write_image, write_waymo
from vpsbench.datasets import DatasetNotFoundError, Problem, open_dataset
from vpsbench.datasets.waymo import Waymo
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.divisor_png import write_label_png
from vpsbench.video import FrameRef, PanopticFrame

CONTEXT = "1024360143612057520_3580_000_3600_000"
CUPS_FOLDER = "segment-11048712972908676520_545_000_565_000_with_camera_labels"

# Native Waymo frame, 8x12 (pairs of rows):
#   road 20 | lane marker 21
#   car 2 #500 (5 px wide) | car 2 #501 (3) | pedestrian 9 #7 (4)
#   trailer 8 #9 (6) | bicycle 6, no instance (3) | sky 25 (3)
#   undefined 0 (6) | building 19 (6)
NATIVE_SEMANTIC = np.repeat(
    np.array(
        [
            [20] * 6 + [21] * 6,
            [2] * 8 + [9] * 4,
            [8] * 6 + [6] * 3 + [25] * 3,
            [0] * 6 + [19] * 6,
        ]
    ),
    2,
    axis=0,
)
NATIVE_INSTANCE = np.repeat(
    np.array(
        [
            [0] * 12,
            [500] * 5 + [501] * 3 + [7] * 4,
            [9] * 6 + [0] * 6,
            [0] * 12,
        ]
    ),
    2,
    axis=0,
)
CAR_501 = NATIVE_INSTANCE == 501


def native_frame() -> PanopticFrame:
    """The native frame every test context repeats."""
    return PanopticFrame.from_arrays(NATIVE_SEMANTIC, NATIVE_INSTANCE)


def make_dataset(root: Path, with_maps: bool = True, **protocol: str) -> Waymo:
    """Two contexts (one in CUPS's folder naming) with frames 8, 9, 10 and optional maps."""
    contexts = {CONTEXT: [native_frame()] * 3, CUPS_FOLDER: [native_frame()] * 3}
    cameras = np.ones((8, 12), dtype=np.uint8)
    cameras[:, 6:] = 2
    tracked = np.where(CAR_501, 0, 1).astype(np.uint8)
    write_waymo(
        root,
        "validation",
        contexts,
        cameras={name: [cameras] * 3 for name in contexts} if with_maps else None,
        tracked={name: [tracked] * 3 for name in contexts} if with_maps else None,
        frame_indices={name: [8, 9, 10] for name in contexts},
    )
    return Waymo(root, protocol)


def first_frame(dataset: Waymo) -> FrameRef:
    """The first frame of the first context."""
    return dataset.sequences("validation")[0].frames[0]


def has_problem(problems: list[Problem], path: Path, text: str) -> bool:
    """Whether verify reported ``text`` for ``path``."""
    return any(p.path == str(path) and text in p.message for p in problems)


def test_frames_sort_numerically(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    sequences = dataset.sequences("validation")
    assert [s.name for s in sequences] == [CONTEXT, CUPS_FOLDER]
    assert [f.name for f in sequences[0].frames] == ["8", "9", "10"]
    assert [f.index for f in sequences[0].frames] == [0, 1, 2]
    frame = sequences[0].frames[2]
    assert (
        dataset.image_path("validation", frame)
        == tmp_path / "validation" / CONTEXT / "10_image.png"
    )


def test_cs19_uses_cups_table_and_untracked_is_crowd(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    truth = dataset.load_ground_truth("validation", first_frame(dataset))
    expected_semantic = np.repeat(
        np.array(
            [
                [0] * 12,  # road and lane marker → road
                [13] * 8 + [11] * 4,
                [255] * 6 + [18] * 3 + [10] * 3,  # trailer → void, bicycle, sky
                [255] * 6 + [2] * 6,
            ]
        ),
        2,
        axis=0,
    )
    expected_instance = np.repeat(
        np.array([[0] * 12, [500] * 5 + [0] * 3 + [7] * 4, [0] * 12, [0] * 12]), 2, axis=0
    )
    np.testing.assert_array_equal(truth.semantic, expected_semantic)
    np.testing.assert_array_equal(truth.instance, expected_instance)
    space = dataset.label_space()
    assert space.evaluated_classes == tuple(c for c in range(19) if c not in (3, 4, 9))
    assert space.thing_classes == frozenset(range(11, 19))


def test_untracked_keep(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, untracked="keep")
    truth = dataset.load_ground_truth("validation", first_frame(dataset))
    assert (truth.instance[CAR_501] == 501).all()


def test_native_waymo_space(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, label_space="waymo", untracked="keep")
    truth = dataset.load_ground_truth("validation", first_frame(dataset))
    np.testing.assert_array_equal(
        truth.semantic, np.where(NATIVE_SEMANTIC == 0, 255, NATIVE_SEMANTIC)
    )
    bicycle = NATIVE_SEMANTIC == 6
    np.testing.assert_array_equal(truth.instance, np.where(bicycle, 0, NATIVE_INSTANCE))
    assert (truth.instance[NATIVE_SEMANTIC == 8] == 9).all()  # trailer is a Waymo thing
    space = dataset.label_space()
    assert space.num_classes == 29
    assert space.thing_classes == frozenset({2, 3, 4, 5, 8, 9, 10, 11})
    assert 0 not in space.evaluated_classes


def test_min_instance_area_ignores_small_instances(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, untracked="keep", min_instance_area="8")
    truth = dataset.load_ground_truth("validation", first_frame(dataset))
    assert (truth.semantic[CAR_501] == 255).all()  # 6 pixels
    assert (truth.instance[CAR_501] == 0).all()
    assert (truth.instance[NATIVE_INSTANCE == 7] == 7).all()  # exactly 8 pixels: kept
    with pytest.raises(VpsbenchError, match="non-negative integer"):
        Waymo(tmp_path, {"min_instance_area": "small"})


def test_camera_weights(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, weights="cameras")
    weights = dataset.load_pixel_weights("validation", first_frame(dataset))
    assert weights is not None
    np.testing.assert_array_equal(weights[:, :6], 1.0)
    np.testing.assert_array_equal(weights[:, 6:], 0.5)
    assert make_dataset(tmp_path).load_pixel_weights("validation", first_frame(dataset)) is None


def test_missing_camera_map_is_an_input_error(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, with_maps=False, weights="cameras")
    with pytest.raises(InputError, match=r"8_cameras\.png"):
        dataset.load_pixel_weights("validation", first_frame(dataset))


def test_without_tracked_map_instances_stay(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, with_maps=False)
    truth = dataset.load_ground_truth("validation", first_frame(dataset))
    assert (truth.instance[CAR_501] == 501).all()


def test_type_outside_waymo_set_is_an_input_error(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    path = tmp_path / "validation" / CONTEXT / "8_semantic.png"
    write_label_png(path, np.full((8, 12), 29), bits=16)
    with pytest.raises(InputError, match="class ids 29") as error:
        dataset.load_ground_truth("validation", first_frame(dataset))
    assert error.value.path == str(path)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="absent"):
        Waymo(tmp_path / "absent").sequences("validation")
    (tmp_path / "waymo").mkdir()
    with pytest.raises(DatasetNotFoundError, match="validation"):
        Waymo(tmp_path / "waymo").verify("validation")


def test_verify_reports_every_problem(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, weights="cameras")
    context = tmp_path / "validation" / CONTEXT
    (context / "9_instance.png").unlink()
    (context / "9_cameras.png").unlink()
    (context / "readme.txt").write_text("stray")
    (context / "10_semantic.png").write_bytes(b"\x89PNG\r\n\x1a\ncut")
    write_image(context / "8_image.png", (8, 11))
    write_label_png(context / "8_tracked.png", np.ones((7, 12), dtype=np.uint8), bits=8)
    (tmp_path / "validation" / "not_a_context").mkdir()

    problems = dataset.verify("validation")

    assert has_problem(problems, context / "9_instance.png", "missing file")
    assert has_problem(problems, context / "9_cameras.png", "missing file")
    assert has_problem(problems, context / "readme.txt", "unexpected file")
    assert has_problem(problems, context / "10_semantic.png", "truncated")
    assert has_problem(problems, context / "8_image.png", "differs from its label")
    assert has_problem(problems, context / "8_tracked.png", "differs from the semantic map")
    assert has_problem(problems, context / "8_semantic.png", "expected 1920x1280")
    assert has_problem(problems, context, "3 labelled frames, expected 99")
    assert has_problem(
        problems,
        tmp_path / "validation" / "13982731384839979987_1680_000_1700_000",
        "missing context (60 frames)",
    )
    assert has_problem(problems, tmp_path / "validation" / "not_a_context", "not an official")
    # The CUPS folder name is recognised as an official context.
    assert not has_problem(problems, tmp_path / "validation" / CUPS_FOLDER, "not an official")
    missing = [p for p in problems if "missing context" in p.message]
    assert len(missing) == 18


def test_root_from_vpsbench_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path / "waymo")
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("VPSBENCH_DATA", str(tmp_path))
    dataset = open_dataset("waymo")
    assert dataset.root == tmp_path / "waymo"
    assert len(dataset.sequences("validation")) == 2


def test_root_from_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset(tmp_path / "pvps").root
    config = tmp_path / "config.toml"
    config.write_text(f'[datasets]\nwaymo = "{root.as_posix()}"\n')
    monkeypatch.setenv("VPSBENCH_CONFIG", str(config))
    monkeypatch.delenv("VPSBENCH_DATA", raising=False)
    dataset = open_dataset("waymo", protocol={"label_space": "waymo"})
    assert dataset.root == root
    assert dataset.label_space().name == "waymo"
