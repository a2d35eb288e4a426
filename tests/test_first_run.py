"""A first run without friction: one default place for the synthetic data, printed when written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from vpsbench.config import cache_dir, resolve_dataset_root
from vpsbench.datasets import open_dataset


@pytest.fixture
def fresh_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config file, no $VPSBENCH_DATA/$VPSBENCH_CACHE/$XDG_CACHE_HOME, a home of its own."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    for name in ("VPSBENCH_DATA", "VPSBENCH_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(work)
    return home


def test_cache_folder_precedence(fresh_user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == fresh_user / ".cache" / "vpsbench"
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert cache_dir() == Path("/x/cache/vpsbench")
    monkeypatch.setenv("VPSBENCH_CACHE", "/y")
    assert cache_dir() == Path("/y")


def test_synthetic_lives_in_the_cache_and_real_data_in_data(
    fresh_user: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_dataset_root("synthetic") == fresh_user / ".cache" / "vpsbench" / "synthetic"
    assert resolve_dataset_root("kitti-step") == Path.cwd() / "data" / "kitti-step"
    monkeypatch.setenv("VPSBENCH_DATA", "/data")
    assert resolve_dataset_root("synthetic") == Path("/data/synthetic")  # explicit wins
    assert resolve_dataset_root("synthetic", "/r") == Path("/r")


def test_prepare_writes_to_the_cache_and_every_command_finds_it(
    fresh_user: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = fresh_user / ".cache" / "vpsbench" / "synthetic"
    code, _, err = run_cli(["datasets", "verify", "synthetic"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: synthetic: no dataset at {target}; generate it there with `vpsbench datasets "
        "prepare synthetic` (or run `vpsbench demo`), or pass --root"
    ]
    args = ["datasets", "prepare", "synthetic", "--videos", "1", "--frames", "2"]
    code, out, err = run_cli([*args, "--size", "16x32", "--workers", "1"], capsys)
    assert code == 0, err
    assert f"synthetic dataset ready at {target}" in out
    assert (target / "synthetic.json").is_file()
    assert open_dataset("synthetic").root == target
    code, out, err = run_cli(["datasets", "verify", "synthetic"], capsys)
    assert code == 0, err
    assert f"at {target} looks complete" in out


def test_prepare_into_a_file_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(
        ["datasets", "prepare", "synthetic", "--root", str(blocker / "s")], capsys
    )
    assert code == 2
    assert err.strip().splitlines() == [f"error: {blocker / 's'}: --root: {blocker} is a file"]
