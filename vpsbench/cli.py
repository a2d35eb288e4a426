"""The ``vpsbench`` command line: evaluate, validate, datasets, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vpsbench.datasets import Dataset, dataset_class, dataset_names, open_dataset
from vpsbench.errors import VpsbenchError
from vpsbench.evaluation import (
    ALL_METRICS,
    EvaluationJob,
    EvaluationSettings,
    evaluate,
    select_sequences,
)
from vpsbench.matching import MatchingMode
from vpsbench.predictions import PredictionFormat, PredictionSource
from vpsbench.report import render_result
from vpsbench.results import write_results

app = typer.Typer(
    help="Evaluate unsupervised video panoptic segmentation (STQ/AQ/SQ, VPQ, PQ).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="List, describe and verify datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

console = Console()
errors = Console(stderr=True)

DatasetOption = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")]
RootOption = Annotated[
    Path | None,
    typer.Option(help="Dataset root (default: config file, then $VPSBENCH_DATA/<dataset>)."),
]
SplitOption = Annotated[str | None, typer.Option(help="Split (default: the dataset's eval split).")]
ProtocolOption = Annotated[
    list[str] | None,
    typer.Option("--protocol", "-p", help="Protocol setting KEY=VALUE (repeatable)."),
]


def _error_line(text: str) -> None:
    """Print one unwrapped line to stderr (error lines must stay greppable, one per problem)."""
    print(text, file=sys.stderr)


def _parse_protocol(pairs: list[str] | None) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VpsbenchError(f"--protocol expects KEY=VALUE, got {pair!r}")
        chosen[key.strip()] = value.strip()
    return chosen


def _csv(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def _default_split(dataset: Dataset) -> str:
    splits = dataset.facts.splits
    for preferred in ("val", "validation"):
        if preferred in splits:
            return preferred
    return splits[0]


def _open_job(
    dataset_name: str,
    root: Path | None,
    split: str | None,
    protocol: list[str] | None,
    pred: Path,
    pred_format: str,
    pred_divisor: int,
    num_classes: int | None,
) -> EvaluationJob:
    dataset = open_dataset(dataset_name, root, _parse_protocol(protocol))
    chosen_split = split or _default_split(dataset)
    if chosen_split not in dataset.facts.splits:
        splits = ", ".join(dataset.facts.splits)
        raise VpsbenchError(f"{dataset_name} has no split {chosen_split!r}; splits: {splits}")
    predictions = PredictionSource.open(pred, pred_format, pred_divisor, num_classes)
    return EvaluationJob(dataset, chosen_split, predictions)


PredOption = Annotated[Path, typer.Option("--pred", help="Prediction folder (see docs).")]
FormatOption = Annotated[
    str,
    typer.Option(
        "--pred-format",
        help=f"auto or one of: {', '.join(f.value for f in PredictionFormat)}.",
    ),
]
DivisorOption = Annotated[int, typer.Option("--pred-divisor", help="Divisor of divisor16 PNGs.")]
NumClassesOption = Annotated[
    int | None,
    typer.Option("--num-classes", help="Declared number of pseudo-classes (ids beyond: error)."),
]


@app.command("evaluate")
def evaluate_command(
    pred: PredOption,
    dataset: DatasetOption,
    root: RootOption = None,
    split: SplitOption = None,
    protocol: ProtocolOption = None,
    matching: Annotated[
        MatchingMode, typer.Option(help="How pseudo-classes are matched to classes.")
    ] = MatchingMode.THING_STUFF_HUNGARIAN,
    pred_format: FormatOption = "auto",
    pred_divisor: DivisorOption = 1000,
    num_classes: NumClassesOption = None,
    pred_things: Annotated[
        str | None,
        typer.Option(help="Comma-separated pseudo thing classes (default: those with instances)."),
    ] = None,
    metrics: Annotated[str, typer.Option(help="Comma-separated: stq,vpq,pq.")] = ",".join(
        ALL_METRICS
    ),
    sequences: Annotated[
        str | None, typer.Option(help="Comma-separated subset of sequences.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (results are identical).")] = 1,
    void_as_class: Annotated[
        bool,
        typer.Option(
            "--void-as-class/--no-void-as-class",
            help="DeepLab2: labelled pixels predicted void form an extra IoU-0 class in SQ.",
        ),
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Write all numbers as JSON here.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Score a prediction folder under the unsupervised protocol (paper Sec. 3.3)."""
    job = _open_job(dataset, root, split, protocol, pred, pred_format, pred_divisor, num_classes)
    things = _csv(pred_things)
    settings = EvaluationSettings(
        matching=matching,
        pseudo_things=tuple(int(t) for t in things) if things is not None else None,
        metrics=tuple(_csv(metrics) or ()),
        count_void_column=void_as_class,
    )
    wanted = _csv(sequences)
    total = len(wanted) if wanted else len(job.dataset.sequences(job.split))
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{dataset} {job.split}", total=total)
        result = evaluate(
            job,
            settings,
            sequences=wanted,
            workers=workers,
            on_sequence=lambda s: progress.update(task, advance=1, description=s.name),
        )
    render_result(result, console)
    if output is not None:
        write_results(output, result)
        console.print(f"results written to {output}")


@app.command("validate")
def validate_command(
    pred: PredOption,
    dataset: DatasetOption,
    root: RootOption = None,
    split: SplitOption = None,
    protocol: ProtocolOption = None,
    pred_format: FormatOption = "auto",
    pred_divisor: DivisorOption = 1000,
    num_classes: NumClassesOption = None,
    sequences: Annotated[str | None, typer.Option(help="Comma-separated subset.")] = None,
) -> None:
    """Check a submission (every frame present, readable, right size, ids in range)."""
    job = _open_job(dataset, root, split, protocol, pred, pred_format, pred_divisor, num_classes)
    selected = select_sequences(job.dataset.sequences(job.split), _csv(sequences), dataset)
    problems: list[str] = []
    checked = 0
    expected: set[Path] = set()
    for sequence in selected:
        for frame in sequence.frames:
            checked += 1
            expected.add(job.predictions.path_of(frame))
            try:
                shape = job.dataset.load_ground_truth(job.split, frame).shape
                job.predictions.read(frame, shape)
            except VpsbenchError as error:
                problems.append(str(error))
    extra = sorted(
        p
        for p in job.predictions.root.rglob("*")
        if p.is_file() and p.suffix in {".png", ".npz", ".txt"} and p not in expected
    )
    for problem in problems:
        _error_line(problem)
    for path in extra[:20]:
        _error_line(f"{path}: not a frame of {dataset} {job.split} (ignored)")
    if problems:
        _error_line(f"{len(problems)} problem(s) in {checked} frames")
        raise typer.Exit(1)
    console.print(f"ok: {checked} frames of {len(selected)} sequences are valid")


@datasets_app.command("list")
def datasets_list() -> None:
    """The datasets vpsbench knows."""
    table = Table("name", "description", "splits")
    for name in dataset_names():
        cls = dataset_class(name)
        table.add_row(name, cls.description, ", ".join(cls.facts.splits))
    console.print(table)


@datasets_app.command("info")
def datasets_info(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    protocol: ProtocolOption = None,
) -> None:
    """Facts, protocol options and the class mapping into the evaluation label space."""
    cls = dataset_class(name)
    dataset = cls(Path("."), _parse_protocol(protocol))
    facts = cls.facts
    console.print(f"[bold]{name}[/bold] — {cls.description}")
    for label, value in (
        ("splits", ", ".join(facts.splits)),
        ("resolution", facts.resolution),
        ("annotated frames", facts.annotated_frames),
        ("layout", facts.layout),
        *facts.extra.items(),
        ("citation", facts.citation),
    ):
        if value:
            console.print(f"  {label}: {value}", highlight=False)
    if cls.protocol_options:
        options = Table("protocol option", "value", "choices", "meaning", title="Protocol")
        for key, option in cls.protocol_options.items():
            options.add_row(
                key, dataset.protocol[key], ", ".join(option.choices) or "integer", option.doc
            )
        console.print(options)
    space = dataset.label_space()
    classes = Table(
        "id",
        "class",
        "kind",
        "evaluated",
        title=f"Evaluation label space {space.name} (ignore = {space.ignore_label})",
    )
    for c, class_name in enumerate(space.class_names):
        classes.add_row(
            str(c),
            class_name,
            "thing" if c in space.thing_classes else "stuff",
            "yes" if c in space.evaluated_classes else "no",
        )
    console.print(classes)
    mapping = Table("native id", "native class", "→ class", "note", title="Mapping")
    for row in dataset.class_mapping():
        target = (
            "ignore"
            if row.target_id == space.ignore_label
            else f"{row.target_id} {space.class_names[row.target_id]}"
        )
        mapping.add_row(str(row.native_id), row.native_name, target, row.note)
    console.print(mapping)


@datasets_app.command("verify")
def datasets_verify(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    root: RootOption = None,
    split: SplitOption = None,
    protocol: ProtocolOption = None,
) -> None:
    """Check a dataset on disk and report every problem found."""
    dataset = open_dataset(name, root, _parse_protocol(protocol))
    chosen = split or _default_split(dataset)
    problems = dataset.verify(chosen)
    for problem in problems:
        _error_line(str(problem))
    if problems:
        _error_line(f"{len(problems)} problem(s) in {name} {chosen} at {dataset.root}")
        raise typer.Exit(1)
    console.print(f"ok: {name} {chosen} at {dataset.root} looks complete")


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option(help="Where the example data goes.")] = Path("vpsbench-demo"),
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Generate a small example (KITTI-STEP layout + noisy predictions) and evaluate it."""
    from vpsbench.demo import prepare_demo

    dataset_root, predictions = prepare_demo(out, console)
    evaluate_command(
        pred=predictions,
        dataset="kitti-step",
        root=dataset_root,
        split="val",
        workers=workers,
        output=out / "results.json",
    )


def main() -> None:
    """Entry point: run the app, turning expected errors into one line and exit code 2."""
    try:
        app()
    except VpsbenchError as error:
        _error_line(f"error: {error}")
        sys.exit(2)
