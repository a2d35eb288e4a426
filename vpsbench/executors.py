"""Where per-sequence work runs: in this process, in a local process pool, or on a Ray cluster.

Every per-sequence stage (the evaluator's reduction, a method's pseudo-labelling) is a pure
function of one item, so :func:`ordered_map` may run the items anywhere and in any order; it
always hands the results back in the order of the items, which keeps every merge that follows,
and so every number, the same whatever the executor, the worker count or the cluster's shape.

``ray`` submits one task per item with ``max_retries`` (a worker or node that dies mid-task is
replaced and the task rerun; a task that raises is not retried, its error is reported) and keeps
a bounded window of tasks in flight, so memory stays flat however many sequences there are.
"""

from __future__ import annotations

import enum
import multiprocessing
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import vpsbench
from vpsbench.errors import VpsbenchError

T = TypeVar("T")
R = TypeVar("R")

#: Tasks a Ray worker death may cost before the run fails (Ray reruns the task each time).
DEFAULT_MAX_RETRIES = 3


class ExecutorKind(enum.StrEnum):
    """``local``: this process or a process pool (the default); ``ray``: a Ray cluster."""

    LOCAL = "local"
    RAY = "ray"


@dataclass(frozen=True)
class ExecutorSpec:
    """How to run per-item work (picklable; checked before any work starts).

    ``workers`` sizes the local pool (1: in this process); under Ray the tasks in flight are
    twice the cluster's CPUs (or ``workers`` when larger). ``num_gpus`` is requested per Ray task.
    ``spawn``: local pool workers start fresh instead of forking (needed after torch has run).
    """

    kind: ExecutorKind = ExecutorKind.LOCAL
    workers: int = 1
    ray_address: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    num_gpus: float = 0.0
    spawn: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise VpsbenchError(f"--workers must be at least 1, got {self.workers}")
        if self.max_retries < 0:
            raise VpsbenchError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.ray_address is not None and self.kind is not ExecutorKind.RAY:
            raise VpsbenchError("--ray-address needs --executor ray")


def executor_spec(
    executor: str | ExecutorKind = ExecutorKind.LOCAL,
    workers: int = 1,
    ray_address: str | None = None,
    **options: Any,
) -> ExecutorSpec:
    """An :class:`ExecutorSpec` from command-line values (an unknown executor is one clear line)."""
    try:
        kind = ExecutorKind(executor)
    except ValueError:
        known = ", ".join(k.value for k in ExecutorKind)
        raise VpsbenchError(f"--executor must be one of {known}, got {executor!r}") from None
    spec = ExecutorSpec(kind, workers, ray_address or None, **options)
    if spec.kind is ExecutorKind.RAY:
        connect_ray(spec.ray_address)  # fail before reading one frame
    return spec


def ordered_map(
    function: Callable[[T], R], items: Sequence[T], spec: ExecutorSpec | None = None
) -> Iterator[R]:
    """``function(item)`` for every item, yielded in the order of ``items`` wherever it ran."""
    spec = spec or ExecutorSpec()
    if spec.kind is ExecutorKind.RAY:
        yield from _ray_map(function, items, spec)
        return
    if spec.workers <= 1 or len(items) <= 1:
        for item in items:
            yield function(item)
        return
    context = multiprocessing.get_context("spawn") if spec.spawn else None
    pool: Executor = ProcessPoolExecutor(max_workers=spec.workers, mp_context=context)
    with pool:
        yield from pool.map(function, items)


# --- Ray -------------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise VpsbenchError(
            "--executor ray needs Ray: pip install 'vpsbench[distributed]'"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Refuse a ``host:port`` where nothing listens at once (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", "ray://…", "local": left to Ray
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise VpsbenchError(
            f"--ray-address {address}: no Ray cluster answers there ({reason}); start one with "
            "`ray start --head` or give the head's address"
        ) from None


_connected: dict[str, str | None] = {}  # the address this process joined (Ray allows one)


def connect_ray(address: str | None) -> Any:
    """Connect this process to the Ray cluster at ``address`` (None: Ray's default: $RAY_ADDRESS,
    else a running local cluster, else a new one in this process). Returns the ``ray`` module."""
    ray = _import_ray()
    if ray.is_initialized():
        if _connected.get("address", "") == address:
            return ray
        ray.shutdown()  # joined to another cluster before: leave it for the one asked for
    if address:
        _check_reachable(address)
    try:
        ray.init(
            address=address,
            logging_level="ERROR",
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "the default address"
        raise VpsbenchError(
            f"--ray-address {where}: cannot join the Ray cluster ({error})"
        ) from None
    return ray


def _run_on_worker(function: Callable[[T], R], item: T, version: str) -> R:
    """What a Ray task runs: the function, after checking the worker has our vpsbench."""
    if vpsbench.__version__ != version:
        raise VpsbenchError(
            f"a Ray worker runs vpsbench {vpsbench.__version__}, the driver {version}; install "
            "the same version on every node"
        )
    return function(item)


def _ray_map(function: Callable[[T], R], items: Sequence[T], spec: ExecutorSpec) -> Iterator[R]:
    """Submit one task per item (a bounded window in flight) and yield results in item order."""
    ray = connect_ray(spec.ray_address)
    from ray.exceptions import RayTaskError

    remote = ray.remote(_run_on_worker).options(
        max_retries=spec.max_retries, num_gpus=spec.num_gpus, retry_exceptions=False
    )
    cpus = int(ray.cluster_resources().get("CPU", 1))
    window = max(spec.workers, 2 * cpus, 1)
    function_ref = ray.put(function)
    pending: deque[Any] = deque()
    upcoming = iter(items)
    try:
        for item in upcoming:
            pending.append(remote.remote(function_ref, item, vpsbench.__version__))
            if len(pending) >= window:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    except RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, VpsbenchError):
            raise cause from None
        raise
    finally:
        for ref in pending:
            ray.cancel(ref, force=False)
