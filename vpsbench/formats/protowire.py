"""A small reader of the protobuf binary wire format, for reading a few fields without ``protobuf``.

It splits a message into ``(field number, wire type, value)`` triples (varints, 64- and 32-bit
fixed values, length-delimited byte strings) and gives typed access to the fields a caller knows
by number from the ``.proto`` schema. Semantics follow the protobuf encoding guide: for a
singular scalar field the last occurrence wins; the occurrences of a singular message field are
merged (parsed as their concatenation); absent fields read as their default. Groups (wire types
3 and 4, deprecated) are not supported and make a message malformed.
"""

from __future__ import annotations

from collections import defaultdict

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5

_WIRE_NAMES = {
    VARINT: "varint",
    FIXED64: "64-bit",
    LENGTH_DELIMITED: "length-delimited",
    FIXED32: "32-bit",
}


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (or a field has an unexpected type)."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return ``(value, next position)``."""
    value = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


class Message:
    """The fields of one encoded message, by number, each a list of ``(wire type, value)``."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        fields: dict[int, list[tuple[int, int | memoryview]]] = defaultdict(list)
        pos = 0
        end = len(view)
        while pos < end:
            key, pos = _varint(view, pos)
            number, wire_type = key >> 3, key & 7
            if number < 1 or number > 0x1FFFFFFF:
                raise WireError(f"invalid field number {number}")
            value: int | memoryview
            if wire_type == VARINT:
                value, pos = _varint(view, pos)
            elif wire_type == LENGTH_DELIMITED:
                length, pos = _varint(view, pos)
                if pos + length > end:
                    raise WireError(f"field {number}: length {length} runs past the message end")
                value = view[pos : pos + length]
                pos += length
            elif wire_type in (FIXED64, FIXED32):
                size = 8 if wire_type == FIXED64 else 4
                if pos + size > end:
                    raise WireError(f"field {number}: truncated {size * 8}-bit value")
                value = int.from_bytes(view[pos : pos + size], "little")
                pos += size
            else:
                raise WireError(f"field {number}: unsupported wire type {wire_type}")
            fields[number].append((wire_type, value))
        self._fields = dict(fields)

    def numbers(self) -> frozenset[int]:
        """The field numbers present."""
        return frozenset(self._fields)

    def has(self, number: int) -> bool:
        """Whether field ``number`` occurs at least once."""
        return number in self._fields

    def _values(self, number: int, wire_type: int) -> list[int | memoryview]:
        values = []
        for found, value in self._fields.get(number, []):
            if found != wire_type:
                raise WireError(
                    f"field {number} is {_WIRE_NAMES.get(found, found)}, "
                    f"expected {_WIRE_NAMES[wire_type]}"
                )
            values.append(value)
        return values

    def varints(self, number: int) -> list[int]:
        """Every varint occurrence of field ``number`` (non-packed repeated scalars)."""
        return [value for value in self._values(number, VARINT) if isinstance(value, int)]

    def uint(self, number: int, default: int = 0) -> int:
        """A singular unsigned varint field (uint32/uint64/bool/enum as stored)."""
        values = self.varints(number)
        return values[-1] if values else default

    def int64(self, number: int, default: int = 0) -> int:
        """A singular ``int32``/``int64`` field (two's complement; negatives use 10 bytes)."""
        value = self.uint(number, default) & 0xFFFFFFFFFFFFFFFF
        return value - (1 << 64) if value >= 1 << 63 else value

    def int32(self, number: int, default: int = 0) -> int:
        """A singular ``int32`` field (the low 32 bits, as the protobuf runtimes read it)."""
        value = self.uint(number, default) & 0xFFFFFFFF
        return value - (1 << 32) if value >= 1 << 31 else value

    def boolean(self, number: int, default: bool = False) -> bool:
        """A singular ``bool`` field."""
        return bool(self.uint(number, int(default)))

    def chunks(self, number: int) -> list[memoryview]:
        """Every length-delimited occurrence of field ``number``, in order."""
        values = self._values(number, LENGTH_DELIMITED)
        return [value for value in values if isinstance(value, memoryview)]

    def bytes(self, number: int) -> bytes:
        """A singular ``bytes`` field (``b""`` when absent)."""
        chunks = self.chunks(number)
        return bytes(chunks[-1]) if chunks else b""

    def string(self, number: int) -> str:
        """A singular ``string`` field (UTF-8)."""
        try:
            return self.bytes(number).decode("utf-8")
        except UnicodeDecodeError:
            raise WireError(f"field {number} is not valid UTF-8 text") from None

    def message(self, number: int) -> Message:
        """A singular message field (occurrences merged; an empty message when absent)."""
        return Message(b"".join(bytes(chunk) for chunk in self.chunks(number)))

    def messages(self, number: int) -> list[Message]:
        """A repeated message field, one :class:`Message` per occurrence."""
        return [Message(chunk) for chunk in self.chunks(number)]


def encode_varint(value: int) -> bytes:
    """The varint encoding of a non-negative ``value`` (negative ints: pass ``value % 2**64``)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_field(number: int, value: int | bytes) -> bytes:
    """One field: a varint for ``int``, length-delimited for ``bytes`` (for writing test data)."""
    if isinstance(value, int):
        return encode_varint(number << 3 | VARINT) + encode_varint(value % (1 << 64))
    return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(len(value)) + value
