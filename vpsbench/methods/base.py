"""The method plugin protocol: named stages, a typed config, and a run context to work in.

A method is a class with a ``name``, a ``description``, a config dataclass and an ordered tuple of
``stages`` (e.g. ``("pseudo-label", "train", "predict")``). The runner builds it with its config
and calls :meth:`Method.run_stage` for each stage with a :class:`RunContext`, which knows the
dataset split, the run directory, the device, and which sequences a stage has already finished —
so an interrupted run resumes where it stopped. The ``predict`` stage writes one prediction per
annotated frame through :meth:`RunContext.write_prediction`, in a documented submission format.

Plugins register through the entry-point group ``vpsbench.methods`` (see
:mod:`vpsbench.methods.registry`); vpsbench's own methods and baselines are registered the same
way a third party's would be.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vpsbench.datasets.base import Dataset
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.executors import ExecutorSpec
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.npz import write_npz
from vpsbench.formats.step import write_step_png
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

PREDICT_STAGE = "predict"
ConfigT = typing.TypeVar("ConfigT")
STEP_MAX_CLASS = 254  # STEP PNGs keep 255 for void; more pseudo-classes go to NPZ


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method config: plain dataclass fields with defaults (the paper's values)."""


@dataclass(frozen=True)
class Range:
    """The values a numeric setting accepts, declared as ``metadata={"range": Range(...)}``.

    :func:`build_config` checks every setting against its range before any stage runs, so a bad
    value is one clear error instead of a failure (or a silently wrong score) stages later.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is excluded
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the range (NaN never does)."""
        if value != value:  # NaN
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "any finite number"


def _check_range(key: str, value: object, allowed: Range | None) -> None:
    """Refuse a number outside its declared range, and any NaN or infinite float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise VpsbenchError(f"config {key}={value}: expected a finite number")
    if allowed is not None and not allowed.contains(value):
        where = f"in {allowed}" if allowed.low is not None and allowed.high is not None else allowed
        raise VpsbenchError(f"config {key}={value}: expected a number {where}")


def config_fields(config_class: type[MethodConfig]) -> list[tuple[str, str, object, str]]:
    """(name, type, default, help) of every field, for ``vpsbench methods info``."""
    hints = typing.get_type_hints(config_class)
    rows = []
    for item in dataclasses.fields(config_class):
        default: object = item.default
        if item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        type_name = getattr(hints[item.name], "__name__", str(hints[item.name]))
        help_text = str(item.metadata.get("help", ""))
        if item.metadata.get("range") is not None:
            help_text = f"{help_text} (range {item.metadata['range']})".lstrip()
        rows.append((item.name, type_name, default, help_text))
    return rows


def weight_settings(config_class: type[MethodConfig]) -> list[str]:
    """The settings that take a checkpoint path (``weights`` or ``*_weights``), in field order."""
    return [
        item.name
        for item in dataclasses.fields(config_class)
        if item.name == "weights" or item.name.endswith("_weights")
    ]


def _convert(value: object, annotation: Any, key: str) -> object:
    """Convert a YAML or ``--set`` value to the field's annotated type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _convert(value, options[0], key)
    if origin in (tuple, list):
        # "a,b,c" on the command line; "" is the empty sequence ("a,,b" stays an error).
        if isinstance(value, str):
            items = value.split(",") if value.strip() else []
        else:
            items = list(value)  # type: ignore[call-overload]
        inner = typing.get_args(annotation)[0] if typing.get_args(annotation) else str
        converted = [_convert(item, inner, key) for item in items]
        return tuple(converted) if origin is tuple else converted
    try:
        if annotation is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes")
            return bool(value)
        if annotation in (int, float, str):
            return annotation(value)
        if annotation is Path:
            return Path(str(value))
    except (TypeError, ValueError):
        raise VpsbenchError(
            f"config {key}={value!r} is not a valid {annotation.__name__}"
        ) from None
    return value


def build_config(
    config_class: type[ConfigT],
    file_values: Mapping[str, object] | None = None,
    overrides: Sequence[str] = (),
) -> ConfigT:
    """A config dataclass from defaults, then a YAML file's values, then ``key=value`` overrides."""
    hints = typing.get_type_hints(config_class)
    values: dict[str, object] = {}
    for key, value in (file_values or {}).items():
        if key not in hints:
            raise VpsbenchError(f"{config_class.__name__} has no setting {key!r}")
        values[key] = _convert(value, hints[key], key)
    for pair in overrides:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or key not in hints:
            known = ", ".join(hints)
            raise VpsbenchError(f"--set {pair!r}: expected KEY=VALUE with KEY one of {known}")
        values[key] = _convert(text.strip(), hints[key], key)
    if dataclasses.is_dataclass(config_class):
        for item in dataclasses.fields(config_class):
            if item.name in values:
                _check_range(item.name, values[item.name], item.metadata.get("range"))
    return config_class(**values)


def read_config_file(path: Path) -> dict[str, object]:
    """A YAML (or JSON) config file as a flat mapping of settings."""
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(path, f"cannot read the config file: {error.strerror}") from None
    if path.suffix == ".json":
        try:
            loaded = json.loads(text)
        except ValueError as error:
            raise InputError(path, f"invalid JSON: {error}") from None
    else:
        try:
            import yaml
        except ModuleNotFoundError:
            raise VpsbenchError(
                "reading YAML configs needs PyYAML: pip install 'vpsbench[methods]'"
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InputError(path, f"invalid YAML: {' '.join(str(error).split())}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InputError(path, "a config file must hold a mapping of settings")
    return loaded


@dataclass
class RunContext:
    """Where a method runs: dataset split, run directory, device, and resume bookkeeping."""

    dataset: Dataset
    split: str
    run_dir: Path
    device: str = "cpu"
    sequences: Sequence[SequenceRef] = field(default_factory=list)
    log: typing.Callable[[str], None] = print
    #: Where per-sequence work of a stage may run (``--executor``); see :func:`ordered_map`.
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)

    @property
    def predictions_dir(self) -> Path:
        return self.run_dir / "predictions"

    def for_workers(self) -> WorkerContext:
        """What a per-sequence worker needs of this context, picklable (see ``executor``)."""
        return WorkerContext(
            self.dataset.name,
            str(self.dataset.root),
            dict(self.dataset.protocol),
            self.split,
            str(self.run_dir),
            self.device,
        )

    def stage_dir(self, stage: str) -> Path:
        """A folder for the stage's own outputs (pseudo-labels, checkpoints, …)."""
        path = self.run_dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _marker(self, stage: str, sequence: str) -> Path:
        return self.run_dir / "done" / stage / f"{sequence}.done"

    def is_done(self, stage: str, sequence: str = "_all") -> bool:
        return self._marker(stage, sequence).is_file()

    def mark_done(self, stage: str, sequence: str = "_all") -> None:
        """Record that ``stage`` finished ``sequence`` (or the whole stage), atomically."""
        atomic_write_text(self._marker(stage, sequence), "done\n")

    def pending(self, stage: str) -> Iterator[SequenceRef]:
        """The sequences ``stage`` has not finished yet (finished ones are never redone)."""
        for sequence in self.sequences:
            if self.is_done(stage, sequence.name):
                self.log(f"{stage}: {sequence.name} already done, skipped")
                continue
            yield sequence

    def write_prediction(self, frame: FrameRef, prediction: PanopticFrame) -> Path:
        """Write one frame's prediction: STEP PNG if its classes fit, else NPZ (both documented)."""
        top = int(prediction.semantic.max(initial=0))
        needs_npz = top > STEP_MAX_CLASS or int(prediction.instance.max(initial=0)) > 65535
        folder = self.predictions_dir / frame.sequence
        if needs_npz:
            path = folder / f"{frame.name}.npz"
            write_npz(path, prediction)
        else:
            path = folder / f"{frame.name}.png"
            void = prediction.semantic < 0
            semantic = prediction.semantic.copy()
            semantic[void] = 255
            write_step_png(path, PanopticFrame(semantic, prediction.instance))
        return path


@dataclass(frozen=True)
class WorkerContext:
    """A :class:`RunContext` reduced to names and paths, so that it travels to the workers of
    ``--executor`` (a local pool process, a Ray actor on another node) and is reopened there."""

    dataset_name: str
    root: str
    protocol: dict[str, str]
    split: str
    run_dir: str
    device: str = "cpu"

    def open(self) -> RunContext:
        """The run context on this worker: the dataset opened here, no sequences, no executor."""
        from vpsbench.datasets import open_dataset

        dataset = open_dataset(self.dataset_name, self.root, self.protocol)
        return RunContext(dataset, self.split, Path(self.run_dir), self.device)


class Method(abc.ABC):
    """Base class of a method plugin; subclasses set the class attributes and run stages."""

    name: ClassVar[str]
    description: ClassVar[str]
    stages: ClassVar[tuple[str, ...]]
    config_class: ClassVar[type[MethodConfig]]
    prediction_format: ClassVar[str] = "step (or npz beyond 254 pseudo-classes)"
    citation: ClassVar[str] = ""
    weights_info: ClassVar[str] = ""  # which checkpoints it loads and where they are published

    def __init__(self, config: MethodConfig) -> None:
        if not isinstance(config, self.config_class):
            raise VpsbenchError(f"{self.name} needs a {self.config_class.__name__}")
        self.config = config

    @abc.abstractmethod
    def run_stage(self, stage: str, context: RunContext) -> None:
        """Run one of ``stages``; must skip work that ``context`` says is already done."""
