""":func:`ordered_map_with_setup` in this process and in a local pool, and the actor-pool size.

Each result carries the process that computed it and how often the setup ran there, so "once
per worker" is read off the results; the Ray actor pool is tested on a real cluster in
``tests/distributed/test_ray_actors.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from vpsbench.errors import VpsbenchError
from vpsbench.executors import (
    ExecutorKind,
    ExecutorSpec,
    actor_slots,
    ordered_map,
    ordered_map_with_setup,
)

_setups: Counter[int] = Counter()  # setups run per process id


def _setup() -> int:
    _setups[os.getpid()] += 1
    return os.getpid()


def _square(state: int, item: int) -> tuple[int, int, int]:
    """(item², the process that set up the state, setups run so far in that process)."""
    assert state == os.getpid()
    return item * item, state, _setups[state]


def _refuse() -> int:
    raise VpsbenchError("weights.pt: missing")


def _plain_square(item: int) -> int:
    return item * item


def test_in_process_sets_up_once_and_keeps_order() -> None:
    before = _setups[os.getpid()]
    results = list(ordered_map_with_setup(_setup, _square, list(range(7))))
    assert [value for value, _, _ in results] == [i * i for i in range(7)]
    assert _setups[os.getpid()] == before + 1
    assert {process for _, process, _ in results} == {os.getpid()}


def test_no_item_no_setup() -> None:
    assert list(ordered_map_with_setup(_refuse, _square, [])) == []
    with pytest.raises(VpsbenchError, match=r"^weights\.pt: missing$"):
        list(ordered_map_with_setup(_refuse, _square, [1]))


@pytest.mark.parametrize("spawn", [False, True])
def test_a_local_pool_sets_up_once_per_process(spawn: bool) -> None:
    items = list(range(17))
    spec = ExecutorSpec(workers=2, spawn=spawn)
    results = list(ordered_map_with_setup(_setup, _square, items, spec))
    assert [value for value, _, _ in results] == list(ordered_map(_plain_square, items))
    processes = {process for _, process, _ in results}
    assert os.getpid() not in processes and 1 <= len(processes) <= 2
    assert {setups for _, _, setups in results} == {1}


@pytest.mark.parametrize("workers", [2, 3])
def test_a_local_pool_of_slow_and_fast_items_keeps_order(workers: int) -> None:
    """Items of very different cost come back in the order of the items."""
    delays = [0.3, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0]
    results = list(ordered_map(_sleep_then_pid, delays, ExecutorSpec(workers=workers)))
    assert [delay for delay, _ in results] == delays
    assert len({pid for _, pid in results}) <= workers


def _sleep_then_pid(delay: float) -> tuple[float, int]:
    time.sleep(delay)
    return delay, os.getpid()


def test_actor_slots_follow_the_cluster() -> None:
    cpu = ExecutorSpec(ExecutorKind.RAY)
    gpu = ExecutorSpec(ExecutorKind.RAY, num_gpus=1.0)
    assert actor_slots(cpu, {"CPU": 64.0, "GPU": 8.0}) == 64
    assert actor_slots(gpu, {"CPU": 64.0, "GPU": 8.0}) == 8
    assert actor_slots(ExecutorSpec(ExecutorKind.RAY, num_gpus=0.5), {"CPU": 64, "GPU": 3}) == 6
    assert actor_slots(gpu, {"CPU": 4.0, "GPU": 8.0}) == 4  # an actor holds one CPU too
    with pytest.raises(VpsbenchError, match="has 0 GPUs and each worker needs 1 "):
        actor_slots(gpu, {"CPU": 64.0})


_ORPHAN_PARENT = """
import multiprocessing, sys, threading, time
from vpsbench.executors import ExecutorSpec, ordered_map
spec = ExecutorSpec(workers=2, spawn=sys.argv[1] == "spawn")
results = ordered_map(time.sleep, [120.0, 120.0], spec)
threading.Thread(target=lambda: list(results), daemon=True).start()
while len(multiprocessing.active_children()) < 2:
    time.sleep(0.05)
time.sleep(2.0)  # the workers are inside their item
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
time.sleep(120.0)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting to be reaped, has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_pool_workers_end_with_a_killed_parent(start: str) -> None:
    """A parent killed mid-item (SIGKILL: no shutdown) leaves no pool process behind."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_PARENT, start], stdout=subprocess.PIPE, text=True
    )
    workers: list[int] = []
    try:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        parent.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# Decodes a 1024×2048 STEP PNG pair ten times, both frames alive at once and compared, as in
# the evaluator, and prints the page faults per decoded file after a warm-up pair.
_DECODE_FAULTS = """
import resource, sys, tempfile
from pathlib import Path
import numpy as np
from vpsbench.executors import reuse_freed_memory
from vpsbench.formats.png import read_rgb_codes
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
folder = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
for name in ("truth", "prediction"):
    semantic = np.repeat(rng.integers(0, 19, (64, 1)), 16, axis=0).repeat(2048, axis=1)
    frame = PanopticFrame(semantic.astype(np.int32), np.zeros((1024, 2048), np.int32))
    write_step_png(folder / f"{name}.png", frame)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
truth, prediction = read_rgb_codes(folder / "truth.png"), read_rgb_codes(folder / "prediction.png")
del truth, prediction
before = faults()
for _ in range(10):
    truth = read_rgb_codes(folder / "truth.png")
    prediction = read_rgb_codes(folder / "prediction.png")
    np.count_nonzero(truth[:, 1:] != prediction[:, :-1])  # a frame-sized temporary, as in use
    del truth, prediction
print((faults() - before) / 20)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc settings are Linux-only")
def test_reused_freed_memory_decodes_frames_without_page_faults() -> None:
    """By default glibc puts part of each 8 MiB frame buffer on fresh pages (26 faults a file in
    this pattern, measured; about 2,100 in ``evaluate``); none once ``reuse_freed_memory`` ran."""

    def faults_per_file(mode: str) -> float:
        run = subprocess.run(
            [sys.executable, "-c", _DECODE_FAULTS, mode], capture_output=True, text=True, check=True
        )
        return float(run.stdout.split()[-1])

    assert faults_per_file("default") > 10
    assert faults_per_file("reuse") < 1
