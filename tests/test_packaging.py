"""What `pip install vpsbench` puts into site-packages: only names of its own.

The plugins live in the ``methods/`` and ``baselines/`` folders, but a wheel that installed them as
top-level ``methods`` and ``baselines`` packages would collide with any other project's modules
of those generic names. The wheel is built from this checkout, offline, and its files are read.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--wheel-dir", str(out), str(ROOT)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(build)},
    )
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed: {done.stderr[-2000:]}")
    (found,) = out.glob("vpsbench-*.whl")
    return found


def test_the_wheel_installs_only_vpsbench_named_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"vpsbench", "vpsbench_methods", "vpsbench_baselines"}
    assert "vpsbench/py.typed" in names
    assert "vpsbench_methods/videocups/configs/small.yaml" in names
    assert "vpsbench_methods/videocups/configs/paper.yaml" in names


def test_every_method_entry_point_names_a_module_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_file,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_file).decode())
    targets = dict(parser["vpsbench.methods"])
    assert set(targets) == {
        "videocups",
        "depthg-videocutler",
        "u2seg-sort",
        "cups-sort",
        "cups-mono-sort",
    }
    for target in targets.values():
        module = target.split(":")[0]
        assert module.split(".")[0] in {"vpsbench_methods", "vpsbench_baselines"}
        assert module.replace(".", "/") + ".py" in names
