"""Streaming reader and writer of TFRecord files, with both CRC-32C checks, without TensorFlow.

A TFRecord file is a sequence of records, each framed as ``uint64 length`` (little-endian),
``uint32 masked_crc32c(length bytes)``, ``length`` data bytes, ``uint32 masked_crc32c(data)``
(TensorFlow's ``core/lib/io/record_writer``). Uncompressed files only (Waymo's are).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from vpsbench.errors import InputError
from vpsbench.formats.crc32c import masked_crc32c

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


class RecordError(InputError):
    """A record of a TFRecord file is damaged; the message names the file and the record index."""

    def __init__(self, path: str | Path, index: int, problem: str) -> None:
        self.index = index
        super().__init__(path, f"record {index}: {problem}")


def _read_exactly(handle: BinaryIO, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = handle.read(min(remaining, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_records(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(index, data)`` for each record of a TFRecord file, checking both CRCs.

    Raises :class:`RecordError` (file and record index in its message) for a truncated record or
    a CRC mismatch, and :class:`InputError` if the file cannot be opened.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the ``with`` below
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None
    with handle:
        index = 0
        while True:
            header = _read_exactly(handle, _HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise RecordError(
                    path, index, f"truncated (file ends inside the {_HEADER.size}-byte header)"
                )
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise RecordError(
                    path,
                    index,
                    "CRC-32C mismatch in the length field (corrupt or not a TFRecord file)",
                )
            data = _read_exactly(handle, length)
            if len(data) < length:
                raise RecordError(
                    path, index, f"truncated (file ends after {len(data)} of {length} data bytes)"
                )
            footer = _read_exactly(handle, _FOOTER.size)
            if len(footer) < _FOOTER.size:
                raise RecordError(path, index, "truncated (file ends inside the data CRC)")
            (data_crc,) = _FOOTER.unpack(footer)
            if masked_crc32c(data) != data_crc:
                raise RecordError(path, index, "CRC-32C mismatch in the data (corrupt record)")
            yield index, data
            index += 1


def frame_record(data: bytes) -> bytes:
    """One record's bytes as they appear in a TFRecord file."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


def write_records(handle: BinaryIO, records: Iterable[bytes]) -> None:
    """Write ``records`` to an open binary file in TFRecord framing."""
    for data in records:
        handle.write(frame_record(data))
