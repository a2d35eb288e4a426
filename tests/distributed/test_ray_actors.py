""":func:`ordered_map_with_setup` on a real local Ray cluster: a pool of actors that set up once.

No mocks: the session's cluster (``conftest.py``) runs the actors in its own worker processes.
Each result carries the process that computed it and how often the setup ran in that process,
so "once per actor" is read off the results; the oracle is the same map in this process.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.distributed.conftest import RayCluster, kill_a_running_task
from vpsbench.errors import VpsbenchError
from vpsbench.executors import ExecutorKind, ExecutorSpec, ordered_map_with_setup

pytestmark = pytest.mark.xdist_group("ray")  # one worker, so one cluster, under -n 2

ACTOR_TITLE = b"ray::SetupActor.run"  # an actor's process title while it runs an item

_setups: Counter[int] = Counter()  # setups run per process id (a process of its own per actor)


def _setup() -> int:
    """Count this setup against this process; the state is the process that made it."""
    _setups[os.getpid()] += 1
    return os.getpid()


def _square(state: int, item: int) -> tuple[int, int, int]:
    """(item², the process that set up the state, setups run so far in that process)."""
    assert state == os.getpid()  # the state is the one this very process built
    return item * item, state, _setups[state]


def _slow_square(state: int, item: int) -> tuple[int, int, int]:
    time.sleep(0.2)  # long enough for an actor to be caught running it
    return _square(state, item)


def _refuse() -> int:
    raise VpsbenchError("weights.pt: missing (the setup's own error)")


def _values(results: list[tuple[int, int, int]]) -> list[int]:
    return [value for value, _, _ in results]


def test_actor_pool_keeps_item_order_and_sets_up_once_per_actor(ray_cluster: RayCluster) -> None:
    items = list(range(23))  # many more items than actors (one per CPU: 2)
    local = list(ordered_map_with_setup(_setup, _square, items))
    spec = ExecutorSpec(ExecutorKind.RAY, ray_address=ray_cluster.address)
    distributed = list(ordered_map_with_setup(_setup, _square, items, spec))
    assert _values(distributed) == _values(local) == [i * i for i in items]
    processes = {process for _, process, _ in distributed}
    assert os.getpid() not in processes  # the items ran in the cluster's actors
    assert 1 <= len(processes) <= 2  # at most one actor per CPU of the cluster
    assert {setups for _, _, setups in distributed} == {1}  # each actor set up exactly once


def test_no_item_no_actor_and_no_setup(ray_cluster: RayCluster) -> None:
    spec = ExecutorSpec(ExecutorKind.RAY, ray_address=ray_cluster.address)
    assert list(ordered_map_with_setup(_refuse, _square, [], spec)) == []


def test_a_setup_error_is_the_error_itself(ray_cluster: RayCluster) -> None:
    spec = ExecutorSpec(ExecutorKind.RAY, ray_address=ray_cluster.address)
    with pytest.raises(VpsbenchError, match=r"^weights\.pt: missing \(the setup's own error\)$"):
        list(ordered_map_with_setup(_refuse, _square, [1, 2, 3], spec))


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_an_actor_killed_mid_run_is_restarted_and_nothing_is_lost(
    ray_cluster: RayCluster,
) -> None:
    items = list(range(12))
    spec = ExecutorSpec(ExecutorKind.RAY, ray_address=ray_cluster.address)
    stop, killed = threading.Event(), []
    killer = threading.Thread(
        target=kill_a_running_task, args=(ray_cluster, ACTOR_TITLE, stop, killed)
    )
    killer.start()
    try:
        distributed = list(ordered_map_with_setup(_setup, _slow_square, items, spec))
    finally:
        stop.set()
        killer.join()
    assert killed, "no actor was caught running an item"
    assert not Path(f"/proc/{killed[0]}").exists()
    assert _values(distributed) == [i * i for i in items]
    processes = {process for _, process, _ in distributed}
    assert len(processes) <= 3  # two actors and the one restarted in place of the killed one
    assert {setups for _, _, setups in distributed} == {1}  # the restarted actor set up anew
