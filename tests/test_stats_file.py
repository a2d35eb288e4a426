"""``evaluate --save-stats`` and ``rescore``: saved statistics score like a direct evaluation.

The oracle is the direct ``evaluate`` of the same predictions (it reads every pixel again); a
rescore reads only the statistics file. Shards of sequence subsets must merge to the whole, and
overlapping or mismatched shards are refused with one line naming the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_cli
from tests.demo_split import assert_close, demo_split, without_timing
from vpsbench.datasets import open_dataset
from vpsbench.formats.step import write_step_png
from vpsbench.matching import MatchingMode

ALL = "stq,vpq,pq,hota,clear,identity"


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return demo_split(tmp_path_factory.mktemp("stats"), videos=4, frames=6, height=48, width=96)


@pytest.fixture(scope="module")
def truth_split(split: tuple[Path, Path]) -> tuple[Path, Path]:
    """The same split predicted with its ground-truth classes (what --matching none reads)."""
    root, pred = split
    dataset = open_dataset("synthetic", root)
    out = pred.parent / "truth"
    for sequence in dataset.sequences("val"):
        for frame in sequence.frames:
            truth = dataset.load_ground_truth("val", frame)
            write_step_png(out / sequence.name / f"{frame.name}.png", truth)
    return root, out


def _evaluate(
    split: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str, str]:
    root, pred = split
    args = ["evaluate", "-d", "synthetic", "--root", str(root), "--pred", str(pred), "--quiet"]
    return run_cli([*args, *extra], capsys)


def _ok(outcome: tuple[int, str, str]) -> None:
    code, _, err = outcome
    assert code == 0, err


@pytest.mark.parametrize("matching", [m.value for m in MatchingMode])
def test_rescore_equals_evaluate_for_every_matching(
    split: tuple[Path, Path],
    truth_split: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    matching: str,
) -> None:
    if matching == MatchingMode.NONE:
        split = truth_split  # predictions in ground-truth class ids
    stats = tmp_path / "stats.npz"
    _ok(_evaluate(split, capsys, "--metrics", "stq", "--save-stats", str(stats)))
    direct, rescored = tmp_path / "direct.json", tmp_path / "rescored.json"
    options = ["--matching", matching, "--metrics", ALL]
    _ok(_evaluate(split, capsys, *options, "--output", str(direct)))
    _ok(run_cli(["rescore", str(stats), *options, "--output", str(rescored)], capsys))
    assert_close(without_timing(direct), without_timing(rescored), 1e-12)


def test_rescore_under_matching_none_refuses_pseudo_class_ids(
    split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = tmp_path / "stats.npz"
    _ok(_evaluate(split, capsys, "--save-stats", str(stats)))
    code, _, err = run_cli(["rescore", str(stats), "--matching", "none"], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {stats}: sequence 0000 has class id ")
    assert err.rstrip().endswith("(--matching none reads ground-truth class ids)")


def test_shards_of_subsets_merge_to_the_whole(
    split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "whole.json"
    _ok(_evaluate(split, capsys, "--metrics", ALL, "--output", str(whole)))
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    _ok(_evaluate(split, capsys, "--sequences", "0002,0000", "--save-stats", str(first)))
    _ok(_evaluate(split, capsys, "--sequences", "0003,0001", "--save-stats", str(second)))
    merged = tmp_path / "merged.json"
    # given in either order, the shards merge in split order: the whole split's numbers
    for shards in ([first, second], [second, first]):
        args = ["rescore", *map(str, shards), "--metrics", ALL, "--output", str(merged)]
        _ok(run_cli(args, capsys))
        assert_close(without_timing(whole), without_timing(merged), 1e-12)


def test_a_partial_merge_is_refused_unless_allowed(
    split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shard = tmp_path / "a.npz"
    _ok(_evaluate(split, capsys, "--sequences", "0001", "--save-stats", str(shard)))
    code, _, err = run_cli(["rescore", str(shard)], capsys)
    assert code == 2
    assert err.splitlines() == [
        f"error: {shard}: the statistics miss 3 official synthetic val sequences "
        "(0000, 0002, 0003); add the shards that hold them, or pass --allow-partial"
    ]
    direct = tmp_path / "direct.json"
    rescored = tmp_path / "rescored.json"
    _ok(_evaluate(split, capsys, "--sequences", "0001", "--output", str(direct)))
    _ok(run_cli(["rescore", str(shard), "--allow-partial", "--output", str(rescored)], capsys))
    assert_close(without_timing(direct), without_timing(rescored), 1e-12)


def test_overlapping_shards_are_refused(
    split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    _ok(_evaluate(split, capsys, "--sequences", "0000,0001", "--save-stats", str(first)))
    _ok(_evaluate(split, capsys, "--sequences", "0001,0002,0003", "--save-stats", str(second)))
    code, _, err = run_cli(["rescore", str(first), str(second)], capsys)
    assert code == 2
    assert err.splitlines() == [
        f"error: {second}: sequence 0001 is also in {first}; each shard must hold different "
        "sequences"
    ]


def test_mismatched_protocol_is_refused(
    split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    _ok(_evaluate(split, capsys, "--sequences", "0000,0001", "--save-stats", str(first)))
    _ok(
        _evaluate(
            split, capsys, "--sequences", "0002,0003", "--no-void-as-class",
            "--save-stats", str(second),
        )
    )  # fmt: skip
    code, _, err = run_cli(["rescore", str(first), str(second)], capsys)
    assert code == 2
    assert err.splitlines() == [
        f"error: {second}: count_void_column false differs from true in {first}; only "
        "statistics of the same protocol merge"
    ]


def test_unreadable_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("not a zip\n")
    future = tmp_path / "future.npz"
    header = b'{"format": "vpsbench-stats", "version": 99, "vpsbench_version": "9.0"}'
    np.savez(future, header=np.frombuffer(header, dtype=np.uint8))
    other = tmp_path / "other.npz"
    np.savez(other, semantic=np.zeros((2, 2), np.int32))
    truncated = tmp_path / "truncated.npz"
    cases = {
        tmp_path / "missing.npz": "statistics file not found",
        text: "not a statistics file",
        future: "statistics format version 99 (written by vpsbench 9.0); this vpsbench reads "
        "version 1",
        other: "corrupt statistics file",
    }
    for path, message in cases.items():
        code, _, err = run_cli(["rescore", str(path)], capsys)
        assert code == 2
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {message}"), err
    with zipfile.ZipFile(truncated, "w") as archive:
        archive.writestr("header.npy", b"\x93NUMPY")
    code, _, err = run_cli(["rescore", str(truncated)], capsys)
    assert code == 2 and err.startswith(f"error: {truncated}: ") and len(err.splitlines()) == 1


def test_statistics_bytes_do_not_depend_on_workers(
    split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    _ok(_evaluate(split, capsys, "--save-stats", str(one)))
    _ok(_evaluate(split, capsys, "--workers", "2", "--save-stats", str(two)))
    assert one.read_bytes() == two.read_bytes()
