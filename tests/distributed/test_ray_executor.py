"""``--executor ray`` on a real local Ray cluster: the same bytes as one local worker.

No mocks: the session's cluster (``conftest.py``) runs the tasks in its own worker processes.
The oracle is the in-process evaluation (``--workers 1``); a worker SIGKILLed while it runs a
task must be replaced by Ray's retry without changing a number.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.demo_split import demo_split, without_timing
from tests.distributed.conftest import RayCluster, kill_a_running_task
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate
from vpsbench.executors import ExecutorKind, ExecutorSpec, ordered_map
from vpsbench.predictions import PredictionSource
from vpsbench.results import result_to_dict

pytestmark = pytest.mark.xdist_group("ray")  # one worker, so one cluster, under -n 2

ALL = "stq,vpq,pq,hota,clear,identity"
TASK_TITLE = b"ray::_run_on_worker"  # a Ray worker's process title while it runs our task
KILL_ATTEMPTS = 5


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    # a sequence takes ~35 ms to reduce in one process (measured): a worker running one is
    # caught in most runs, and the killed-worker test tries again when none was
    return demo_split(tmp_path_factory.mktemp("ray"), videos=4, frames=24, height=96, width=192)


def _evaluate_args(root: Path, pred: Path) -> list[str]:
    return ["evaluate", "-d", "synthetic", "--root", str(root), "--pred", str(pred), "--quiet"]


def _square(value: int) -> int:
    return value * value


def test_ordered_map_keeps_item_order(ray_cluster: RayCluster) -> None:
    spec = ExecutorSpec(ExecutorKind.RAY, ray_address=ray_cluster.address)
    items = list(range(23))  # more than the window of tasks in flight (2 × 2 CPUs)
    assert list(ordered_map(_square, items, spec)) == [i * i for i in items]


def test_ray_results_json_is_byte_identical_to_one_worker(
    ray_cluster: RayCluster,
    split: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, pred = split
    common = ["evaluate", "-d", "synthetic", "--root", str(root), "--pred", str(pred)]
    common += ["--quiet", "--metrics", ALL]
    local, distributed = tmp_path / "local.json", tmp_path / "ray.json"
    local_stats, ray_stats = tmp_path / "local.npz", tmp_path / "ray.npz"
    code, _, err = run_cli(
        [*common, "--workers", "1", "--output", str(local), "--save-stats", str(local_stats)],
        capsys,
    )
    assert code == 0, err
    ray_options = ["--executor", "ray", "--ray-address", ray_cluster.address]
    code, _, err = run_cli(
        [*common, *ray_options, "--output", str(distributed), "--save-stats", str(ray_stats)],
        capsys,
    )
    assert code == 0, err

    def text_without_timing(path: Path) -> str:
        return json.dumps(without_timing(path), indent=2)

    assert text_without_timing(local) == text_without_timing(distributed)
    assert local_stats.read_bytes() == ray_stats.read_bytes()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_a_worker_killed_mid_run_is_retried(
    ray_cluster: RayCluster, split: tuple[Path, Path]
) -> None:
    root, pred = split
    job = EvaluationJob(open_dataset("synthetic", root), "val", PredictionSource.open(pred))
    settings = EvaluationSettings(metrics=("stq", "vpq", "pq", "hota"))
    expected = result_to_dict(evaluate(job, settings))
    del expected["run"]["seconds"]

    killed: list[int] = []
    for _ in range(KILL_ATTEMPTS):  # the tasks are short: a run may end before one is caught
        stop = threading.Event()
        killer = threading.Thread(
            target=kill_a_running_task, args=(ray_cluster, TASK_TITLE, stop, killed)
        )
        killer.start()
        try:
            result = evaluate(job, settings, executor="ray", ray_address=ray_cluster.address)
        finally:
            stop.set()
            killer.join()
        got = result_to_dict(result)
        del got["run"]["seconds"]
        assert got == expected  # every run, a worker killed in it or not
        if killed:
            break
    assert killed, f"no worker was caught running a task in {KILL_ATTEMPTS} runs"
    assert not Path(f"/proc/{killed[0]}").exists()


def test_a_worker_error_is_one_line(
    ray_cluster: RayCluster,
    split: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, pred = split
    broken = tmp_path / "pred"
    for source in sorted(pred.rglob("*.png")):
        target = broken / source.relative_to(pred)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    missing = broken / "0002" / "000005.png"
    missing.unlink()
    code, _, err = run_cli(
        [*_evaluate_args(root, broken), "--executor", "ray", "--ray-address", ray_cluster.address],
        capsys,
    )
    assert code == 2
    assert err.splitlines() == [
        f"error: {missing}: missing prediction for frame '000005' of sequence '0002'"
    ]


def test_an_unreachable_address_fails_at_once(
    split: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'vpsbench[distributed]'")

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root, pred = split
    started = time.monotonic()
    code, _, err = run_cli(
        [*_evaluate_args(root, pred), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"],
        capsys,
    )
    assert code == 2
    assert err.startswith(f"error: --ray-address 127.0.0.1:{port}: no Ray cluster answers there")
    assert time.monotonic() - started < 10


@pytest.mark.slow  # trains S twice (local, ray)
def test_run_method_pseudo_labels_on_ray_equal_the_local_ones(
    ray_cluster: RayCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = prepare_synthetic(
        tmp_path / "data", videos=2, frames=6, height=48, width=96, seed=1, splits=["val"],
        workers=1,
    )  # fmt: skip
    common = ["run-method", "videocups", "--dataset", "synthetic", "--root", str(root)]
    common += ["--set", "num_pseudo_classes=8", "--set", "train_split=val"]
    common += ["--set", "depthg_batches=4", "--set", "depthg_frames=4", "--stage", "pseudo-label"]
    runs = {"local": tmp_path / "local", "ray": tmp_path / "ray"}
    code, _, err = run_cli([*common, "--run-dir", str(runs["local"])], capsys)
    assert code == 0, err
    ray_options = ["--executor", "ray", "--ray-address", ray_cluster.address]
    code, _, err = run_cli([*common, "--run-dir", str(runs["ray"]), *ray_options], capsys)
    assert code == 0, err

    def outputs(run: Path) -> dict[str, bytes]:
        folder = run / "pseudo-label"
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.*")}

    local, distributed = outputs(runs["local"]), outputs(runs["ray"])
    assert len([name for name in local if name.startswith("labels/")]) == 12
    assert local == distributed
