"""``leaderboard verify``: reproduced records are re-evaluated; tampering is flagged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.leaderboard.conftest import StoreLayout
from vpsbench.formats.step import write_step_png
from vpsbench.leaderboard.store import load_store
from vpsbench.leaderboard.verify import verify_records
from vpsbench.records import read_record, write_record
from vpsbench.video import PanopticFrame

RECORD = "tiny-method/kitti-step-val.json"


@pytest.fixture
def store_copy(store_layout: StoreLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the store; datasets resolve through $VPSBENCH_DATA as for evaluate."""
    monkeypatch.setenv("VPSBENCH_DATA", str(store_layout.data_root))
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    return Path(shutil.copytree(store_layout.store, tmp_path / "store"))


def _outcomes(store: Path, pred_root: Path) -> dict[str, tuple[str, tuple[str, ...], str]]:
    return {
        o.path: (o.status, o.problems, o.reason)
        for o in verify_records(load_store(store, check=False), pred_root)
    }


def test_untouched_records_verify(store_copy: Path, store_layout: StoreLayout) -> None:
    outcomes = _outcomes(store_copy, store_layout.pred_root)
    assert outcomes[RECORD] == ("ok", (), "")
    assert outcomes["paper-method/kitti-step-val.json"] == (
        "not checked",
        (),
        "reported in a paper",
    )
    assert outcomes["xss-probe/kitti-step-val.json"][0] == "not checked"


def test_tampered_number_is_flagged(store_copy: Path, store_layout: StoreLayout) -> None:
    path = store_copy / RECORD
    record = read_record(path)
    classes = dict(record.metrics.iou_per_class)
    classes["road"] = classes["road"] + 1e-6
    write_record(
        path,
        record.model_copy(
            update={"metrics": record.metrics.model_copy(update={"iou_per_class": classes})}
        ),
    )
    status, problems, _ = _outcomes(store_copy, store_layout.pred_root)[RECORD]
    assert status == "failed"
    assert problems == (
        f"iou.road: record has {classes['road']!r}, "
        f"re-evaluated {record.metrics.iou_per_class['road']!r}",
    )


def test_tampered_stq_is_flagged_twice(store_copy: Path, store_layout: StoreLayout) -> None:
    path = store_copy / RECORD
    record = read_record(path)
    better = record.metrics.model_copy(update={"stq": record.metrics.stq + 0.01})
    write_record(path, record.model_copy(update={"metrics": better}))
    status, problems, _ = _outcomes(store_copy, store_layout.pred_root)[RECORD]
    assert status == "failed"
    assert problems[0].startswith("STQ ") and "!= sqrt(AQ" in problems[0]
    assert problems[1].startswith(f"stq: record has {better.stq!r}, re-evaluated")


def test_changed_predictions_are_flagged(
    store_copy: Path, store_layout: StoreLayout, tmp_path: Path
) -> None:
    pred_root = Path(shutil.copytree(store_layout.pred_root, tmp_path / "predictions"))
    frame = pred_root / "tiny-method" / "kitti-step-val" / "0002" / "000000.png"
    write_step_png(frame, PanopticFrame.from_arrays([[1] * 16] * 12, [[0] * 16] * 12))
    status, problems, _ = _outcomes(store_copy, pred_root)[RECORD]
    assert status == "failed"
    assert problems[0].startswith("predictions sha256 ")


def test_missing_predictions_are_not_checked(store_copy: Path, tmp_path: Path) -> None:
    status, problems, reason = _outcomes(store_copy, tmp_path / "nothing")[RECORD]
    assert (status, problems) == ("not checked", ())
    assert reason.startswith("no predictions at ")
