"""``run-method --executor ray``: per-sequence predict/track stages on a real local Ray cluster
write the same files, byte for byte, as the local run (the oracle).

The baselines run their weight-free stand-ins; VideoCUPS' predict stage runs a tiny trained
model (3 steps of the small config, trained once, on ground truth written as its pseudo-labels).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_cli
from tests.distributed.conftest import RayCluster
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

pytestmark = pytest.mark.xdist_group("ray")  # one worker, so one cluster, under -n 2


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_synthetic(
        tmp_path_factory.mktemp("data"), videos=3, frames=5, height=64, width=96, seed=4,
        splits=["val"], workers=1,
    )  # fmt: skip


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.*"))}


def _ray(cluster: RayCluster) -> list[str]:
    return ["--executor", "ray", "--ray-address", cluster.address]


@pytest.mark.parametrize(
    ("method", "stage_dir"), [("cups-sort", None), ("depthg-videocutler", "segment")]
)
def test_baseline_predictions_on_ray_equal_the_local_ones(
    method: str,
    stage_dir: str | None,
    ray_cluster: RayCluster,
    root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["run-method", method, "--dataset", "synthetic", "--root", str(root)]
    common += ["--set", "num_pseudo_classes=8"]
    local, distributed = tmp_path / "local", tmp_path / "ray"
    code, _, err = run_cli([*common, "--run-dir", str(local)], capsys)
    assert code == 0, err
    code, _, err = run_cli([*common, "--run-dir", str(distributed), *_ray(ray_cluster)], capsys)
    assert code == 0, err
    expected = _files(local / "predictions")
    assert len(expected) == 15  # 3 sequences × 5 frames
    assert _files(distributed / "predictions") == expected
    if stage_dir is not None:  # the per-sequence stage before predict ran on Ray too
        assert _files(distributed / stage_dir) == _files(local / stage_dir)
    results = [json.loads((run / "results.json").read_text()) for run in (local, distributed)]
    assert results[0]["metrics"] == results[1]["metrics"]


@pytest.mark.slow  # trains a tiny model (minutes on a busy 2-core machine)
def test_videocups_predict_on_ray_writes_the_local_bytes(
    ray_cluster: RayCluster, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    training = (
        "train_set=optim.steps=3,optim.checkpoint_every=3,model.input_height=64,"
        "model.input_width=96,loss.roi_batch_size_per_image=16,augment.self_enhance_start=0"
    )
    common = ["run-method", "videocups", "--dataset", "synthetic", "--root", str(root)]
    common += ["--set", "num_pseudo_classes=8", "--set", "train_split=val", "--set", training]
    local = tmp_path / "local"
    # Ground truth written as stage 1's output (19 classes, things 11..18): the model trains on it.
    dataset = open_dataset("synthetic", root)
    for sequence in dataset.sequences("val"):
        for frame in sequence.frames:
            truth = dataset.load_ground_truth("val", frame)
            path = local / "pseudo-label" / "labels" / frame.sequence / f"{frame.name}.png"
            write_step_png(
                path,
                PanopticFrame(np.where(truth.semantic < 0, 255, truth.semantic), truth.instance),
            )
    summary = {"thing_pseudo_classes": list(range(11, 19)), "stuff_pseudo_classes": list(range(11))}
    (local / "pseudo-label" / "summary.json").write_text(json.dumps(summary))
    code, _, err = run_cli([*common, "--run-dir", str(local), "--stage", "train"], capsys)
    assert code == 0, err
    distributed = tmp_path / "ray"
    shutil.copytree(local, distributed)  # the same trained model for both predict runs

    predict = ["--stage", "predict"]
    code, _, err = run_cli([*common, "--run-dir", str(local), *predict], capsys)
    assert code == 0, err
    code, _, err = run_cli(
        [*common, "--run-dir", str(distributed), *predict, *_ray(ray_cluster)], capsys
    )
    assert code == 0, err
    expected = _files(local / "predictions")
    assert len(expected) == 15
    assert _files(distributed / "predictions") == expected
