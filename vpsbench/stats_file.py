"""Saved sufficient statistics: a split's per-sequence joint histograms in one versioned ``.npz``.

``evaluate --save-stats`` writes them; ``rescore`` merges files (shards of sequence subsets, from
other machines) and scores them with another matching or metric selection without reading one
prediction. A file holds, per sequence, the summed joint histogram (STQ, matching) and the
per-frame tables (VPQ, PQ, HOTA/CLEAR/Identity), plus a JSON header: format version, dataset,
split, protocol, label space, the prediction files' SHA-256 and the evaluation's void setting.

It is a plain zip of ``.npy`` members (no pickles; read with ``allow_pickle=False``), written
sequence by sequence into an atomic temporary file, and read member by member, so memory never
holds more than one sequence's tables. Members are stored with fixed timestamps: the same
statistics always give the same bytes.
"""

from __future__ import annotations

import itertools
import json
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

import vpsbench
from vpsbench.datasets.base import LabelSpace
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.atomic import atomic_write
from vpsbench.predictions import manifest_digest
from vpsbench.statistics import JointHistogram, SequenceStatistics

STATS_FORMAT = "vpsbench-stats"
STATS_VERSION = 1
_HEADER = "header"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def label_space_to_json(space: LabelSpace) -> dict[str, Any]:
    """A label space as plain JSON (sorted ids)."""
    return {
        "name": space.name,
        "class_names": list(space.class_names),
        "thing_classes": sorted(space.thing_classes),
        "evaluated": None if space.evaluated is None else sorted(space.evaluated),
        "ignore_label": space.ignore_label,
    }


def label_space_from_json(document: dict[str, Any]) -> LabelSpace:
    evaluated = document["evaluated"]
    return LabelSpace(
        name=str(document["name"]),
        class_names=tuple(str(n) for n in document["class_names"]),
        thing_classes=frozenset(int(c) for c in document["thing_classes"]),
        evaluated=None if evaluated is None else frozenset(int(c) for c in evaluated),
        ignore_label=int(document["ignore_label"]),
    )


@dataclass(frozen=True)
class StatsHeader:
    """What a statistics file was reduced from; shards merge only when all of it agrees."""

    dataset: str
    split: str
    protocol: dict[str, str]
    label_space: LabelSpace
    prediction_format: str
    declared_classes: int | None  # --num-classes of the predictions
    count_void_column: bool
    #: Official sequence names of the split (None: the loader has no fixed list); a merge that
    #: misses some is partial.
    official: tuple[str, ...] | None

    def identity(self) -> dict[str, Any]:
        """The fields that must be equal in every shard of one merge."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "protocol": self.protocol,
            "label_space": label_space_to_json(self.label_space),
            "prediction_format": self.prediction_format,
            "declared_classes": self.declared_classes,
            "count_void_column": self.count_void_column,
            "official": None if self.official is None else list(self.official),
        }


@dataclass(frozen=True)
class SequenceEntry:
    """One sequence of a statistics file: where its arrays are and what produced them."""

    name: str
    official_name: str
    position: int  # index in the split's sequence list (merged shards are put in this order)
    frame_names: tuple[str, ...]
    digests: dict[str, str]
    member: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "official_name": self.official_name,
            "position": self.position,
            "frames": list(self.frame_names),
            "digests": self.digests,
            "member": self.member,
        }


def _npy_into(archive: zipfile.ZipFile, name: str, array: npt.NDArray[Any]) -> None:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
    info.external_attr = 0o644 << 16
    with archive.open(info, "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _table_arrays(tables: Sequence[JointHistogram]) -> dict[str, npt.NDArray[Any]]:
    """Frame tables as four arrays: rows per table, int32 keys (rows × 4), pixels, weight."""
    lengths = np.array([len(t) for t in tables], dtype=np.int64)
    if not tables:
        return {
            "rows": lengths,
            "keys": np.zeros((0, 4), np.int32),
            "pixels": np.zeros(0, np.int64),
            "weight": np.zeros(0, np.float64),
        }
    keys = np.stack(
        [
            np.concatenate([getattr(t, column) for t in tables])
            for column in ("gt_class", "gt_instance", "pred_class", "pred_instance")
        ],
        axis=1,
    ).astype(np.int32)
    return {
        "rows": lengths,
        "keys": keys,
        "pixels": np.concatenate([t.pixels for t in tables]).astype(np.int64),
        "weight": np.concatenate([t.weight for t in tables]).astype(np.float64),
    }


def _tables_from_arrays(
    rows: npt.NDArray[Any],
    keys: npt.NDArray[Any],
    pixels: npt.NDArray[Any],
    weight: npt.NDArray[Any],
) -> list[JointHistogram]:
    bounds = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    return [
        JointHistogram(
            gt_class=keys[a:b, 0],
            gt_instance=keys[a:b, 1],
            pred_class=keys[a:b, 2],
            pred_instance=keys[a:b, 3],
            pixels=pixels[a:b],
            weight=weight[a:b],
        )
        for a, b in itertools.pairwise(bounds.tolist())
    ]


class StatsWriter:
    """Streams sequences into a statistics file; the file appears (atomically) on ``close``.

    ``durable``: fsync it before it appears (off for a scratch file that is read back at once).
    """

    def __init__(self, path: str | Path, header: StatsHeader, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.header = header
        self._stack = ExitStack()
        handle = self._stack.enter_context(atomic_write(self.path, durable=durable))
        self._archive = self._stack.enter_context(zipfile.ZipFile(handle, "w"))
        self._entries: list[SequenceEntry] = []

    def add(
        self,
        statistics: SequenceStatistics,
        digests: dict[str, str],
        position: int,
        official_name: str | None = None,
    ) -> None:
        """Append one reduced sequence (its summed histogram and its frame tables)."""
        member = f"s{len(self._entries):06d}"
        for suffix, array in _table_arrays(statistics.frames).items():
            _npy_into(self._archive, f"{member}_frame_{suffix}", array)
        for suffix, array in _table_arrays([statistics.joint]).items():
            if suffix != "rows":
                _npy_into(self._archive, f"{member}_joint_{suffix}", array)
        self._entries.append(
            SequenceEntry(
                statistics.name,
                official_name or statistics.name,
                position,
                tuple(statistics.frame_names),
                dict(sorted(digests.items())),
                member,
            )
        )

    def close(self) -> None:
        """Write the header and move the finished file into place."""
        document = {
            "format": STATS_FORMAT,
            "version": STATS_VERSION,
            "vpsbench_version": vpsbench.__version__,
            **self.header.identity(),
            "sequences": [entry.to_json() for entry in self._entries],
        }
        text = json.dumps(document, sort_keys=True).encode("utf-8")
        _npy_into(self._archive, _HEADER, np.frombuffer(text, dtype=np.uint8))
        self._stack.close()

    def abort(self, error: BaseException) -> None:
        """Drop the unfinished file (the target is left as it was)."""
        self._stack.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> StatsWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
        else:
            self.abort(error)


_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class StatsFile:
    """One statistics file opened for reading; arrays are read one sequence at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._archive = np.load(self.path, allow_pickle=False)
        except FileNotFoundError:
            raise InputError(self.path, "statistics file not found") from None
        except _READ_ERRORS as error:
            raise InputError(self.path, f"not a statistics file ({_one_line(error)})") from None
        if not isinstance(self._archive, np.lib.npyio.NpzFile):
            raise InputError(self.path, "not a statistics file (a single .npy array)")
        try:
            document = json.loads(bytes(self._archive[_HEADER]).decode("utf-8"))
            self._check_version(document)
            self.header = StatsHeader(
                dataset=str(document["dataset"]),
                split=str(document["split"]),
                protocol={str(k): str(v) for k, v in document["protocol"].items()},
                label_space=label_space_from_json(document["label_space"]),
                prediction_format=str(document["prediction_format"]),
                declared_classes=document["declared_classes"],
                count_void_column=bool(document["count_void_column"]),
                official=None if document["official"] is None else tuple(document["official"]),
            )
            self.entries = [
                SequenceEntry(
                    str(s["name"]),
                    str(s["official_name"]),
                    int(s["position"]),
                    tuple(str(f) for f in s["frames"]),
                    {str(k): str(v) for k, v in s["digests"].items()},
                    str(s["member"]),
                )
                for s in document["sequences"]
            ]
        except VpsbenchError:
            self.close()
            raise
        except (*_READ_ERRORS, TypeError, AttributeError, UnicodeDecodeError) as error:
            self.close()
            raise InputError(self.path, f"corrupt statistics file ({_one_line(error)})") from None

    def _check_version(self, document: Any) -> None:
        if not isinstance(document, dict) or document.get("format") != STATS_FORMAT:
            raise InputError(self.path, f"not a {STATS_FORMAT} file (no {STATS_FORMAT} header)")
        version = document.get("version")
        if version != STATS_VERSION:
            raise InputError(
                self.path,
                f"statistics format version {version} (written by vpsbench "
                f"{document.get('vpsbench_version')}); this vpsbench reads version "
                f"{STATS_VERSION}: rescore it with the vpsbench that wrote it, or re-evaluate",
            )

    def _arrays(self, member: str, part: str) -> list[npt.NDArray[Any]]:
        try:
            return [
                self._archive[f"{member}_{part}_{name}"] for name in ("keys", "pixels", "weight")
            ]
        except _READ_ERRORS as error:
            raise InputError(self.path, f"corrupt statistics file ({_one_line(error)})") from None

    def joint(self, entry: SequenceEntry) -> JointHistogram:
        """The summed histogram of a sequence."""
        keys, pixels, weight = self._arrays(entry.member, "joint")
        return _tables_from_arrays(np.array([pixels.size]), keys, pixels, weight)[0]

    def frames(self, entry: SequenceEntry) -> list[JointHistogram]:
        """The per-frame tables of a sequence, in temporal order."""
        keys, pixels, weight = self._arrays(entry.member, "frame")
        try:
            rows = self._archive[f"{entry.member}_frame_rows"]
        except _READ_ERRORS as error:
            raise InputError(self.path, f"corrupt statistics file ({_one_line(error)})") from None
        if rows.size != len(entry.frame_names) or int(rows.sum()) != pixels.size:
            raise InputError(self.path, f"corrupt statistics file (sequence {entry.name})")
        return _tables_from_arrays(rows, keys, pixels, weight)

    def close(self) -> None:
        self._archive.close()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@dataclass
class SplitStatistics:
    """Statistics of the sequences of one split, from one or more files, in split order.

    What the scoring needs and nothing more: per-sequence summed histograms, re-iterable per
    frame tables (streamed from the files), the prediction files' digests and the header.
    """

    header: StatsHeader
    sources: list[tuple[StatsFile, SequenceEntry]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [entry.name for _, entry in self.sources]

    def summaries(self) -> list[tuple[str, JointHistogram, int]]:
        return [(e.name, f.joint(e), len(e.frame_names)) for f, e in self.sources]

    def frame_tables(self) -> Iterator[list[JointHistogram]]:
        """Each sequence's frame tables, read from disk one sequence at a time."""
        for stats, entry in self.sources:
            yield stats.frames(entry)

    def prediction_digest(self) -> str:
        digests: dict[str, str] = {}
        for _, entry in self.sources:
            digests.update(entry.digests)
        return manifest_digest(digests)

    def missing_official(self) -> list[str]:
        """Official sequences of the split that no file holds (empty when none is known)."""
        if self.header.official is None:
            return []
        present = {entry.official_name for _, entry in self.sources}
        return [name for name in self.header.official if name not in present]

    def close(self) -> None:
        for stats in {id(s): s for s, _ in self.sources}.values():
            stats.close()


def merge_stats(files: Sequence[StatsFile]) -> SplitStatistics:
    """Merge statistics files of one split; overlaps and mismatched protocols are refused.

    The sequences are put in split order (their recorded position), so shards merge to the same
    numbers whatever order they are given in.
    """
    if not files:
        raise VpsbenchError("rescore needs at least one statistics file")
    first = files[0]
    reference = first.header.identity()
    owner: dict[str, Path] = {}
    sources: list[tuple[StatsFile, SequenceEntry]] = []
    for stats in files:
        identity = stats.header.identity()
        for key, value in reference.items():
            if identity[key] != value:
                raise InputError(
                    stats.path,
                    f"{key} {_short(identity[key])} differs from {_short(value)} in "
                    f"{first.path}; only statistics of the same protocol merge",
                )
        for entry in stats.entries:
            if entry.name in owner:
                where = (
                    "twice in this file"
                    if owner[entry.name] == stats.path
                    else (f"also in {owner[entry.name]}")
                )
                raise InputError(
                    stats.path,
                    f"sequence {entry.name} is {where}; each shard must hold different sequences",
                )
            owner[entry.name] = stats.path
            sources.append((stats, entry))
    sources.sort(key=lambda source: source[1].position)
    return SplitStatistics(first.header, sources)


def _short(value: object, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
