"""A real Ray cluster on this machine for the distributed tests, started once per session.

``ray start --head`` on 127.0.0.1 with 2 CPUs, in a session of its own so that stopping it ends
exactly the processes it started (its workers included) and nothing else of the machine's.
Skipped, with the reason, when Ray is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RayCluster:
    address: str
    session: int  # the session id of `ray start` and of every process of the cluster


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ray_command() -> list[str]:
    script = Path(sys.executable).with_name("ray")
    return [str(script)] if script.is_file() else [shutil.which("ray") or "ray"]


def _import_roots() -> list[str]:
    """The folders this process imports vpsbench and its plugin packages from (the cluster's
    workers must run the very code the driver runs, a checkout's or an installed one)."""
    roots = [str(REPO)]
    for name in ("vpsbench_methods", "vpsbench_baselines"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            roots.append(str(Path(spec.origin).parents[1]))
    return roots


def _session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[3])  # fields after the name: state ppid pgrp sid


def kill_a_running_task(
    cluster: RayCluster, title: bytes, stop: threading.Event, killed: list[int]
) -> None:
    """SIGKILL the first process of ``cluster`` whose title starts with ``title`` (once)."""
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            pid = int(entry.name)
            if command.startswith(title) and _session_of(pid) == cluster.session:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.005)


STARTED = b"Ray runtime started."  # what `ray start` prints once the head node is up
ATTEMPTS = 3  # `ray start` gives the raylet 30 s to register: a busy machine may need another go


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the cluster: every process of the session `ray start` opened, and nothing else."""
    for signum, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, signum)  # the cluster's own session, started below
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # any member left of the cluster's group


def _start_head(
    temp: Path, env: dict[str, str], attempt: int
) -> tuple[subprocess.Popen[bytes], int]:
    """`ray start --head` on a free port, once the head is up; port -1: it was not (stopped)."""
    port = _free_port()
    log_path = temp / f"ray-start-{attempt}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *_ray_command(), "start", "--head", "--block",
                "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                # Ray's fixed default ports (10001, 52365) would clash with another cluster here
                "--ray-client-server-port", str(_free_port()),
                "--dashboard-agent-listen-port", str(_free_port()),
                "--include-dashboard=false", "--disable-usage-stats",
                "--object-store-memory", str(100 * 2**20), "--temp-dir", str(temp),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 900
    while STARTED not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            return process, -1
        time.sleep(0.5)
    return process, port


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'vpsbench[distributed]'")
    temp = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))  # short: Ray's socket paths
    roots = [*_import_roots(), os.environ.get("PYTHONPATH", "")]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(roots)}
    env |= {"RAY_USAGE_STATS_ENABLED": "0"}
    # On a loaded machine the head's processes start slowly; Ray's defaults (dashboard 60 s,
    # raylet 30 s, agents 100 s) end the node, so the fixture waits longer and tries again.
    env |= {
        "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "600",
        "RAY_raylet_start_wait_time_s": "600",
        "RAY_agent_register_timeout_ms": str(600_000),
    }
    process: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(1, ATTEMPTS + 1):
            process, port = _start_head(temp, env, attempt)
            if port > 0:
                break
        else:
            log = (temp / f"ray-start-{ATTEMPTS}.log").read_text(errors="replace")
            pytest.fail(f"ray start failed {ATTEMPTS} times; the last: {log[-2000:]}")
        yield RayCluster(f"127.0.0.1:{port}", process.pid)
    finally:
        import ray

        ray.shutdown()
        if process is not None:
            _stop(process)
        if not os.environ.get("VPSBENCH_KEEP_RAY_LOGS"):  # set it to read the cluster's logs
            shutil.rmtree(temp, ignore_errors=True)
