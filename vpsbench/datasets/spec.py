"""Datasets described by a small TOML or YAML file instead of code (``--dataset my.toml``).

A spec names the classes, which of them are things, the label format (one the built-in loaders
already read), where the label and image files lie, and the splits::

    name = "my-streets"                   # a slug; records and results carry it
    description = "Two street videos labelled by hand"
    label_format = "step"                 # step | divisor16 | cityscapes-ids | mots-png
    # divisor = 1000                      # divisor16 only
    splits = ["val"]
    ignore_ids = [255]                    # native ids that are void in evaluation
    # root = "data"                       # default root, relative to this file

    [[classes]]                           # evaluation id = position in this list
    name = "road"
    id = 0                                # the id the label files hold
    [[classes]]
    name = "car"
    id = 13
    thing = true

    [layout]
    labels = "panoptic_maps/{split}/{sequence}/{frame}.png"
    images = "images/{split}/{sequence}/{frame}.png"   # optional

    [facts]                               # optional text shown by ``vpsbench datasets info``
    resolution = "1242x375"
    citation = "…"

Sequences are the values of ``{sequence}`` found on disk and frames the values of ``{frame}``,
in numeric order. Every problem in a spec is one line naming the file and the key.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from vpsbench.datasets.base import (
    IGNORE_LABEL,
    ClassMappingRow,
    Dataset,
    DatasetFacts,
    DatasetNotFoundError,
    LabelSpace,
    Problem,
)
from vpsbench.datasets.common import (
    check_image,
    check_split,
    evaluation_frame,
    format_ids,
    invalid_ids,
    lookup_table,
    map_classes,
    problem,
    require_regular_file,
    require_root,
    size_text,
)
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.cityscapes_ids import read_cityscapes_instance_ids
from vpsbench.formats.divisor_png import DEFAULT_DIVISOR, read_divisor_png
from vpsbench.formats.mots import read_mots_png
from vpsbench.formats.step import read_step_png
from vpsbench.records import SLUG_PATTERN
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

#: The label formats a spec may name, with what their native ids are.
LABEL_FORMATS: dict[str, str] = {
    "step": "RGB png: R = class id, G*256+B = instance id (KITTI-STEP)",
    "divisor16": "16-bit png: class*divisor + instance (Waymo PVPS panoptic_label)",
    "cityscapes-ids": "16-bit png: class id, or class*1000 + k (Cityscapes instanceIds)",
    "mots-png": "16-bit png: class*1000 + k, 0 background, 10000 ignore (MOTS)",
}
SPEC_SUFFIXES = (".toml", ".yaml", ".yml")
_KNOWN_KEYS = frozenset(
    {"name", "description", "label_format", "divisor", "splits", "ignore_ids", "root"}
    | {"classes", "layout", "facts"}
)
_FACT_KEYS = frozenset({"resolution", "annotated_frames", "citation"})
_FIELDS = ("split", "sequence", "frame")


def looks_like_spec(name: str) -> bool:
    """Whether a ``--dataset`` value names a spec file rather than a registered dataset."""
    return name.lower().endswith(SPEC_SUFFIXES)


@dataclass(frozen=True)
class ClassSpec:
    """One class of the evaluation label space and the id its label files hold."""

    name: str
    native_id: int
    thing: bool


@dataclass(frozen=True)
class DatasetSpec:
    """A validated dataset description (what the spec file says, nothing inferred)."""

    source: Path
    name: str
    description: str
    label_format: str
    divisor: int
    splits: tuple[str, ...]
    classes: tuple[ClassSpec, ...]
    ignore_ids: tuple[int, ...]
    labels: str
    images: str | None
    root: Path | None
    facts: Mapping[str, str]


class _Checker:
    """Reads typed values out of the parsed document; every failure names the file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> VpsbenchError:
        return InputError(self.path, f"{key}: {problem}")

    def string(self, table: Mapping[str, Any], key: str, where: str = "") -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where + key, "expected a non-empty string")
        return value

    def integer(self, value: object, key: str, high: int = 2**31 - 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise self.fail(key, f"expected an integer in 0..{high}, got {value!r}")
        return value


def _parse_document(path: Path) -> dict[str, Any]:
    """The spec file as a mapping (TOML always; YAML needs PyYAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "dataset spec file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot read the dataset spec: {error}") from None
    if path.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InputError(path, f"invalid TOML: {error}") from None
    try:
        import yaml
    except ModuleNotFoundError:
        raise InputError(path, "reading a YAML spec needs PyYAML (pip install pyyaml)") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(path, f"invalid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(loaded, dict):
        raise InputError(path, "a dataset spec must be a mapping of keys")
    return loaded


def _check_template(check: _Checker, key: str, template: str) -> str:
    """A path template relative to the root with exactly the fields {split} {sequence} {frame}."""
    found = re.findall(r"\{([^{}]*)\}", template)
    unknown = sorted(set(found) - set(_FIELDS))
    if unknown:
        raise check.fail(
            key, f"unknown field {{{unknown[0]}}}; use {{split}} {{sequence}} {{frame}}"
        )
    missing = [f for f in ("sequence", "frame") if f not in found]
    if missing:
        raise check.fail(key, f"the template needs {{{missing[0]}}}")
    if any(found.count(f) > 1 for f in _FIELDS):
        raise check.fail(key, "each field may appear once")
    if template.startswith("/") or ".." in Path(template).parts:
        raise check.fail(key, "must be a relative path inside the dataset root")
    if "{frame}" not in Path(template).name:
        raise check.fail(key, "{frame} must be in the file name (the last path component)")
    return template


def _classes(check: _Checker, value: object) -> tuple[ClassSpec, ...]:
    if not isinstance(value, list) or not value:
        raise check.fail("classes", "expected a non-empty list of {name, id, thing} tables")
    classes = []
    for index, item in enumerate(value):
        where = f"classes[{index}]."
        if not isinstance(item, dict):
            raise check.fail(f"classes[{index}]", "expected a table with name, id and thing")
        extra = sorted(set(item) - {"name", "id", "thing"})
        if extra:
            raise check.fail(where + extra[0], "unknown key (known: name, id, thing)")
        thing = item.get("thing", False)
        if not isinstance(thing, bool):
            raise check.fail(where + "thing", "expected true or false")
        native = check.integer(item.get("id"), where + "id", 65535)
        classes.append(ClassSpec(check.string(item, "name", where), native, thing))
    for attribute in ("name", "native_id"):
        values = [getattr(c, attribute) for c in classes]
        twice = next((v for v in values if values.count(v) > 1), None)
        if twice is not None:
            key = "name" if attribute == "name" else "id"
            raise check.fail("classes", f"{key} {twice!r} is given to two classes")
    if len(classes) >= IGNORE_LABEL:
        raise check.fail("classes", f"at most {IGNORE_LABEL - 1} classes")
    return tuple(classes)


def parse_spec(document: Mapping[str, Any], path: Path) -> DatasetSpec:
    """Validate a parsed spec; the first problem is one line naming ``path`` and the key."""
    check = _Checker(path)
    unknown = sorted(set(document) - _KNOWN_KEYS)
    if unknown:
        raise check.fail(unknown[0], f"unknown key (known: {', '.join(sorted(_KNOWN_KEYS))})")
    name = check.string(document, "name")
    if not re.fullmatch(SLUG_PATTERN, name):
        raise check.fail("name", f"{name!r} is not a slug (lower-case words joined by - _ or .)")
    label_format = check.string(document, "label_format")
    if label_format not in LABEL_FORMATS:
        raise check.fail("label_format", f"{label_format!r}; one of {', '.join(LABEL_FORMATS)}")
    divisor = check.integer(document.get("divisor", DEFAULT_DIVISOR), "divisor", 65535)
    if divisor < 1 or ("divisor" in document and label_format != "divisor16"):
        raise check.fail("divisor", "a positive divisor, and only with label_format divisor16")
    splits = document.get("splits")
    if (
        not isinstance(splits, list)
        or not splits
        or not all(isinstance(s, str) and re.fullmatch(r"[\w.-]+", s) for s in splits)
        or len(set(splits)) != len(splits)
    ):
        raise check.fail("splits", "expected a list of distinct split names (letters, digits, -_.)")
    ignore = document.get("ignore_ids", [IGNORE_LABEL])
    if not isinstance(ignore, list):
        raise check.fail("ignore_ids", "expected a list of native ids")
    ignore_ids = tuple(check.integer(v, "ignore_ids", 65535) for v in ignore)
    classes = _classes(check, document.get("classes"))
    clash = sorted({c.native_id for c in classes} & set(ignore_ids))
    if clash:
        raise check.fail("ignore_ids", f"id {clash[0]} is also a class id")
    layout = document.get("layout")
    if not isinstance(layout, dict):
        raise check.fail("layout", "expected a table with labels = '…{sequence}…{frame}…'")
    extra = sorted(set(layout) - {"labels", "images"})
    if extra:
        raise check.fail(f"layout.{extra[0]}", "unknown key (known: labels, images)")
    labels = _check_template(check, "layout.labels", check.string(layout, "labels", "layout."))
    images = None
    if "images" in layout:
        images = _check_template(check, "layout.images", check.string(layout, "images", "layout."))
    facts = document.get("facts", {})
    if not isinstance(facts, dict) or not all(isinstance(v, str) for v in facts.values()):
        raise check.fail("facts", "expected a table of text values")
    extra = sorted(set(facts) - _FACT_KEYS)
    if extra:
        raise check.fail(
            f"facts.{extra[0]}", f"unknown key (known: {', '.join(sorted(_FACT_KEYS))})"
        )
    root = None
    if "root" in document:
        root = (path.parent / Path(check.string(document, "root")).expanduser()).resolve()
    description = document.get("description", f"dataset described by {path.name}")
    if not isinstance(description, str):
        raise check.fail("description", "expected a string")
    return DatasetSpec(
        source=path,
        name=name,
        description=description,
        label_format=label_format,
        divisor=divisor,
        splits=tuple(splits),
        classes=classes,
        ignore_ids=ignore_ids,
        labels=labels,
        images=images,
        root=root,
        facts=dict(facts),
    )


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a spec file."""
    source = Path(path).expanduser()
    return parse_spec(_parse_document(source), source)


def _template_regex(template: str, split: str) -> re.Pattern[str]:
    """The template with {split} filled in as a regex; sequence is the shortest match."""
    pattern = ""
    for literal, field_name, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if field_name == "split":
            pattern += re.escape(split)
        elif field_name == "sequence":
            pattern += r"(?P<sequence>[^/]+?)"
        elif field_name == "frame":
            pattern += r"(?P<frame>[^/]+)"
    return re.compile(pattern)


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``frame9`` before ``frame10``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part
    )


_READERS: dict[str, Callable[[Path, int], PanopticFrame]] = {
    "step": lambda path, _: read_step_png(path),
    "divisor16": lambda path, divisor: read_divisor_png(path, divisor),
    "cityscapes-ids": lambda path, _: read_cityscapes_instance_ids(path),
    "mots-png": lambda path, _: read_mots_png(path),
}


class SpecDataset(Dataset):
    """Base of the loaders made from spec files (one subclass per spec, see :func:`spec_class`)."""

    spec: ClassVar[DatasetSpec]

    def __reduce__(self) -> tuple[Any, ...]:
        # A class made at run time cannot be pickled by name: rebuild it from the spec instead,
        # so worker processes get the same loader whatever the start method.
        return (_rebuild, (self.spec, self.root, dict(self.protocol)))

    def label_space(self) -> LabelSpace:
        """The spec's classes in their listed order; things as flagged."""
        classes = self.spec.classes
        return LabelSpace(
            self.spec.name,
            tuple(c.name for c in classes),
            frozenset(i for i, c in enumerate(classes) if c.thing),
        )

    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """Each class's native id → its position; the ignore ids → ignore."""
        rows = [
            ClassMappingRow(c.native_id, c.name, index, "thing" if c.thing else "")
            for index, c in enumerate(self.spec.classes)
        ]
        rows += [ClassMappingRow(i, "void", IGNORE_LABEL) for i in self.spec.ignore_ids]
        return rows

    def _table(self) -> npt.NDArray[np.int32]:
        mapping = {c.native_id: index for index, c in enumerate(self.spec.classes)}
        mapping |= {native: IGNORE_LABEL for native in self.spec.ignore_ids}
        return lookup_table(mapping, max(mapping) + 1)

    def _path(self, template: str, split: str, frame: FrameRef) -> Path:
        return self.root / template.format(split=split, sequence=frame.sequence, frame=frame.name)

    def image_path(self, split: str, frame: FrameRef) -> Path | None:
        """The image of a frame when the spec names an image layout."""
        return None if self.spec.images is None else self._path(self.spec.images, split, frame)

    def sequences(self, split: str) -> list[SequenceRef]:
        """The sequences and frames that the label template finds on disk, in natural order."""
        check_split(self.name, split, self.facts.splits)
        require_root(self.root, self.name, self.facts.layout)
        pattern = _template_regex(self.spec.labels, split)
        glob = self.spec.labels.format(split=split, sequence="*", frame="*")
        found: dict[str, list[str]] = {}
        for path in self.root.glob(glob):
            match = pattern.fullmatch(path.relative_to(self.root).as_posix())
            if match:
                require_regular_file(path)
                found.setdefault(match["sequence"], []).append(match["frame"])
        if not found:
            raise DatasetNotFoundError(
                f"{self.name}: no label files match {self.root / glob} (split {split!r}; "
                f"layout.labels in {self.spec.source})"
            )
        return [
            SequenceRef(
                sequence,
                tuple(
                    FrameRef(sequence, frame, index)
                    for index, frame in enumerate(sorted(frames, key=_natural_key))
                ),
            )
            for sequence, frames in sorted(found.items(), key=lambda item: _natural_key(item[0]))
        ]

    def _read_native(self, path: Path) -> PanopticFrame:
        return _READERS[self.spec.label_format](require_regular_file(path), self.spec.divisor)

    def load_ground_truth(self, split: str, frame: FrameRef) -> PanopticFrame:
        """Decode a label file with the named format and map it into the spec's classes."""
        path = self._path(self.spec.labels, split, frame)
        native = self._read_native(path)
        semantic = map_classes(native.semantic, self._table(), path)
        return evaluation_frame(semantic, native.instance, self.label_space().thing_classes)

    def verify(self, split: str) -> list[Problem]:
        """Unreadable labels, ids not in the spec, sizes that differ, missing or odd images."""
        problems: list[Problem] = []
        table = self._table()
        for sequence in self.sequences(split):
            shape: tuple[int, int] | None = None
            for frame in sequence.frames:
                path = self._path(self.spec.labels, split, frame)
                try:
                    native = self._read_native(path)
                except InputError as error:
                    problems.append(problem(error))
                    continue
                bad = invalid_ids(native.semantic, table)
                if bad:
                    problems.append(
                        Problem(str(path), f"class ids {format_ids(bad)} are not in the spec")
                    )
                shape = shape or native.shape
                if native.shape != shape:
                    message = f"size {size_text(native.shape)} differs from the sequence's"
                    problems.append(Problem(str(path), f"{message} {size_text(shape)}"))
                image = self.image_path(split, frame)
                if image is not None:
                    problems += check_image(image, native.shape)
        return problems


def spec_class(spec: DatasetSpec) -> type[SpecDataset]:
    """A loader class for ``spec`` (what ``dataset_class`` returns for a spec file)."""
    layout = spec.labels + (f" and {spec.images}" if spec.images else "")
    things = [c.name for c in spec.classes if c.thing]
    facts = DatasetFacts(
        splits=spec.splits,
        resolution=spec.facts.get("resolution", "as the files are"),
        annotated_frames=spec.facts.get("annotated_frames", "the label files found"),
        layout=layout,
        citation=spec.facts.get("citation", ""),
        extra={
            "spec": str(spec.source),
            "label format": f"{spec.label_format}: {LABEL_FORMATS[spec.label_format]}",
            "things": ", ".join(things) or "none",
            "void": ", ".join(str(i) for i in spec.ignore_ids) or "none",
        },
    )
    namespace = {"name": spec.name, "description": spec.description, "facts": facts, "spec": spec}
    return type(f"SpecDataset[{spec.name}]", (SpecDataset,), namespace)


def _rebuild(spec: DatasetSpec, root: Path, protocol: Mapping[str, str]) -> SpecDataset:
    return spec_class(spec)(root, protocol)
