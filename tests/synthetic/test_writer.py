"""Determinism of the generator and the on-disk dataset: layout, bytes, resume, readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vpsbench.errors import InputError
from vpsbench.formats.png import read_png
from vpsbench.formats.step import read_step_png
from vpsbench.synthetic import SyntheticConfig, read_camera, read_cues, render_video, write_dataset

TINY = SyntheticConfig(videos=3, frames=3, height=40, width=80, seed=5)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def test_same_inputs_give_identical_arrays_and_other_inputs_differ() -> None:
    first = list(render_video(TINY, "val", 1))
    second = list(render_video(TINY, "val", 1))
    for a, b in zip(first, second, strict=True):
        for name in ("image", "semantic", "instance", "depth", "moving", "camera_to_world"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        for name in ("flow_forward", "flow_backward"):
            flow_a, flow_b = getattr(a, name), getattr(b, name)
            assert (flow_a is None) == (flow_b is None)
            assert flow_a is None or np.array_equal(flow_a, flow_b, equal_nan=True), name
    train = next(render_video(TINY, "train", 1))
    other_seed = next(
        render_video(SyntheticConfig(videos=3, frames=3, height=40, width=80, seed=6), "val", 1)
    )
    other_video = next(render_video(TINY, "val", 2))
    for other in (train, other_seed, other_video):
        assert not np.array_equal(first[0].image, other.image)


def test_unknown_split_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        next(render_video(TINY, "nonsense", 0))


def test_written_bytes_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    write_dataset(tmp_path / "one", TINY, splits=("val", "train"), workers=1)
    write_dataset(
        tmp_path / "two",
        TINY,
        splits=("val", "train"),
        workers=2,
        progress=lambda split, done, total: calls.append((split, done, total)),
    )
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert one == two
    assert len(one) == 2 * TINY.videos * (3 * TINY.frames + 1) + 1
    assert sorted(calls) == sorted(
        (split, done, 3) for split in ("val", "train") for done in (1, 2, 3)
    )


def test_layout_and_readers_round_trip(tmp_path: Path) -> None:
    write_dataset(tmp_path, TINY)
    frames = list(render_video(TINY, "val", 2))
    for index, frame in enumerate(frames):
        name = f"{index:06d}"
        image = read_png(tmp_path / "images" / "val" / "0002" / f"{name}.png")
        assert np.array_equal(image, frame.image)
        panoptic = read_step_png(tmp_path / "panoptic_maps" / "val" / "0002" / f"{name}.png")
        assert np.array_equal(panoptic.semantic, frame.semantic)
        assert np.array_equal(panoptic.instance, frame.instance)
        cues = read_cues(tmp_path, "val", "0002", name)
        assert np.array_equal(cues["depth"], frame.depth)
        assert np.array_equal(cues["moving"], frame.moving)
        assert ("flow_forward" in cues) == (frame.flow_forward is not None)
        assert ("flow_backward" in cues) == (frame.flow_backward is not None)
        if frame.flow_forward is not None:
            assert np.array_equal(cues["flow_forward"], frame.flow_forward, equal_nan=True)
        with np.load(tmp_path / "cues" / "val" / "0002" / f"{name}.npz") as archive:
            assert archive["moving"].dtype == np.uint8
    camera = read_camera(tmp_path, "val", 2)
    assert camera["fps"] == 10 and "x forward" in camera["convention"]
    assert np.array_equal(camera["intrinsics"], frames[0].intrinsics)
    assert np.array_equal(camera["camera_to_world"], np.stack([f.camera_to_world for f in frames]))
    manifest = json.loads((tmp_path / "synthetic.json").read_text())
    config = {"videos": 3, "frames": 3, "height": 40, "width": 80, "seed": 5}
    assert {key: manifest[key] for key in config} == config
    assert manifest["format_version"] == 1 and manifest["fps"] == 10


def test_resume_restores_missing_files_with_identical_bytes(tmp_path: Path) -> None:
    write_dataset(tmp_path, TINY)
    before = _tree(tmp_path)
    (tmp_path / "cues" / "val" / "0001" / "camera.json").unlink()
    (tmp_path / "images" / "val" / "0001" / "000001.png").unlink()
    (tmp_path / "cues" / "val" / "0001" / "000002.npz").unlink()
    untouched = tmp_path / "images" / "val" / "0000" / "000000.png"
    stamp = untouched.stat().st_mtime_ns
    calls: list[tuple[str, int, int]] = []
    write_dataset(
        tmp_path, TINY, progress=lambda split, done, total: calls.append((split, done, total))
    )
    assert _tree(tmp_path) == before
    assert untouched.stat().st_mtime_ns == stamp  # finished videos are skipped, not rewritten
    assert calls == [("val", 1, 3), ("val", 2, 3), ("val", 3, 3)]


def test_a_root_with_another_config_is_refused(tmp_path: Path) -> None:
    write_dataset(tmp_path, SyntheticConfig(videos=1, frames=1, height=16, width=32))
    with pytest.raises(InputError, match=r"synthetic\.json"):
        write_dataset(tmp_path, SyntheticConfig(videos=1, frames=1, height=16, width=32, seed=1))


def test_readers_report_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"000000\.npz: file not found"):
        read_cues(tmp_path, "val", 0, 0)
    with pytest.raises(InputError, match=r"camera\.json: file not found"):
        read_camera(tmp_path, "val", 0)
    write_dataset(tmp_path, SyntheticConfig(videos=1, frames=2, height=16, width=32))
    cues = tmp_path / "cues" / "val" / "0000" / "000001.npz"
    cues.write_bytes(cues.read_bytes()[:100])
    with pytest.raises(InputError, match=r"000001\.npz: corrupt"):
        read_cues(tmp_path, "val", 0, 1)
    camera = tmp_path / "cues" / "val" / "0000" / "camera.json"
    camera.write_text('{"intrinsics": [[1, 0], [0, 1]], "camera_to_world": [], "fps": 10}')
    with pytest.raises(InputError, match="'intrinsics' must be 3x3"):
        read_camera(tmp_path, "val", 0)
    camera.write_text("{not json")
    with pytest.raises(InputError, match=r"camera\.json: corrupt"):
        read_camera(tmp_path, "val", 0)
    np.savez(cues, depth=np.zeros((2, 2), np.float64), moving=np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="'depth' must be float32"):
        read_cues(tmp_path, "val", 0, 1)
