"""Run the real ``vpsbench`` entry point in-process, as a user's shell would, for CLI tests."""

from __future__ import annotations

import sys

import pytest

from vpsbench.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the real entry point in-process; return (exit code, stdout, stderr)."""
    old_argv = sys.argv
    sys.argv = ["vpsbench", *args]
    code = 0
    try:
        main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err
