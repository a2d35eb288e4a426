"""Nothing of the user's is lost: bad paths are one error line, records and sites are never
overwritten, half-written or raced (issue 17, part B)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.leaderboard.conftest import StoreLayout
from tests.leaderboard.fixtures import reported_record
from tests.leaderboard.test_cli import run
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.leaderboard import locking
from vpsbench.leaderboard.build import MANIFEST_NAME, build_leaderboard
from vpsbench.leaderboard.store import LOCK_NAME, submit_record
from vpsbench.records import ResultRecord, read_record, record_to_json, write_record

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _store(tmp_path: Path, layout: StoreLayout) -> Path:
    return Path(shutil.copytree(layout.store, tmp_path / "store"))


# --- paths that are not folders: one line, exit 2, nothing written ---------------------------


def test_store_and_out_that_are_files_are_one_error_line(
    store_layout: StoreLayout, tmp_path: Path
) -> None:
    record = tmp_path / "new.json"
    write_record(record, reported_record(method="newcomer"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine", encoding="utf-8")
    store = _store(tmp_path, store_layout)
    cases = [
        (["submit", str(record), "--store", str(a_file)], "--store: not a folder"),
        (["submit", str(record), "--store", str(a_file / "sub")], "is not a folder"),
        (["leaderboard", "build", "--store", str(store), "--out", str(a_file)], "--out: not a"),
        (["leaderboard", "build", "--store", str(store), "--out", str(a_file / "x")], "--out"),
        (["leaderboard", "build", "--store", str(a_file)], "store not a folder"),
        (["leaderboard", "show", "--store", str(a_file)], "store not a folder"),
    ]
    for args, expected in cases:
        code, _, err = run(args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (args, err)
        assert expected in err, (args, err)
    assert a_file.read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "new.json", "store"]


def test_out_that_holds_the_store_or_the_working_folder_is_refused(
    store_layout: StoreLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, store_layout)
    with pytest.raises(InputError, match="must not hold the store"):
        build_leaderboard(store, tmp_path)
    with pytest.raises(InputError, match="must not lie inside the store"):
        build_leaderboard(store, store / "site")
    monkeypatch.chdir(tmp_path / "store")
    with pytest.raises(InputError, match="cannot hold the current folder"):
        build_leaderboard(store, Path(".."))
    assert _files(store) == _files(store_layout.store)


# --- submit: never overwrite without --replace, never a reported record ----------------------


def _reproduced(store: Path) -> ResultRecord:
    return read_record(store / "tiny-method" / "kitti-step-val.json")


def test_submit_never_overwrites_without_replace(store_layout: StoreLayout, tmp_path: Path) -> None:
    store = _store(tmp_path, store_layout)
    target = store / "paper-method" / "kitti-step-val.json"
    original = target.read_bytes()
    other = reported_record(numbers=(0.2, 0.1, 0.4))
    with pytest.raises(VpsbenchError, match="already exists in the store; pass --replace"):
        submit_record(store, other)
    assert target.read_bytes() == original
    assert submit_record(store, read_record(target)) == target  # the same record again: a no-op
    submit_record(store, other, replace=True)
    assert read_record(target).metrics.stq == 0.2

    incoming = tmp_path / "incoming.json"
    write_record(incoming, reported_record(numbers=(0.3, 0.3, 0.3)))
    code, _, err = run(["submit", str(incoming), "--store", str(store)])
    assert code == 2 and err.count("\n") == 1 and "pass --replace" in err
    assert read_record(target).metrics.stq == 0.2
    code, _, err = run(["submit", str(incoming), "--store", str(store), "--replace"])
    assert code == 0, err
    assert read_record(target).metrics.stq == 0.3


def test_a_reproduced_record_never_replaces_a_reported_one(
    store_layout: StoreLayout, tmp_path: Path
) -> None:
    store = _store(tmp_path, store_layout)
    reproduced = _reproduced(store).model_copy(update={"method": "paper-method"})
    target = store / "paper-method" / "kitti-step-val.json"
    original = target.read_bytes()
    for replace in (False, True):
        with pytest.raises(VpsbenchError, match="reproduced record never replaces it"):
            submit_record(store, reproduced, replace=replace)
    assert target.read_bytes() == original


def test_the_papers_record_in_the_repository_store_is_safe(
    store_layout: StoreLayout, tmp_path: Path
) -> None:
    store = Path(shutil.copytree(REPO / "submissions", tmp_path / "submissions"))
    target = store / "cups-sort" / "kitti-step-val.json"
    paper = read_record(target)
    assert paper.provenance == "reported" and paper.citation is not None
    ours = _reproduced(store_layout.store).model_copy(update={"method": "cups-sort"})
    command = "vpsbench run-method cups-sort --dataset kitti-step"
    for record in (
        ours,
        ours.model_copy(update={"model": "trained"}),
        ours.model_copy(update={"model": "stand-in", "command": command}),
    ):
        for replace in (False, True):
            with pytest.raises(VpsbenchError, match="never replaces it"):
                submit_record(store, record, replace=replace)
    assert read_record(target) == paper


def test_concurrent_submissions_of_one_record_never_both_win(
    store_layout: StoreLayout, tmp_path: Path
) -> None:
    store = _store(tmp_path, store_layout)
    records = [
        reported_record(method="racer", numbers=(0.2, 0.1, 0.4)),
        reported_record(method="racer", numbers=(0.3, 0.3, 0.3)),
    ]
    barrier = threading.Barrier(len(records))
    outcomes: list[str] = []

    def submit(record: ResultRecord) -> None:
        barrier.wait()
        try:
            submit_record(store, record)
            outcomes.append("filed")
        except VpsbenchError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=submit, args=(record,)) for record in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("filed") == 1, outcomes
    assert "pass --replace" in next(o for o in outcomes if o != "filed")
    assert not (store / LOCK_NAME).exists()


def test_a_held_store_lock_is_a_clear_error_after_the_timeout(
    store_layout: StoreLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, store_layout)
    monkeypatch.setattr(locking, "LOCK_TIMEOUT", 0.3)
    started = time.monotonic()
    with (
        locking.exclusive_lock(store / LOCK_NAME, "test"),
        pytest.raises(InputError, match="locked by another vpsbench command"),
    ):
        submit_record(store, reported_record(method="waiter"))
    assert time.monotonic() - started < 10
    assert not (store / "waiter").exists()
    submit_record(store, reported_record(method="waiter"))  # released: it goes through
    assert (store / "waiter" / "kitti-step-val.json").is_file()


# --- leaderboard build: the user's files stay, the swap is atomic, builds do not race --------


def test_build_keeps_the_users_files_and_refuses_to_overwrite_them(
    store_layout: StoreLayout, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    mine = {
        "records/mine.json": "{}",
        "records/paper-method/notes.txt": "mine",
        "methods/draft.html": "<p>draft</p>",
        "assets/logo.svg": "<svg/>",
        "CNAME": "board.example.org",
    }
    for relative, text in mine.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(text, encoding="utf-8")
    for _ in range(2):  # into a folder with the user's files, then over its own build
        build_leaderboard(store_layout.store, out)
        for relative, text in mine.items():
            assert (out / relative).read_text(encoding="utf-8") == text, relative
        assert (out / "methods" / "tiny-method.html").is_file()

    clash = tmp_path / "clash"
    (clash / "methods").mkdir(parents=True)
    (clash / "methods" / "tiny-method.html").write_text("my own page", encoding="utf-8")
    with pytest.raises(InputError, match="not written by `vpsbench leaderboard build`"):
        build_leaderboard(store_layout.store, clash)
    assert _files(clash) == {"methods/tiny-method.html": b"my own page"}


def test_a_site_built_before_manifests_is_rebuilt_keeping_the_users_files(
    store_layout: StoreLayout, built_site: Path, tmp_path: Path
) -> None:
    legacy = Path(shutil.copytree(built_site, tmp_path / "legacy"))
    (legacy / MANIFEST_NAME).unlink()
    (legacy / "methods" / "gone.html").write_text(
        (legacy / "methods" / "paper-method.html").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (legacy / "methods" / "mine.html").write_text("<p>mine</p>", encoding="utf-8")
    (legacy / "records" / "paper-method" / "mine.json").write_text("{}", encoding="utf-8")
    build_leaderboard(store_layout.store, legacy)
    assert not (legacy / "methods" / "gone.html").exists()  # generated: the old build's page
    assert (legacy / "methods" / "mine.html").read_text(encoding="utf-8") == "<p>mine</p>"
    assert (legacy / "records" / "paper-method" / "mine.json").read_text(encoding="utf-8") == "{}"


def test_a_forged_manifest_is_refused(store_layout: StoreLayout, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_leaderboard(store_layout.store, out)
    (out / "secret.txt").write_text("mine", encoding="utf-8")
    (out / MANIFEST_NAME).write_text(
        '{"generator": "vpsbench leaderboard build", "files": ["../secret.txt"]}', encoding="utf-8"
    )
    with pytest.raises(InputError, match="not a path inside the site"):
        build_leaderboard(store_layout.store, out)
    assert (out / "secret.txt").read_text(encoding="utf-8") == "mine"


def _big_store(folder: Path, count: int) -> Path:
    """A store of ``count`` reported records (a build long enough to be killed midway)."""
    for index in range(count):
        record = reported_record(method=f"method-{index:04d}", name=f"Method {index}")
        path = folder / record.method / "kitti-step-val.json"
        path.parent.mkdir(parents=True)
        path.write_text(record_to_json(record), encoding="utf-8")
    return folder


def _build_process(store: Path, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "vpsbench", "leaderboard", "build"]
    return subprocess.Popen(
        [*command, "--store", str(store), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _newest_write(folder: Path, since: int) -> bool:
    """Whether any file under ``folder`` was written after ``since`` (ns)."""
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                if os.stat(os.path.join(root, name)).st_mtime_ns > since:
                    return True
            except FileNotFoundError:
                continue
    return False


def test_a_killed_build_leaves_the_previous_site_whole(
    store_layout: StoreLayout, tmp_path: Path
) -> None:
    out = tmp_path / "boards" / "site"
    build_leaderboard(store_layout.store, out)
    before = _files(out)
    big = _big_store(tmp_path / "big", 150)
    started = time.time_ns()
    process = _build_process(big, out)
    deadline = time.monotonic() + 60
    while process.poll() is None and not _newest_write(out.parent, started):
        assert time.monotonic() < deadline, "the build wrote nothing"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    after = _files(out)
    if after != before:  # the swap happened before the kill: then the new site is whole
        assert process.returncode == 0
        assert len([name for name in after if name.startswith("methods/")]) == 150

    build_leaderboard(big, out)  # the next build cleans up what the killed one left
    assert sorted(p.name for p in out.parent.iterdir()) == ["site"]
    assert len([name for name in _files(out) if name.startswith("records/")]) == 150


def test_concurrent_builds_into_one_folder_both_succeed(
    store_layout: StoreLayout, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    big = _big_store(tmp_path / "big", 60)
    processes = [_build_process(big, out) for _ in range(2)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    assert len([name for name in _files(out) if name.startswith("methods/")]) == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "site"]
