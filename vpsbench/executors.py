"""Where per-sequence work runs: in this process, in a local process pool, or on a Ray cluster.

Every per-sequence stage (the evaluator's reduction, a method's pseudo-labelling) is a pure
function of one item, so :func:`ordered_map` may run the items anywhere and in any order; it
always hands the results back in the order of the items, which keeps every merge that follows,
and so every number, the same whatever the executor, the worker count or the cluster's shape.

``ray`` submits one task per item with ``max_retries`` (a worker or node that dies mid-task is
replaced and the task rerun; a task that raises is not retried, its error is reported) and keeps
a bounded window of tasks in flight, so memory stays flat however many sequences there are.

:func:`ordered_map_with_setup` is the same mapping for work that needs something costly first
(a network's weights): the setup runs once per worker (in this process, per pool process, or per
Ray actor of a pool, one actor per CPU or per ``num_gpus`` GPUs) and every item reuses its result.

Every process that runs items (pool workers, Ray tasks, the CLI itself) keeps freed frame-sized
buffers for the next frame (:func:`reuse_freed_memory`) instead of faulting in fresh pages.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import multiprocessing
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import vpsbench
from vpsbench.errors import VpsbenchError

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

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
        ray = connect_ray(spec.ray_address)  # fail before reading one frame
        actor_slots(spec, ray.cluster_resources())  # and before any work when it lacks GPUs
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
    pool = ProcessPoolExecutor(
        max_workers=spec.workers, mp_context=context, initializer=start_pool_worker
    )
    with pool:
        yield from pool.map(function, items)


def start_pool_worker() -> None:
    """Initializer of every local pool process: frame buffers reused, and gone with its parent.

    A forked worker first hands the free heap it inherited back to the kernel: reusing those
    pages would copy each one (copy-on-write) instead of zero-filling it once.
    """
    _release_free_heap()
    reuse_freed_memory()
    exit_with_parent()


def _release_free_heap() -> None:
    """glibc's ``malloc_trim(0)``: return the free parts of the heap to the kernel (else no-op)."""
    malloc_trim = _glibc_function("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def _glibc_function(name: str) -> Callable[..., int] | None:
    """The C library's function ``name`` on Linux when it has one (glibc's malloc tuning)."""
    if sys.platform != "linux":
        return None
    function: Callable[..., int] | None = getattr(ctypes.CDLL(None), name, None)
    return function


# glibc's mallopt parameters (malloc.h) and the values :func:`reuse_freed_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest allowed value on 64-bit machines
_TRIM_THRESHOLD_BYTES = 256 << 20
_FREED_MEMORY_REUSED: list[bool] = []  # set once per process


def reuse_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MiB for reuse (once per process).

    By default a block above an adaptive threshold gets pages of its own and returns them to the
    kernel when freed, so each decoded frame (8 MiB at 1024×2048) lands on fresh pages that the
    kernel faults in and zeroes: about 2,100 page faults a file and a third of ``evaluate``'s
    time (measured: README, Benchmark). Serving such blocks from the heap, returned to the
    kernel only past 256 MiB free at its top, reuses the same pages frame after frame. Applies
    process-wide, changes no result; returns False where malloc is not glibc's (then a no-op).
    """
    if _FREED_MEMORY_REUSED:
        return _FREED_MEMORY_REUSED[0]
    mallopt = _glibc_function("mallopt")
    applied = mallopt is not None and all(
        mallopt(parameter, value) == 1
        for parameter, value in (
            (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES),
            (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES),
        )
    )
    _FREED_MEMORY_REUSED.append(applied)
    return applied


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """Pool-process initializer: end this process as soon as the one that started it is gone.

    A parent killed outright (SIGKILL, or SIGTERM's default) cannot shut its pool down; its
    workers would finish their item and then wait for work forever. A daemon thread watches the
    parent's pid (an orphan is re-parented, so it changes) and exits the whole process at once.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="vpsbench-exit-with-parent", daemon=True).start()


def ordered_map_with_setup(
    setup: Callable[[], S],
    function: Callable[[S, T], R],
    items: Sequence[T],
    spec: ExecutorSpec | None = None,
) -> Iterator[R]:
    """``function(setup(), item)`` for every item, yielded in item order, ``setup`` run once per
    worker (not per item) and only when there is an item: in this process, in each local pool
    process, or in each Ray actor of a pool (:func:`_ray_actor_map`)."""
    spec = spec or ExecutorSpec()
    if not items:
        return
    if spec.kind is ExecutorKind.RAY:
        yield from _ray_actor_map(setup, function, items, spec)
        return
    if spec.workers <= 1 or len(items) <= 1:
        state = setup()
        for item in items:
            yield function(state, item)
        return
    per_process = functools.partial(_with_process_state, uuid.uuid4().hex, setup, function)
    yield from ordered_map(per_process, items, spec)


_process_state: dict[str, Any] = {}  # a pool process's setup result, under its map's token


def _with_process_state(
    token: str, setup: Callable[[], S], function: Callable[[S, T], R], item: T
) -> R:
    """What a local pool process runs per item: the setup on its first item of this map, kept."""
    if token not in _process_state:
        _process_state.clear()  # a previous map's state (a forked pool of an earlier call)
        _process_state[token] = setup()
    state: S = _process_state[token]
    return function(state, item)


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
    _connected["address"] = address  # the next stage of this run reuses the connection
    return ray


def _prepare_ray_worker(version: str) -> None:
    """Before a Ray worker runs an item: refuse a vpsbench that differs from the driver's, and
    reuse freed frame buffers in this process."""
    if vpsbench.__version__ != version:
        raise VpsbenchError(
            f"a Ray worker runs vpsbench {vpsbench.__version__}, the driver {version}; install "
            "the same version on every node"
        )
    reuse_freed_memory()


def _run_on_worker(function: Callable[[T], R], item: T, version: str) -> R:
    """What a Ray task runs: the function, on a worker prepared for it."""
    _prepare_ray_worker(version)
    return function(item)


def _unwrap_task_error(error: Exception) -> Exception:
    """A task's VpsbenchError as itself (one clear line), any other failure as Ray reports it."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, VpsbenchError) else error


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
        raise _unwrap_task_error(error) from None
    finally:
        for ref in pending:
            ray.cancel(ref, force=False)


class SetupActor:
    """A Ray actor of :func:`_ray_actor_map`: runs ``setup`` on its first item, keeps the result.

    The setup is lazy (in the first call, not in ``__init__``) so that an error it raises reaches
    the driver as a task error, and so that an actor Ray restarts after a death sets up again.
    """

    def __init__(self, setup: Callable[[], Any], function: Callable[[Any, Any], Any], version: str):
        self._setup, self._function, self._version = setup, function, version
        self._ready = False
        self._state: Any = None

    def run(self, item: Any) -> Any:
        _prepare_ray_worker(self._version)
        if not self._ready:
            self._state, self._ready = self._setup(), True
        return self._function(self._state, item)


def actor_slots(spec: ExecutorSpec, resources: dict[str, float]) -> int:
    """How many actors the cluster's ``resources`` hold: one CPU each, and ``num_gpus`` GPUs."""
    slots = int(resources.get("CPU", 0))
    if spec.num_gpus > 0:
        gpus = resources.get("GPU", 0.0)
        if gpus < spec.num_gpus:
            where = spec.ray_address or "the default address"
            raise VpsbenchError(
                f"--ray-address {where}: the Ray cluster has {gpus:g} GPUs and each worker needs "
                f"{spec.num_gpus:g} (--device cuda); add GPU nodes or run with --device cpu"
            )
        slots = min(slots, int(gpus // spec.num_gpus))
    return max(slots, 1)


def _ray_actor_map(
    setup: Callable[[], S], function: Callable[[S, T], R], items: Sequence[T], spec: ExecutorSpec
) -> Iterator[R]:
    """Hand the items to a pool of :class:`SetupActor` (at most one item each at a time) and
    yield the results in item order; a dead actor is restarted and its item retried by Ray
    (``max_restarts`` / ``max_task_retries``), results waiting for an earlier one are bounded."""
    ray = connect_ray(spec.ray_address)
    from ray.exceptions import RayActorError, RayTaskError

    count = min(len(items), actor_slots(spec, ray.cluster_resources()))
    actor_class = ray.remote(SetupActor).options(
        num_cpus=1,
        num_gpus=spec.num_gpus,
        max_restarts=spec.max_retries,
        max_task_retries=spec.max_retries,
    )
    setup_ref, function_ref = ray.put(setup), ray.put(function)
    actors = [
        actor_class.remote(setup_ref, function_ref, vpsbench.__version__) for _ in range(count)
    ]
    idle: deque[Any] = deque(actors)
    running: dict[Any, tuple[int, Any]] = {}  # result ref → (item index, its actor)
    finished: dict[int, Any] = {}
    submitted = yielded = 0
    try:
        while yielded < len(items):
            while idle and submitted < len(items) and submitted - yielded < 2 * count:
                actor = idle.popleft()
                running[actor.run.remote(items[submitted])] = (submitted, actor)
                submitted += 1
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                index, actor = running.pop(ref)
                finished[index] = ray.get(ref)
                idle.append(actor)
            while yielded in finished:
                yield finished.pop(yielded)
                yielded += 1
    except RayTaskError as error:
        raise _unwrap_task_error(error) from None
    except RayActorError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise VpsbenchError(
            f"a Ray actor died and was restarted {spec.max_retries} times, then died again "
            f"({reason}); look for the cause (memory, a node lost) in the cluster's logs"
        ) from None
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)  # frees its CPU/GPU for the next stage at once
