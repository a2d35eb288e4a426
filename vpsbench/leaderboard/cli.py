"""The ``vpsbench leaderboard`` commands (show, export, build, verify, publish) and ``submit``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.exports import ExportFormat, render_table
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.leaderboard.build import build_leaderboard
from vpsbench.leaderboard.database import LeaderboardDatabase
from vpsbench.leaderboard.exports import paper_table
from vpsbench.leaderboard.publish import publish
from vpsbench.leaderboard.site import REFERENCE_LABEL, STAND_IN_LABEL, display_name, percent
from vpsbench.leaderboard.store import (
    STORE_ENV,
    chosen_store,
    existing_store,
    load_store,
    submit_file,
)
from vpsbench.leaderboard.verify import verify_records

leaderboard_app = typer.Typer(
    help="Show, build, verify and publish the leaderboard of result records.",
    no_args_is_help=True,
)


def _console() -> Console:
    """A console made per command, so the terminal width ($COLUMNS) is read when it runs."""
    return Console()


StoreOption = Annotated[
    Path | None,
    typer.Option("--store", help=f"Submissions store (default: ${STORE_ENV}, else ./submissions)."),
]


def submit_command(
    record: Annotated[Path, typer.Argument(help="Record JSON to validate and file.")],
    store: StoreOption = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="What made the predictions, where the record does not say: published, trained, "
            "training-free, stand-in (vpsbench's weight-free stand-in) or external."
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help="The command line that regenerates the predictions, where the record lacks it."
        ),
    ] = None,
    notes: Annotated[
        str | None, typer.Option(help="Notes (where the predictions are), if the record has none.")
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Overwrite a different record already filed for the same method, dataset and "
            "split (a reported record is never replaced by a reproduced one).",
        ),
    ] = False,
) -> None:
    """Validate a result record and file it at <store>/<method>/<dataset>-<split>.json."""
    target = submit_file(
        chosen_store(store), record, model=model, command=command, notes=notes, replace=replace
    )
    _console().print(f"record filed at {target}", highlight=False)


@leaderboard_app.command("show")
def show_command(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Only this dataset.")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Print the leaderboard tables in the terminal (STQ, AQ, SQ, VPQ in %)."""
    database = LeaderboardDatabase.from_records(load_store(existing_store(store)))
    console = _console()
    try:
        boards = [key for key in database.boards() if dataset is None or key.dataset == dataset]
        if not boards:
            raise VpsbenchError(f"no records for dataset {dataset!r}" if dataset else "no records")
        for key in boards:
            table = Table("#", "method", "provenance", "STQ", "AQ", "SQ", "VPQ", title=key.label)
            for row in database.board(key):
                style = "italic yellow" if row.provenance == "reported" else "bold green"
                provenance = Text(row.provenance, style=style)
                if row.stand_in:
                    provenance.append(f" ({STAND_IN_LABEL})", style="dim")
                if row.reference:
                    provenance.append(f" ({REFERENCE_LABEL})", style="cyan")
                table.add_row(
                    "–" if row.rank is None else str(row.rank),
                    Text(display_name(row.method_name, row.stand_in)),
                    provenance,
                    *(percent(v) for v in (row.stq, row.aq, row.sq, row.vpq)),
                )
            console.print(table)
    finally:
        database.close()


@leaderboard_app.command("export")
def export_command(
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="csv, markdown or latex.")
    ] = ExportFormat.MARKDOWN,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Only this dataset's boards.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --output file.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """A paper-ready table: methods × datasets, per dataset STQ, AQ, SQ (then VPQ, PQ)."""
    if output is not None:
        if output.is_dir():
            raise InputError(output, "--output names a folder; give a file name")
        if output.exists() and not overwrite:
            raise InputError(output, "--output exists; pass --overwrite to replace it")
        if not output.parent.is_dir():
            raise InputError(output, f"--output: folder {output.parent} does not exist")
    database = LeaderboardDatabase.from_records(load_store(existing_store(store)))
    try:
        text = render_table(paper_table(database, dataset), export_format)
    finally:
        database.close()
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(output, text)
        print(f"table written to {output}", file=sys.stderr)


@leaderboard_app.command("build")
def build_command(
    out: Annotated[Path, typer.Option("--out", help="Site folder to write.")] = Path("leaderboard"),
    store: StoreOption = None,
) -> None:
    """Build the static site (index.html, method pages, leaderboard.json and .md)."""
    written = build_leaderboard(existing_store(store), out)
    _console().print(f"{len(written)} files written to {out}", highlight=False)


@leaderboard_app.command("verify")
def verify_command(
    pred_root: Annotated[
        Path, typer.Option("--pred-root", help="Predictions at <root>/<method>/<dataset>-<split>/.")
    ],
    store: StoreOption = None,
    workers: Annotated[int, typer.Option(help="Worker processes per evaluation.")] = 1,
) -> None:
    """Re-evaluate reproduced records whose predictions are available; flag what differs."""
    if not pred_root.is_dir():
        problem = "is not a folder" if pred_root.exists() else "no such folder"
        raise InputError(pred_root, f"--pred-root: {problem}")
    outcomes = verify_records(load_store(existing_store(store), check=False), pred_root, workers)
    console = _console()
    table = Table("record", "status", "detail")
    for outcome in outcomes:
        style = {"ok": "green", "failed": "bold red"}.get(outcome.status, "dim")
        detail = outcome.reason or (outcome.problems[0] if outcome.problems else "")
        table.add_row(Text(outcome.path), Text(outcome.status, style=style), Text(detail))
    console.print(table)
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    for outcome in failed:
        for problem in outcome.problems:
            print(f"{outcome.path}: {problem}", file=sys.stderr)
    checked = sum(outcome.status != "not checked" for outcome in outcomes)
    console.print(
        f"{checked} checked, {len(failed)} failed, {len(outcomes) - checked} not checked",
        highlight=False,
    )
    if failed:
        raise typer.Exit(1)


@leaderboard_app.command("publish")
def publish_command(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="Git remote (URL or path) or hf://datasets|spaces/<owner>/<name>."
        ),
    ],
    store: StoreOption = None,
    site: Annotated[
        Path | None, typer.Option("--site", help="Built site to publish (default: build anew).")
    ] = None,
    branch: Annotated[
        str | None, typer.Option(help="Git branch (default: the remote's default branch).")
    ] = None,
) -> None:
    """Push the records and the site to a git remote or the Hugging Face Hub."""
    result = publish(to, existing_store(store), site, branch)
    console = _console()
    if result.changed:
        console.print(f"published to {result.target} ({result.revision})", highlight=False)
    else:
        console.print(f"{result.target} is up to date; nothing to publish", highlight=False)
