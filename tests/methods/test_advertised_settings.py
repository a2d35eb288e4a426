"""`methods info` and `run-method NAME --help` advertise exactly the settings `--set` accepts."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.cli_runner import run_cli
from vpsbench.errors import VpsbenchError
from vpsbench.methods import build_config, method_class, method_names


def _text(value: object) -> str:
    """A ``--set`` value that means ``value`` (the field's own default)."""
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(item) for item in value)
    return str(value)


def _advertised(out: str) -> set[str]:
    """Setting names in the first column of the settings table and in `--set KEY=` hints."""
    rows = set(re.findall(r"^[│┃] (\w+)\s+[│┃]", out, flags=re.MULTILINE)) - {"setting"}
    hints = set(re.findall(r"--set ([a-z][a-z0-9_]*)=", out))
    return rows | hints


@pytest.mark.parametrize("name", method_names())
def test_every_advertised_setting_is_accepted_and_every_accepted_one_advertised(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    try:
        cls = method_class(name)
    except VpsbenchError as error:
        pytest.skip(f"method {name} cannot load here: {error}")
    code, out, err = run_cli(["methods", "info", name], capsys)
    assert code == 0, err
    advertised = _advertised(out)
    fields = {item.name: item for item in dataclasses.fields(cls.config_class)}
    assert advertised == set(fields)
    for key, item in fields.items():
        default = (
            item.default if item.default_factory is dataclasses.MISSING else item.default_factory()
        )
        build_config(cls.config_class, overrides=[f"{key}={_text(default)}"])
    code, out, err = run_cli(["run-method", name, "--help"], capsys)
    assert code == 0, err
    assert _advertised(out) >= set(fields)


def test_videocups_does_not_advertise_a_weights_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    try:
        cls = method_class("videocups")
    except VpsbenchError as error:
        pytest.skip(f"videocups cannot load here: {error}")
    _, out, _ = run_cli(["methods", "info", "videocups"], capsys)
    assert "--set weights=" not in out
    with pytest.raises(VpsbenchError, match="--set 'weights=x'"):
        build_config(cls.config_class, overrides=["weights=x"])


def test_run_method_help_of_an_unknown_method_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(["run-method", "no-such-method", "--help"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if line.startswith("error: unknown method")
    ]
