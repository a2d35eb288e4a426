"""``vpsbench run-method``: run a method's stages into a run directory, resumably, then score it.

The run directory records everything needed to understand and resume a run::

    <run>/run.json              method, config, dataset (+ its root and file-list digest), split,
                                device, versions, stage timings
    <run>/done/<stage>/…        markers of finished stages and sequences (resume skips them)
    <run>/<stage>/              the stage's own outputs (pseudo-labels, checkpoints, …)
    <run>/predictions/<seq>/…   the submission (STEP PNG, or NPZ beyond 254 pseudo-classes)
    <run>/results.json          the evaluator's numbers;  <run>/record.json  the result record

Re-running the same command continues an interrupted run; asking for another config, or other
data under the same dataset name, in the same run directory is refused, so numbers never mix
settings or score old predictions against new ground truth.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import platform
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import vpsbench
from vpsbench.datasets import open_dataset
from vpsbench.datasets.base import Dataset
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.evaluation import (
    EvaluationJob,
    EvaluationResult,
    check_official_split,
    evaluate,
    select_sequences,
)
from vpsbench.executors import executor_spec
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.methods.base import (
    PREDICT_STAGE,
    Method,
    MethodConfig,
    RunContext,
    build_config,
    read_config_file,
)
from vpsbench.methods.registry import method_class
from vpsbench.predictions import PredictionSource
from vpsbench.records import SLUG_PATTERN
from vpsbench.results import result_to_dict, write_results
from vpsbench.video import SequenceRef

#: The stage that trains a method's own weights (a finished one makes the record ``trained``).
TRAIN_STAGE = "train"


@dataclass(frozen=True)
class RunRequest:
    """What ``vpsbench run-method`` was asked to do."""

    method: str
    dataset: str
    root: Path | None = None
    split: str | None = None
    protocol: Mapping[str, str] = field(default_factory=dict)
    stages: tuple[str, ...] | None = None
    config_file: Path | None = None
    overrides: tuple[str, ...] = ()
    run_dir: Path | None = None
    device: str = "cpu"
    sequences: tuple[str, ...] | None = None
    evaluate: bool = True
    executor: str = "local"  # where per-sequence stages and the evaluation run (local or ray)
    ray_address: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """Where the run's outputs are and, when it predicted, its evaluation."""

    run_dir: Path
    result: EvaluationResult | None
    record_path: Path | None


def _versions() -> dict[str, str]:
    versions = {
        "vpsbench": vpsbench.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import torch

        versions["torch"] = torch.__version__
    except ModuleNotFoundError:
        pass
    return versions


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise VpsbenchError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        try:
            import torch
        except ModuleNotFoundError:
            raise VpsbenchError(
                "--device cuda needs PyTorch: pip install 'vpsbench[methods]'"
            ) from None
        if not torch.cuda.is_available():
            raise VpsbenchError("--device cuda: no CUDA device is available here")


def _jsonable(config: MethodConfig) -> dict[str, Any]:
    """The config as plain JSON values (paths as strings)."""
    converted: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    return converted


def _check_run_dir(run_dir: Path) -> None:
    """Refuse a run directory that is a file or sits below one, before any work is done."""
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(run_dir, "--run-dir names a file, not a folder")
    parent = run_dir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(run_dir, f"--run-dir: {parent} is a file, not a folder")


def _read_manifest(path: Path) -> dict[str, Any]:
    """The ``run.json`` of an earlier run; anything but a JSON object is a clear error."""
    hint = "remove it or choose another --run-dir"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(path, f"cannot read the run manifest: {error.strerror}") from None
    except ValueError as error:
        raise InputError(path, f"not a run manifest (invalid JSON: {error}); {hint}") from None
    if not isinstance(document, dict):
        raise InputError(path, f"not a run manifest (not a JSON object); {hint}")
    return document


def dataset_identity(
    dataset: Dataset, split: str, sequences: Sequence[SequenceRef]
) -> dict[str, str]:
    """Which data a run used: the resolved root and a SHA-256 of the split's file list.

    The list names every annotated frame of ``sequences`` with its image's path and size, so a
    run directory reused with ``--root`` at other data (same dataset name) is refused instead of
    scoring old predictions against new ground truth.
    """
    root = dataset.root.resolve()
    digest = hashlib.sha256()
    for sequence in sequences:
        for frame in sequence.frames:
            image = dataset.image_path(split, frame)
            size = "-"
            if image is not None:
                with contextlib.suppress(OSError):
                    size = str(image.stat().st_size)
                image = image.resolve()
                if image.is_relative_to(root):
                    image = image.relative_to(root)
            digest.update(f"{sequence.name}\t{frame.name}\t{image}\t{size}\n".encode())
    return {"root": str(root), "files_sha256": digest.hexdigest()}


def run_method(request: RunRequest, log: Callable[[str], None] = print) -> RunOutcome:
    """Run the requested stages (all by default) and evaluate the predictions."""
    cls = method_class(request.method)
    file_values = read_config_file(request.config_file) if request.config_file else {}
    config = build_config(cls.config_class, file_values, request.overrides)
    method = cls(config)
    _check_device(request.device)
    if request.run_dir is not None:
        _check_run_dir(request.run_dir)
    if not re.fullmatch(SLUG_PATTERN, cls.name):
        raise VpsbenchError(
            f"method {cls.name!r} cannot name a result record: a method name must be a slug "
            "(lower-case letters and digits joined by single - _ or .)"
        )
    stages = request.stages or cls.stages
    unknown = [s for s in stages if s not in cls.stages]
    if unknown:
        raise VpsbenchError(f"{cls.name} has no stage {', '.join(unknown)}; stages: {cls.stages}")
    executor = executor_spec(
        request.executor,
        ray_address=request.ray_address,
        num_gpus=1.0 if request.device.startswith("cuda") else 0.0,
    )
    dataset = open_dataset(request.dataset, request.root, request.protocol)
    split = request.split or dataset.default_split()
    run_dir = request.run_dir or Path("runs") / f"{request.method}-{dataset.name}-{split}"
    _check_run_dir(run_dir)
    if dataset.name == "synthetic" and not (dataset.root / "synthetic.json").is_file():
        from vpsbench.datasets.synthetic import prepare_synthetic

        log(f"no synthetic dataset at {dataset.root}: generating the default val split there")
        prepare_synthetic(
            dataset.root,
            videos=12,
            frames=30,
            height=256,
            width=512,
            seed=0,
            splits=["val"],
            workers=2,
        )
        log(f"synthetic dataset written to {dataset.root}")
    available = dataset.sequences(split)
    if not request.sequences:
        check_official_split(dataset, split, available)  # a partial copy is named on purpose
    sequences = select_sequences(available, request.sequences, dataset.name)
    manifest_path = run_dir / "run.json"
    identity = dataset_identity(dataset, split, sequences)
    settings = {
        "method": cls.name,
        "config": _jsonable(config),
        "dataset": dataset.name,
        "split": split,
        "protocol": dict(dataset.protocol),
        "sequences": [s.name for s in sequences],
        "data": identity,
    }
    manifest: dict[str, Any] = {}
    if manifest_path.exists():
        manifest = _read_manifest(manifest_path)
        recorded = {key: manifest.get(key) for key in settings}
        if "data" not in manifest:  # written before the data's identity was recorded
            recorded["data"] = identity
        if recorded["data"] != identity:
            old = recorded["data"] if isinstance(recorded["data"], dict) else {}
            where = (
                f"root {old.get('root')!r}, not {identity['root']!r}"
                if old.get("root") != identity["root"]
                else f"other files under {identity['root']!r}"
            )
            raise VpsbenchError(
                f"{run_dir} holds a run on other data ({where}); resume it on the same data "
                "or choose another --run-dir"
            )
        if recorded != settings:
            changed = ", ".join(key for key in settings if recorded[key] != settings[key])
            raise VpsbenchError(
                f"{run_dir} holds a run with other settings ({changed}); resume it with the "
                "same settings or choose another --run-dir"
            )
    manifest |= settings | {"device": request.device, "versions": _versions()}
    manifest.setdefault("stages", {})

    def save_manifest() -> None:
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    save_manifest()
    context = RunContext(dataset, split, run_dir, request.device, sequences, log, executor)
    for stage in [s for s in cls.stages if s in stages]:
        if context.is_done(stage):
            log(f"{stage}: already done, skipped")
            continue
        log(f"{stage}: running")
        started = time.perf_counter()
        method.run_stage(stage, context)
        context.mark_done(stage)
        manifest["stages"][stage] = {"seconds": round(time.perf_counter() - started, 3)}
        save_manifest()

    if not (request.evaluate and PREDICT_STAGE in cls.stages and context.is_done(PREDICT_STAGE)):
        return RunOutcome(run_dir, None, None)
    job = EvaluationJob(dataset, split, PredictionSource.open(context.predictions_dir))
    result = evaluate(
        job,
        sequences=[s.name for s in sequences],
        executor=request.executor,
        ray_address=request.ray_address,
    )
    write_results(run_dir / "results.json", result)
    record_path = run_dir / "record.json"
    done = tuple(s for s in cls.stages if context.is_done(s))
    _write_record(
        record_path,
        result,
        cls.name,
        manifest,
        model=model_kind(method, run_dir, done),
        command=command_line(request, None if done == cls.stages else done),
    )
    return RunOutcome(run_dir, result, record_path)


#: What a stage's ``mode.json`` (written by the baselines) says → the record's ``model``.
MODE_MODELS = {
    "weight-free stand-in": "stand-in",
    "published weights": "published",
    "per-frame predictions": "external",
}


def model_kind(method: Method, run_dir: Path, finished: Sequence[str] = ()) -> str | None:
    """What made the run's predictions, for the record's ``model`` (None: not known).

    In order: the ``mode.json`` the method's stages wrote (any stand-in wins, so a stand-in is
    never recorded as the model); the baselines' settings convention (``per_frame`` given:
    external; ``weights`` given: published; a ``weights`` setting left empty: the weight-free
    stand-in); a ``train`` stage among the ``finished`` ones: trained.
    """
    modes: set[str] = set()
    for path in sorted(run_dir.glob("*/mode.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("mode") in MODE_MODELS:
            modes.add(MODE_MODELS[document["mode"]])
    if modes:
        return "stand-in" if "stand-in" in modes else sorted(modes)[0]
    settings = {
        item.name: getattr(method.config, item.name) for item in dataclasses.fields(method.config)
    }
    if settings.get("per_frame") is not None:
        return "external"
    if "weights" in settings:
        return "published" if settings["weights"] is not None else "stand-in"
    if TRAIN_STAGE in finished:
        return "trained"
    return None


def command_line(request: RunRequest, stages: Sequence[str] | None = None) -> str:
    """The ``vpsbench run-method`` command line that reruns ``request`` (shell-quoted).

    ``stages`` lists the stages to name with ``--stage`` (None: all, the command's default).
    """
    parts = ["vpsbench", "run-method", request.method, "--dataset", request.dataset]
    if request.root is not None:
        parts += ["--root", str(request.root)]
    if request.split is not None:
        parts += ["--split", request.split]
    for key, value in request.protocol.items():
        parts += ["--protocol", f"{key}={value}"]
    for stage in stages or ():
        parts += ["--stage", stage]
    if request.config_file is not None:
        parts += ["--config", str(request.config_file)]
    for override in request.overrides:
        parts += ["--set", override]
    if request.run_dir is not None:
        parts += ["--run-dir", str(request.run_dir)]
    if request.device != "cpu":
        parts += ["--device", request.device]
    if request.sequences:
        parts += ["--sequences", ",".join(request.sequences)]
    return shlex.join(parts)


def _write_record(
    path: Path,
    result: EvaluationResult,
    method: str,
    manifest: Mapping[str, Any],
    *,
    model: str | None = None,
    command: str | None = None,
) -> None:
    """A result record of the run, ready for ``vpsbench submit``: what made it and how to rerun."""
    from vpsbench.records import record_from_results, write_record

    notes = f"vpsbench run-method {method}; config {json.dumps(manifest['config'], sort_keys=True)}"
    if model == "stand-in":
        notes = f"weight-free stand-in, NOT the published model of {method}. {notes}"
    record = record_from_results(
        result_to_dict(result),
        method,
        vpsbench.__version__,
        notes=notes[:2000],
        model=model,
        command=command,
    )
    write_record(path, record)


def stage_names(stages: Sequence[str] | None) -> tuple[str, ...] | None:
    """Normalise a ``--stage`` list (None or empty = all stages)."""
    return tuple(stages) if stages else None
