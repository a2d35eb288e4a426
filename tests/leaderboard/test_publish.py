"""``leaderboard publish``: to a local bare git repository, and a clear line for the Hub."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.leaderboard.conftest import StoreLayout
from vpsbench.errors import VpsbenchError
from vpsbench.leaderboard.publish import parse_hub_target, publish
from vpsbench.records import read_record, write_record

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(*arguments: str, cwd: Path | None = None) -> str:
    completed = subprocess.run(
        ["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True
    )
    return completed.stdout


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    _git("init", "--quiet", "--bare", str(bare))
    return bare


def test_publish_round_trips_and_is_idempotent(
    store_layout: StoreLayout,
    built_site: Path,
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty-gitconfig"))  # no identity
    first = publish(str(remote), store_layout.store, built_site)
    assert first.changed and first.revision is not None
    clone = tmp_path / "clone"
    _git("clone", "--quiet", str(remote), str(clone))
    published = _files(clone)
    assert {
        k.removeprefix("leaderboard/"): v
        for k, v in published.items()
        if "/" in k and k.startswith("leaderboard/")
    } == _files(built_site)
    for relative in ("tiny-method/kitti-step-val.json", "xss-probe/kitti-step-val.json"):
        assert published[f"submissions/{relative}"] == (store_layout.store / relative).read_bytes()
    message = _git("log", "-1", "--format=%B", cwd=clone)
    assert message.startswith("Publish vpsbench leaderboard: 3 records on 1 dataset splits")
    assert _git("log", "-1", "--format=%an <%ae>", cwd=clone).strip() == (
        "vpsbench <vpsbench@localhost>"
    )

    second = publish(str(remote), store_layout.store, built_site)
    assert not second.changed and second.revision == first.revision
    assert _git("rev-list", "--count", "--all", cwd=remote).strip() == "1"


def test_publish_builds_the_site_and_commits_changes(
    store_layout: StoreLayout, built_site: Path, remote: Path, tmp_path: Path
) -> None:
    store = Path(shutil.copytree(store_layout.store, tmp_path / "store"))
    publish(str(remote), store)  # no --site: built anew, identical bytes
    clone = tmp_path / "clone"
    _git("clone", "--quiet", str(remote), str(clone))
    assert (clone / "leaderboard" / "index.html").read_bytes() == (
        built_site / "index.html"
    ).read_bytes()
    (store / "xss-probe").joinpath("kitti-step-val.json").unlink()
    write_record(
        store / "copy" / "kitti-step-val.json",
        read_record(store_layout.store / "paper-method" / "kitti-step-val.json").model_copy(
            update={"method": "copy"}
        ),
    )
    result = publish(str(remote), store)
    assert result.changed
    _git("pull", "--quiet", cwd=clone)
    assert not (clone / "submissions" / "xss-probe").exists()
    assert not (clone / "leaderboard" / "methods" / "xss-probe.html").exists()
    assert (clone / "submissions" / "copy" / "kitti-step-val.json").exists()
    assert _git("rev-list", "--count", "HEAD", cwd=clone).strip() == "2"


def test_publish_errors_are_one_line(store_layout: StoreLayout, tmp_path: Path) -> None:
    with pytest.raises(VpsbenchError, match=r"^git clone failed: .*") as caught:
        publish(str(tmp_path / "no-such-remote"), store_layout.store)
    assert "\n" not in str(caught.value)
    with pytest.raises(VpsbenchError, match="is not a git remote"):
        publish("--upload-pack=touch /tmp/x", store_layout.store)
    with pytest.raises(VpsbenchError, match="not a valid branch name"):
        publish(str(tmp_path), store_layout.store, branch="../evil")


def test_hub_targets_fail_with_one_clear_line(
    store_layout: StoreLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach the real hub from a test
    with pytest.raises(VpsbenchError) as caught:
        publish("hf://datasets/vpsbench/leaderboard", store_layout.store)
    message = str(caught.value)
    assert "\n" not in message
    if importlib.util.find_spec("huggingface_hub") is None:
        assert message == "publishing to hf:// needs huggingface_hub: pip install 'vpsbench[hub]'"
    else:
        assert message.startswith("cannot publish to the Hugging Face Hub at hf://datasets/")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("hf://datasets/owner/name", ("dataset", "owner/name")),
        ("hf://spaces/owner/board", ("space", "owner/board")),
    ],
)
def test_hub_target_parsing(target: str, expected: tuple[str, str]) -> None:
    parsed = parse_hub_target(target)
    assert (parsed.repo_type, parsed.repo_id) == expected


@pytest.mark.parametrize(
    "target", ["hf://models/owner/name", "hf://datasets/owner", "hf://datasets/../x/y", "hf://"]
)
def test_bad_hub_targets(target: str) -> None:
    with pytest.raises(VpsbenchError, match="expected hf://datasets"):
        parse_hub_target(target)
