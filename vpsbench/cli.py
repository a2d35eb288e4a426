"""The ``vpsbench`` command line: evaluate, validate, datasets, demo."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperCommand

from vpsbench import api
from vpsbench.config import resolve_dataset_root
from vpsbench.datasets import dataset_class, dataset_names, open_dataset
from vpsbench.datasets.common import require_regular_file
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.evaluation import (
    ALL_METRICS,
    EvaluationJob,
    check_official_split,
    frame_histogram,
    select_sequences,
)
from vpsbench.executors import ExecutorKind, reuse_freed_memory
from vpsbench.exports import ExportFormat, render_table, results_table
from vpsbench.leaderboard.cli import leaderboard_app, submit_command
from vpsbench.matching import MatchingMode
from vpsbench.predictions import PredictionFormat, PredictionSource
from vpsbench.records import neutralise_bidi, record_from_results, write_record
from vpsbench.report import render_result

app = typer.Typer(
    help="Evaluate unsupervised video panoptic segmentation (STQ/AQ/SQ, VPQ, PQ).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="List, describe and verify datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(leaderboard_app, name="leaderboard")
methods_app = typer.Typer(help="List and describe method plugins.", no_args_is_help=True)
app.add_typer(methods_app, name="methods")
app.command("submit")(submit_command)

console = Console(soft_wrap=True)
errors = Console(stderr=True)

DatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="Dataset name, or a dataset spec file (.toml/.yaml).")
]
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
    """Print one unwrapped line to stderr (error lines must stay greppable, one per problem).

    Bidirectional controls (e.g. in a file name) are shown as ``[U+202E]``, never disguising it.
    """
    print(neutralise_bidi(text), file=sys.stderr)


def _progress_bar(disable: bool = False) -> Progress:
    """The progress bar every long command shows on stderr (gone once done)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=disable,
        transient=True,
    )


def _parse_protocol(pairs: list[str] | None) -> dict[str, str]:
    return api.parse_protocol(pairs)


def _csv(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


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
    return api.open_job(
        dataset_name, root, split, protocol, pred, pred_format, pred_divisor, num_classes
    )


PredOption = Annotated[Path, typer.Option("--pred", help="Prediction folder (see docs).")]
FormatOption = Annotated[
    str,
    typer.Option(
        "--pred-format",
        help=f"auto or one of: {', '.join(f.value for f in PredictionFormat)}.",
    ),
]
DivisorOption = Annotated[int, typer.Option("--pred-divisor", help="Divisor of divisor16 PNGs.")]
ExecutorOption = Annotated[
    ExecutorKind,
    typer.Option(
        help="Where sequences run: local processes, or a Ray cluster (identical numbers)."
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(help="--executor ray: the cluster's head HOST:PORT (default $RAY_ADDRESS/local)."),
]
NumClassesOption = Annotated[
    int | None,
    typer.Option("--num-classes", help="Declared number of pseudo-classes (ids beyond: error)."),
]


class OutputFormat(StrEnum):
    """What ``evaluate`` prints on stdout."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"
    LATEX = "latex"


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
    metrics: Annotated[
        str,
        typer.Option(help="Comma-separated: stq,vpq,pq (default) and hota,clear,identity."),
    ] = ",".join(ALL_METRICS),
    sequences: Annotated[
        str | None, typer.Option(help="Comma-separated subset of sequences.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (results are identical).")] = 1,
    executor: ExecutorOption = ExecutorKind.LOCAL,
    ray_address: RayAddressOption = None,
    save_stats: Annotated[
        Path | None,
        typer.Option(help="Also save the statistics here (.npz) for `vpsbench rescore`."),
    ] = None,
    void_as_class: Annotated[
        bool,
        typer.Option(
            "--void-as-class/--no-void-as-class",
            help="DeepLab2: labelled pixels predicted void form an extra IoU-0 class in SQ.",
        ),
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Write all numbers as JSON here.")] = None,
    save_record: Annotated[
        Path | None,
        typer.Option(help="Write a result record here for `vpsbench submit` (needs --method)."),
    ] = None,
    method: Annotated[str | None, typer.Option(help="Method id of the record (a slug).")] = None,
    method_version: Annotated[str, typer.Option(help="Method version of the record.")] = "unknown",
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            help="What stdout gets: table (rich tables), json (the results JSON), or the summary "
            "as csv, markdown or latex.",
        ),
    ] = OutputFormat.TABLE,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Score a prediction folder under the unsupervised protocol (paper Sec. 3.3)."""
    if save_record is not None and method is None:
        raise VpsbenchError("--save-record needs --method NAME (the method id, e.g. videocups)")
    _check_record_identity(method, method_version)
    _check_output_paths(
        {"--output": output, "--save-record": save_record, "--save-stats": save_stats}
    )
    with _progress_bar(disable=quiet) as bar:
        results = api.evaluate(
            pred,
            dataset,
            root=root,
            split=split,
            protocol=protocol,
            matching=matching,
            pred_format=pred_format,
            pred_divisor=pred_divisor,
            num_classes=num_classes,
            pred_things=pred_things,
            metrics=metrics,
            sequences=sequences,
            workers=workers,
            void_as_class=void_as_class,
            progress=_progress_callback(bar, dataset),
            executor=executor,
            ray_address=ray_address,
            save_stats=save_stats,
        )
    _print_results(results, output_format)
    if save_stats is not None:
        _notice(
            f"statistics written to {save_stats} (score again with `vpsbench rescore`)",
            output_format,
        )
    if output is not None:
        results.save(output, overwrite=True)
        _notice(f"results written to {output}", output_format)
    if save_record is not None and method is not None:
        document = results.to_dict()
        divisor = pred_divisor if document["predictions"]["format"] == "divisor16" else None
        record = record_from_results(document, method, method_version, prediction_divisor=divisor)
        write_record(save_record, record)
        _notice(f"record written to {save_record} (file it with `vpsbench submit`)", output_format)


def _notice(text: str, output_format: OutputFormat) -> None:
    """A line for the user: on stdout under the tables, on stderr when stdout is data."""
    if output_format is OutputFormat.TABLE:
        console.print(text)
    else:
        print(text, file=sys.stderr)


def _progress_callback(bar: Progress, label: str) -> api.ProgressCallback:
    """Advance ``bar`` as ``api.evaluate`` reports finished sequences."""
    task = bar.add_task(label, total=None)

    def update(done: int, total: int, sequence: str) -> None:
        bar.update(task, completed=done, total=total, description=sequence or label)

    return update


def _print_results(results: api.Results, output_format: OutputFormat) -> None:
    """Print ``results`` on stdout in ``output_format`` (machine formats: plain text, no markup)."""
    if output_format is OutputFormat.TABLE and results.evaluation is not None:
        render_result(results.evaluation, console)
    elif output_format is OutputFormat.JSON:
        sys.stdout.write(results.to_json())
    else:
        table = results_table([results.to_dict()])
        sys.stdout.write(render_table(table, ExportFormat(output_format.value)))


def _check_record_identity(method: str | None, method_version: str) -> None:
    """Refuse a --method/--method-version a record could not carry, before any work is done."""
    from pydantic import TypeAdapter, ValidationError

    from vpsbench.records import SingleLine, Slug

    checks = (("--method", method, Slug), ("--method-version", method_version, SingleLine))
    for option, value, kind in checks:
        if value is None:
            continue
        try:
            TypeAdapter(kind).validate_python(value)
        except ValidationError:
            rule = (
                "a slug: lower-case letters and digits joined by single - _ or . (64 at most)"
                if kind is Slug
                else "one printable line of 1 to 200 characters"
            )
            raise VpsbenchError(f"{option} {value!r} is not valid: it must be {rule}") from None


def _check_output_paths(paths: dict[str, Path | None]) -> None:
    """Fail at once on an output path that cannot be written, instead of after the evaluation."""
    given = {option: path for option, path in paths.items() if path is not None}
    seen: dict[Path, str] = {}
    for option, path in given.items():
        resolved = path.resolve()
        if resolved in seen:
            raise InputError(path, f"{option} and {seen[resolved]} name the same file")
        seen[resolved] = option
        if path.is_dir():
            raise InputError(path, f"{option} names a folder; give a file name")
        if path.exists() and not path.is_file():
            raise InputError(path, f"{option} names something that is not a regular file")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise InputError(path, f"{option}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(path, f"{option}: no permission to write in {parent}")


def _check_output_folder(option: str, path: Path) -> None:
    """Fail at once on a folder to write into that is a file, lies under one or is read-only."""
    if path.exists() and not path.is_dir():
        raise InputError(path, f"{option} names a file, not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(path, f"{option}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(path, f"{option}: no permission to write in {existing}")


@app.command("rescore")
def rescore_command(
    stats: Annotated[
        list[Path], typer.Argument(help="Statistics files of `evaluate --save-stats` (shards).")
    ],
    matching: Annotated[
        MatchingMode, typer.Option(help="How pseudo-classes are matched to classes.")
    ] = MatchingMode.THING_STUFF_HUNGARIAN,
    pred_things: Annotated[
        str | None,
        typer.Option(help="Comma-separated pseudo thing classes (default: those with instances)."),
    ] = None,
    metrics: Annotated[
        str,
        typer.Option(help="Comma-separated: stq,vpq,pq (default) and hota,clear,identity."),
    ] = ",".join(ALL_METRICS),
    allow_partial: Annotated[
        bool,
        typer.Option(help="Score even when the shards miss official sequences of the split."),
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write all numbers as JSON here.")] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", help="What stdout gets, as for `evaluate`."),
    ] = OutputFormat.TABLE,
) -> None:
    """Merge saved statistics (shards) and score them again, without reading a prediction."""
    _check_output_paths({"--output": output})
    results = api.rescore(
        stats,
        matching=matching,
        pred_things=pred_things,
        metrics=metrics,
        allow_partial=allow_partial,
    )
    _print_results(results, output_format)
    if output is not None:
        results.save(output, overwrite=True)
        _notice(f"results written to {output}", output_format)


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
    available = job.dataset.sequences(job.split)
    if not _csv(sequences):  # the same official-split rule as `evaluate`
        check_official_split(job.dataset, job.split, available)
    selected = select_sequences(available, _csv(sequences), dataset)
    problems: list[str] = []
    checked = 0
    expected: set[Path] = set()
    for sequence in selected:
        for frame in sequence.frames:
            checked += 1
            expected.add(job.predictions.path_of(frame))
            try:  # the per-frame reading and reduction `evaluate` does
                frame_histogram(job, frame)
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
        try:
            cls = dataset_class(name)
        except VpsbenchError as error:  # a broken plugin is listed, not fatal
            table.add_row(name, f"unavailable: {error}", "—")
            continue
        table.add_row(name, cls.description, ", ".join(cls.facts.splits))
    console.print(table)
    console.print(
        "plugins: entry-point group vpsbench.datasets; or describe a dataset in a file: "
        "--dataset path/to/spec.toml",
        highlight=False,
    )


@datasets_app.command("info")
def datasets_info(
    name: Annotated[str, typer.Argument(help="Dataset name, or a spec file (.toml/.yaml).")],
    protocol: ProtocolOption = None,
) -> None:
    """Facts, protocol options and the class mapping into the evaluation label space."""
    cls = dataset_class(name)
    dataset = cls(Path("."), _parse_protocol(protocol))
    facts = cls.facts
    console.print(f"[bold]{cls.name}[/bold] — {cls.description}", highlight=False)
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
    name: Annotated[str, typer.Argument(help="Dataset name, or a spec file (.toml/.yaml).")],
    root: RootOption = None,
    split: SplitOption = None,
    protocol: ProtocolOption = None,
) -> None:
    """Check a dataset on disk and report every problem found."""
    dataset = open_dataset(name, root, _parse_protocol(protocol))
    chosen = split or dataset.default_split()
    problems = dataset.verify(chosen)
    for problem in problems:
        _error_line(str(problem))
    if problems:
        _error_line(f"{len(problems)} problem(s) in {name} {chosen} at {dataset.root}")
        raise typer.Exit(1)
    console.print(f"ok: {name} {chosen} at {dataset.root} looks complete")


def _parse_size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit():
        raise VpsbenchError(f"--size expects HxW, e.g. 256x512, got {text!r}")
    return int(height), int(width)


@datasets_app.command("prepare")
def datasets_prepare(
    name: Annotated[
        str, typer.Argument(help="Dataset name: 'synthetic', or 'waymo' with --from-tfrecords.")
    ],
    root: RootOption = None,
    videos: Annotated[int, typer.Option(help="Videos per split.")] = 12,
    frames: Annotated[int, typer.Option(help="Frames per video.")] = 30,
    size: Annotated[str, typer.Option(help="Frame size HxW.")] = "256x512",
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    split: Annotated[list[str] | None, typer.Option(help="Split(s) to generate.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    from_tfrecords: Annotated[
        Path | None,
        typer.Option(help="waymo: folder of the published *.tfrecord files to convert."),
    ] = None,
    cameras: Annotated[str, typer.Option(help="waymo: front, or all five cameras.")] = "front",
) -> None:
    """Generate the synthetic dataset, or convert Waymo's TFRecords (others: by hand)."""
    if from_tfrecords is not None:
        if name != "waymo":
            raise VpsbenchError("--from-tfrecords converts Waymo's TFRecords: use it with waymo")
        target = resolve_dataset_root(name, root)
        _check_output_folder("--root", target)
        _prepare_waymo(from_tfrecords, target, split, cameras, workers)
        return
    if name != "synthetic":
        cls = dataset_class(name)
        raise VpsbenchError(
            f"{name} cannot be downloaded here; get it from its publisher and lay it out as "
            f"{cls.facts.layout}, then run `vpsbench datasets verify {name} --root DIR`"
        )
    height, width = _parse_size(size)
    target = resolve_dataset_root(name, root)
    _check_output_folder("--root", target)
    console.print(f"writing the synthetic dataset to {target}", highlight=False)
    _prepare_with_progress(target, videos, frames, height, width, seed, split or ["val"], workers)
    console.print(f"synthetic dataset ready at {target}")


def _prepare_waymo(
    source: Path, root: Path, split: list[str] | None, cameras: str, workers: int
) -> None:
    """Convert Waymo TFRecords with a progress bar; one line per failed file, exit 1 if any."""
    from vpsbench.datasets.waymo_tfrecord import (
        FileOutcome,
        prepare_from_tfrecords,
        tfrecord_files,
    )

    if len(split or []) > 1:
        raise VpsbenchError("waymo --from-tfrecords converts one --split at a time")
    chosen = (split or ["validation"])[0]
    with _progress_bar() as progress:
        task = progress.add_task("waymo", total=len(tfrecord_files(source)))

        def advance(outcome: FileOutcome) -> None:
            if outcome.error is not None:
                progress.console.print(outcome.error, markup=False, highlight=False, soft_wrap=True)
            progress.update(task, advance=1, description=f"waymo {Path(outcome.source).name}")

        outcomes = prepare_from_tfrecords(
            source, root, split=chosen, cameras=cameras, workers=workers, progress=advance
        )
    failed = sum(o.error is not None for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    frames = sum(o.frames for o in outcomes)
    console.print(
        f"waymo {chosen}: {frames} labelled frames written from {len(outcomes) - skipped - failed} "
        f"file(s), {skipped} already done, {failed} failed, at {root / chosen}"
    )
    if failed:
        raise typer.Exit(1)


def _prepare_with_progress(
    root: Path,
    videos: int,
    frames: int,
    height: int,
    width: int,
    seed: int,
    splits: list[str],
    workers: int,
) -> None:
    from vpsbench.datasets.synthetic import prepare_synthetic

    with _progress_bar() as progress:
        task = progress.add_task("synthetic", total=videos * len(splits))

        def advance(split: str, video: int, total: int) -> None:
            progress.update(task, advance=1, description=f"synthetic {split} {video:04d}")

        prepare_synthetic(
            root,
            videos=videos,
            frames=frames,
            height=height,
            width=width,
            seed=seed,
            splits=splits,
            workers=workers,
            progress=advance,
        )


@app.command("visualize")
def visualize_command(
    pred: PredOption,
    dataset: DatasetOption,
    sequence: Annotated[str, typer.Option(help="Sequence to draw.")],
    root: RootOption = None,
    split: SplitOption = None,
    protocol: ProtocolOption = None,
    pred_format: FormatOption = "auto",
    pred_divisor: DivisorOption = 1000,
    results: Annotated[
        Path | None,
        typer.Option(help="Results JSON of `evaluate --output`: draw matched classes."),
    ] = None,
    frames: Annotated[str | None, typer.Option(help="Comma-separated frame indices.")] = None,
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("vpsbench-visualization.png"),
) -> None:
    """Draw frames, ground truth and prediction of one sequence side by side (PNG)."""
    from vpsbench.visualize import mapping_from_results, render_sequence, write_strip

    _check_output_paths({"--out": out})
    if results is not None:
        require_regular_file(results)
    job = _open_job(dataset, root, split, protocol, pred, pred_format, pred_divisor, None)
    mapping = None
    if results is not None:
        mapping = mapping_from_results(results, job.dataset.label_space())
    items = _csv(frames) or []
    bad = [item for item in items if not item.isdigit()]
    if bad:
        raise VpsbenchError(f"--frames expects comma-separated frame indices, got {bad[0]!r}")
    indices = [int(item) for item in items] or None
    strip = render_sequence(job.dataset, job.split, sequence, job.predictions, mapping, indices)
    console.print(f"picture written to {write_strip(out, strip)}")


@app.command("demo")
def demo_command(
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the demo's data, predictions and results (default: vpsbench's cache, "
            "$VPSBENCH_CACHE or ~/.cache/vpsbench, where every command looks for synthetic)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
) -> None:
    """Synthetic val split + noisy predictions → evaluation table and a picture."""
    from vpsbench.demo import DEMO_DISK_MB, default_cache, folder_size, write_demo_predictions
    from vpsbench.visualize import render_sequence, write_strip

    folder = cache or default_cache()
    dataset_root = folder / "synthetic" if cache else resolve_dataset_root("synthetic")
    predictions_root = folder / "demo-predictions"
    _check_output_folder("--cache", folder)
    _check_output_folder("--cache", dataset_root)
    console.print(
        f"the demo uses about {DEMO_DISK_MB} MB of disk: the synthetic val split (12 videos × 30 "
        f"frames, 256×512) in {dataset_root}, predictions in {predictions_root}",
        highlight=False,
    )
    _prepare_with_progress(dataset_root, 12, 30, 256, 512, 0, ["val"], workers)
    console.print(f"synthetic dataset ready at {dataset_root}", highlight=False)
    dataset = open_dataset("synthetic", dataset_root)
    write_demo_predictions(dataset, "val", predictions_root)
    console.print(
        f"predictions written to {predictions_root}: ground truth + the documented noise model "
        "of vpsbench.demo (not a method's output)",
        highlight=False,
    )
    with _progress_bar() as bar:
        results = api.evaluate(
            predictions_root,
            "synthetic",
            root=dataset_root,
            split="val",
            pred_format="step",
            workers=workers,
            progress=_progress_callback(bar, "synthetic val"),
        )
    _print_results(results, OutputFormat.TABLE)
    results_path = folder / "demo-results.json"
    results.save(results_path, overwrite=True)
    console.print(f"results written to {results_path}")
    assert results.evaluation is not None  # just computed, not read from a file
    first = dataset.sequences("val")[0].name
    predictions = PredictionSource.open(predictions_root, "step")
    strip = render_sequence(
        dataset, "val", first, predictions, results.evaluation.matching.as_dict()
    )
    console.print(f"picture written to {write_strip(folder / 'demo.png', strip)}", highlight=False)
    used = folder_size(dataset_root) + folder_size(predictions_root)
    found_by_default = dataset_root == resolve_dataset_root("synthetic")
    root_option = "" if found_by_default else f" --root {dataset_root}"
    console.print(
        f"disk used: {used / 1e6:.0f} MB (dataset and predictions); score them yourself: "
        f"vpsbench evaluate --dataset synthetic{root_option} --pred {predictions_root}",
        highlight=False,
    )


@methods_app.command("list")
def methods_list() -> None:
    """The installed method plugins (entry-point group vpsbench.methods)."""
    from vpsbench.methods import method_class, method_names

    table = Table("name", "stages", "description")
    for name in method_names():
        try:
            cls = method_class(name)
            table.add_row(name, ", ".join(cls.stages), cls.description)
        except VpsbenchError as error:
            table.add_row(name, "—", f"unavailable: {error}")
    console.print(table)


def _settings_table(method_name: str) -> Table:
    """Every setting ``--set`` accepts for a method, with its type, default and meaning."""
    from vpsbench.methods import config_fields, method_class

    cls = method_class(method_name)
    table = Table(title=f"{cls.name} settings (--set KEY=VALUE)")
    table.add_column("setting", no_wrap=True)  # names stay whole, to be copied into --set
    for column in ("type", "default", "meaning"):
        table.add_column(column)
    for field_name, type_name, default, help_text in config_fields(cls.config_class):
        table.add_row(field_name, type_name, str(default), help_text)
    return table


@methods_app.command("info")
def methods_info(name: Annotated[str, typer.Argument(help="Method name.")]) -> None:
    """A method's stages, prediction format and every config setting with its default."""
    from vpsbench.methods import method_class, weight_settings

    cls = method_class(name)
    console.print(f"[bold]{cls.name}[/bold] — {cls.description}")
    console.print(f"  stages: {' → '.join(cls.stages)}", highlight=False)
    console.print(f"  predictions: {cls.prediction_format}", highlight=False)
    if cls.citation:
        console.print(f"  citation: {cls.citation}", highlight=False)
    if cls.weights_info:
        keys = weight_settings(cls.config_class)
        how = f" ({', '.join(f'--set {key}=PATH' for key in keys)})" if keys else ""
        console.print(f"  weights: {cls.weights_info}{how}", highlight=False)
    console.print(_settings_table(name))


class _RunMethodCommand(TyperCommand):
    """``run-method``, keeping its raw arguments so that ``--help`` can see the method's name."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["vpsbench.raw_args"] = list(args)
        return super().parse_args(ctx, args)


def _run_method_help(ctx: typer.Context, value: bool) -> None:
    """``run-method [NAME] --help``: the command's help, then NAME's settings when it is named."""
    if not value or ctx.resilient_parsing:
        return
    console.print(ctx.get_help(), highlight=False)
    raw = [arg for arg in ctx.meta.get("vpsbench.raw_args", []) if arg != "--help"]
    try:
        name = ctx.command.make_parser(ctx).parse_args(raw)[0].get("name")
    except Exception:  # a usage error of the other options: the help is shown all the same
        name = None
    if isinstance(name, str):
        try:
            console.print(_settings_table(name))
        except VpsbenchError as error:
            _error_line(f"error: {error}")
            raise typer.Exit(2) from None
    else:
        console.print("`vpsbench run-method NAME --help` also lists NAME's settings.")
    raise typer.Exit(0)


@app.command("run-method", add_help_option=False, cls=_RunMethodCommand)
def run_method_command(
    name: Annotated[str, typer.Argument(help="Method name (vpsbench methods list).")],
    dataset: DatasetOption,
    root: RootOption = None,
    split: SplitOption = None,
    protocol: ProtocolOption = None,
    stage: Annotated[
        list[str] | None, typer.Option(help="Run only these stages (repeatable).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML/JSON file of settings.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Setting KEY=VALUE (repeatable; NAME --help lists them)."),
    ] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (resumable).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    sequences: Annotated[str | None, typer.Option(help="Comma-separated subset.")] = None,
    executor: ExecutorOption = ExecutorKind.LOCAL,
    ray_address: RayAddressOption = None,
    help_: Annotated[
        bool,
        typer.Option(
            "--help",
            is_eager=True,
            callback=_run_method_help,
            help="Show this message and the method's settings, then exit.",
        ),
    ] = False,
) -> None:
    """Run a method's stages into a run directory, then score its predictions."""
    from vpsbench.methods.runner import RunRequest, run_method, stage_names

    wanted = _csv(sequences)
    request = RunRequest(
        method=name,
        dataset=dataset,
        root=root,
        split=split,
        protocol=_parse_protocol(protocol),
        stages=stage_names(stage),
        config_file=config,
        overrides=tuple(set_ or ()),
        run_dir=run_dir,
        device=device,
        sequences=tuple(wanted) if wanted else None,
        executor=executor,
        ray_address=ray_address,
    )
    outcome = run_method(request, log=lambda text: errors.print(text, highlight=False))
    if outcome.result is not None:
        render_result(outcome.result, console)
        console.print(f"run directory: {outcome.run_dir}")
        console.print(f"results: {outcome.run_dir / 'results.json'}; record: {outcome.record_path}")
    else:
        console.print(f"stages done; run directory: {outcome.run_dir}")


def main() -> None:
    """Entry point: run the app, turning expected errors into one line and exit code 2."""
    reuse_freed_memory()  # frame-sized buffers reused across frames (executors.py says why)
    try:
        app()
    except VpsbenchError as error:
        _error_line(f"error: {error}")
        sys.exit(2)
