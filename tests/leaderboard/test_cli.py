"""The leaderboard commands end to end, registered on a small typer app as cli.py will do."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.leaderboard.conftest import StoreLayout
from tests.leaderboard.fixtures import XSS_NAME, reported_record
from vpsbench.errors import VpsbenchError
from vpsbench.leaderboard.cli import leaderboard_app, submit_command
from vpsbench.records import read_record, record_to_json, write_record

app = typer.Typer(pretty_exceptions_enable=False)
app.add_typer(leaderboard_app, name="leaderboard")
app.command("submit")(submit_command)


def run(args: list[str]) -> tuple[int, str, str]:
    """Invoke the app; an expected error becomes its one line and exit code 2 (as ``main``)."""
    result = CliRunner().invoke(app, args)
    if isinstance(result.exception, VpsbenchError):
        return 2, result.stdout, f"error: {result.exception}\n"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def environment(store_layout: StoreLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private store copy; datasets resolve through $VPSBENCH_DATA."""
    monkeypatch.setenv("VPSBENCH_DATA", str(store_layout.data_root))
    monkeypatch.setenv("VPSBENCH_CONFIG", str(tmp_path / "no-config.toml"))
    return Path(shutil.copytree(store_layout.store, tmp_path / "store"))


def test_submit(environment: Path, tmp_path: Path) -> None:
    incoming = tmp_path / "new.json"
    write_record(incoming, reported_record(method="newcomer", numbers=(0.2, 0.1, 0.4)))
    code, out, _ = run(["submit", str(incoming), "--store", str(environment)])
    assert code == 0 and "record filed at" in out
    assert read_record(environment / "newcomer" / "kitti-step-val.json").method == "newcomer"

    bad = tmp_path / "bad.json"
    write_record(bad, reported_record(method="liar", numbers=(0.5, 0.1, 0.4)))
    code, _, err = run(["submit", str(bad), "--store", str(environment)])
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {bad}: record rejected: STQ 0.5 != sqrt(AQ 0.1 · SQ 0.4)")
    assert not (environment / "liar").exists()

    escape = tmp_path / "escape.json"
    escape.write_text(
        record_to_json(reported_record()).replace('"paper-method"', '"../../evil"'),
        encoding="utf-8",
    )
    code, _, err = run(["submit", str(escape), "--store", str(environment)])
    assert code == 2 and "invalid record: method" in err
    assert not (tmp_path / "evil").exists()


def test_submit_completes_what_made_the_predictions(environment: Path, tmp_path: Path) -> None:
    stored = environment / "tiny-method" / "kitti-step-val.json"
    incoming = tmp_path / "evaluated.json"
    shutil.copy(stored, incoming)
    command = "vpsbench run-method tiny-method --dataset kitti-step --stage pseudo-label"
    args = ["submit", str(incoming), "--store", str(environment)]
    notes = "predictions: the run's pseudo-label/labels"
    completed = ["--model", "training-free", "--command", command, "--notes", notes]
    code, _, err = run([*args, *completed])
    assert code == 2 and "already exists in the store; pass --replace" in err
    code, _, err = run([*args, *completed, "--replace"])
    assert code == 0, err
    filed = read_record(stored)
    assert (filed.model, filed.command, filed.schema_version) == ("training-free", command, 2)
    assert filed.notes == notes
    assert filed.metrics == read_record(incoming).metrics

    write_record(incoming, filed)
    code, _, err = run([*args, "--model", "stand-in"])
    assert code == 2 and "already states model 'training-free'; not replaced" in err
    code, _, err = run([*args, "--command", "vpsbench run-method tiny-method --dataset waymo"])
    assert code == 2 and "already states command" in err
    shutil.copy(environment / "paper-method" / "kitti-step-val.json", incoming)
    code, _, err = run([*args, "--model", "stand-in"])
    assert code == 2 and "only a reproduced record can come from a weight-free stand-in" in err
    code, _, err = run([*args, "--model", "magic"])
    assert code == 2 and "--model: Input should be" in err
    code, _, err = run([*args, "--command", "make predictions"])
    assert code == 2 and "command does not run vpsbench" in err
    assert read_record(environment / "paper-method" / "kitti-step-val.json").model is None


def test_show_prints_names_literally(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(["leaderboard", "show", "--store", str(environment)])
    assert code == 0
    assert XSS_NAME in out and "Tiny Method" in out and "reproduced" in out and "37.3" in out
    code, _, err = run(["leaderboard", "show", "--dataset", "waymo", "--store", str(environment)])
    assert code == 2 and "no records for dataset 'waymo'" in err


def test_build_verify_publish(
    environment: Path,
    store_layout: StoreLayout,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = tmp_path / "site"
    code, out, _ = run(["leaderboard", "build", "--out", str(site), "--store", str(environment)])
    assert code == 0 and "11 files written" in out
    assert json.loads((site / "leaderboard.json").read_text())["boards"][0]["dataset"] == (
        "kitti-step"
    )

    pred_root = str(store_layout.pred_root)
    code, out, _ = run(
        ["leaderboard", "verify", "--pred-root", pred_root, "--store", str(environment)]
    )
    assert code == 0 and "1 checked, 0 failed, 2 not checked" in out

    record_file = environment / "tiny-method" / "kitti-step-val.json"
    record = read_record(record_file)
    tampered = record.metrics.model_copy(update={"sq": record.metrics.sq - 0.001})
    write_record(record_file, record.model_copy(update={"metrics": tampered}))
    code, out, err = run(
        ["leaderboard", "verify", "--pred-root", pred_root, "--store", str(environment)]
    )
    assert code == 1 and "1 checked, 1 failed" in out
    assert f"tiny-method/kitti-step-val.json: sq: record has {tampered.sq!r}" in err

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    args = ["leaderboard", "publish", "--to", str(remote), "--store", str(store_layout.store)]
    code, out, _ = run(args)
    assert code == 0 and "published to" in out
    code, out, _ = run(args)
    assert code == 0 and "nothing to publish" in out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run([*args[:3], "hf://spaces/someone/board", *args[4:]])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
