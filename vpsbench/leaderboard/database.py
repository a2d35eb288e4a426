"""The query layer: records loaded into an in-memory SQLite database, read back with SQL.

Three tables: ``records`` (one row per record, with its headline numbers and its canonical JSON),
``class_values`` (per-class IoU) and ``sequence_values`` (per-sequence STQ/AQ/SQ). Every page,
table and file of the leaderboard is produced from the queries below.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from vpsbench.leaderboard.store import StoredRecord
from vpsbench.records import ResultRecord, record_to_json

SCHEMA = """
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    method TEXT NOT NULL,
    method_name TEXT NOT NULL,
    method_version TEXT NOT NULL,
    dataset TEXT NOT NULL,
    split TEXT NOT NULL,
    provenance TEXT NOT NULL CHECK (provenance IN ('reproduced', 'reported')),
    stq REAL NOT NULL,
    aq REAL NOT NULL,
    sq REAL NOT NULL,
    vpq REAL,
    pq REAL,
    precision REAL,
    citation TEXT,
    citation_locator TEXT,
    citation_url TEXT,
    timestamp TEXT NOT NULL,
    path TEXT NOT NULL,
    record_json TEXT NOT NULL,
    UNIQUE (method, dataset, split)
);
CREATE TABLE class_values (
    record_id INTEGER NOT NULL REFERENCES records(id),
    class_name TEXT NOT NULL,
    iou REAL NOT NULL,
    PRIMARY KEY (record_id, class_name)
);
CREATE TABLE sequence_values (
    record_id INTEGER NOT NULL REFERENCES records(id),
    position INTEGER NOT NULL,
    sequence TEXT NOT NULL,
    frames INTEGER,
    tubes INTEGER,
    stq REAL NOT NULL,
    aq REAL NOT NULL,
    sq REAL NOT NULL,
    PRIMARY KEY (record_id, position)
);
"""


@dataclass(frozen=True)
class BoardKey:
    """One leaderboard table: a dataset split."""

    dataset: str
    split: str

    @property
    def label(self) -> str:
        """How the board is named on pages: ``kitti-step val``."""
        return f"{self.dataset} {self.split}"

    @property
    def anchor(self) -> str:
        """The board as an id and file stem: ``kitti-step-val``."""
        return f"{self.dataset}-{self.split}"


@dataclass(frozen=True)
class BoardRow:
    """One method's line on a board."""

    record_id: int
    rank: int
    method: str
    method_name: str
    method_version: str
    provenance: str
    stq: float
    aq: float
    sq: float
    vpq: float | None
    pq: float | None
    precision: float | None
    citation_locator: str | None
    path: str


@dataclass(frozen=True)
class SummaryCell:
    """A method's STQ on one board."""

    stq: float
    provenance: str


@dataclass(frozen=True)
class SummaryRow:
    """A method across boards: its STQ on each and the mean over the boards it has."""

    method: str
    method_name: str
    boards: int
    mean_stq: float
    cells: dict[BoardKey, SummaryCell]


@dataclass(frozen=True)
class ClassValue:
    """Per-class IoU of one record."""

    class_name: str
    iou: float


@dataclass(frozen=True)
class SequenceValue:
    """Per-sequence numbers of one record."""

    sequence: str
    frames: int | None
    tubes: int | None
    stq: float
    aq: float
    sq: float


@dataclass(frozen=True)
class MethodRecord:
    """A record of a method with its database id and store path."""

    record_id: int
    path: str
    record: ResultRecord


@dataclass(frozen=True)
class MethodEntry:
    """A method of the board and its display name."""

    method: str
    method_name: str


class LeaderboardDatabase:
    """An in-memory SQLite database of records with the queries the leaderboard needs."""

    def __init__(self) -> None:
        """An empty database with the schema."""
        self._connection = sqlite3.connect(":memory:")
        self._connection.executescript(SCHEMA)

    @classmethod
    def from_records(cls, stored: Sequence[StoredRecord]) -> LeaderboardDatabase:
        """Load records (sorted by path, so ids and every output are deterministic)."""
        database = cls()
        for item in sorted(stored, key=lambda s: s.relative_path):
            database.add(item)
        return database

    def close(self) -> None:
        """Release the in-memory database."""
        self._connection.close()

    def add(self, stored: StoredRecord) -> int:
        """Insert one record with its per-class and per-sequence values; return its id."""
        record = stored.record
        metrics = record.metrics
        citation = record.citation
        cursor = self._connection.execute(
            "INSERT INTO records (method, method_name, method_version, dataset, split, "
            "provenance, stq, aq, sq, vpq, pq, precision, citation, citation_locator, "
            "citation_url, timestamp, path, record_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.method,
                record.method_name,
                record.method_version,
                record.dataset,
                record.split,
                record.provenance,
                metrics.stq,
                metrics.aq,
                metrics.sq,
                metrics.vpq,
                metrics.pq,
                record.precision,
                citation.text if citation else None,
                citation.locator if citation else None,
                citation.url if citation else None,
                record.timestamp.isoformat(),
                stored.relative_path,
                record_to_json(record),
            ),
        )
        record_id = int(cursor.lastrowid or 0)
        self._connection.executemany(
            "INSERT INTO class_values (record_id, class_name, iou) VALUES (?, ?, ?)",
            [(record_id, name, iou) for name, iou in metrics.iou_per_class.items()],
        )
        self._connection.executemany(
            "INSERT INTO sequence_values (record_id, position, sequence, frames, tubes, stq, aq, "
            "sq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (record_id, i, s.sequence, s.frames, s.tubes, s.stq, s.aq, s.sq)
                for i, s in enumerate(metrics.per_sequence)
            ],
        )
        return record_id

    def boards(self) -> list[BoardKey]:
        """Every dataset split that has records, sorted."""
        rows = self._connection.execute(
            "SELECT DISTINCT dataset, split FROM records ORDER BY dataset, split"
        )
        return [BoardKey(dataset, split) for dataset, split in rows]

    def board(self, key: BoardKey) -> list[BoardRow]:
        """A board's rows, best STQ first (ties: method id)."""
        rows = self._connection.execute(
            "SELECT id, RANK() OVER (ORDER BY stq DESC), method, method_name, method_version, "
            "provenance, stq, aq, sq, vpq, pq, precision, citation_locator, path "
            "FROM records WHERE dataset = ? AND split = ? ORDER BY stq DESC, method",
            (key.dataset, key.split),
        )
        return [BoardRow(*row) for row in rows]

    def summary(self) -> list[SummaryRow]:
        """Each method's STQ on every board and its mean STQ over the boards it has."""
        methods = self._connection.execute(
            "SELECT method, MIN(method_name), COUNT(*), AVG(stq) FROM records "
            "GROUP BY method ORDER BY AVG(stq) DESC, method"
        ).fetchall()
        cells: dict[str, dict[BoardKey, SummaryCell]] = {method: {} for method, *_ in methods}
        for method, dataset, split, stq, provenance in self._connection.execute(
            "SELECT method, dataset, split, stq, provenance FROM records ORDER BY method, path"
        ):
            cells[method][BoardKey(dataset, split)] = SummaryCell(stq, provenance)
        return [
            SummaryRow(method, name, count, mean, cells[method])
            for method, name, count, mean in methods
        ]

    def methods(self) -> list[MethodEntry]:
        """Every method id with its display name, sorted by id."""
        rows = self._connection.execute(
            "SELECT method, MIN(method_name) FROM records GROUP BY method ORDER BY method"
        )
        return [MethodEntry(method, name) for method, name in rows]

    def method_records(self, method: str) -> list[MethodRecord]:
        """A method's records, by dataset and split."""
        rows = self._connection.execute(
            "SELECT id, path, record_json FROM records WHERE method = ? ORDER BY dataset, split",
            (method,),
        )
        return [
            MethodRecord(record_id, path, ResultRecord.model_validate_json(text))
            for record_id, path, text in rows
        ]

    def all_records(self) -> list[tuple[str, ResultRecord]]:
        """Every record with its store path, by path."""
        rows = self._connection.execute("SELECT path, record_json FROM records ORDER BY path")
        return [(path, ResultRecord.model_validate_json(text)) for path, text in rows]

    def class_values(self, record_id: int) -> list[ClassValue]:
        """Per-class IoU of a record, by class name."""
        rows = self._connection.execute(
            "SELECT class_name, iou FROM class_values WHERE record_id = ? ORDER BY class_name",
            (record_id,),
        )
        return [ClassValue(*row) for row in rows]

    def sequence_values(self, record_id: int) -> list[SequenceValue]:
        """Per-sequence numbers of a record, in the record's order."""
        rows = self._connection.execute(
            "SELECT sequence, frames, tubes, stq, aq, sq FROM sequence_values "
            "WHERE record_id = ? ORDER BY position",
            (record_id,),
        )
        return [SequenceValue(*row) for row in rows]
