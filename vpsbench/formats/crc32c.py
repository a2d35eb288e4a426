"""CRC-32C (Castagnoli), the checksum of TFRecord framing, in numpy (no compiled dependency).

Reflected polynomial ``0x82F63B78``, initial value and final XOR ``0xFFFFFFFF``
(``crc32c(b"123456789") == 0xE3069283``). Short inputs go through the classic byte-wise table
loop. Long inputs are cut into many equal lanes whose CRC registers advance together, one numpy
step per byte position, and the lane results are then folded pairwise with the linear operator
"advance the register over n zero bytes" (a 32×32 bit matrix): some 40 MB/s on one shared core,
where a pure-Python byte loop manages a few MB/s.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

_POLYNOMIAL = 0x82F63B78
_MASK = 0xFFFFFFFF
_MASK_DELTA = 0xA282EAD8
#: Inputs shorter than this use the byte-wise loop.
_SHORT = 4096
#: Every lane holds at least this many bytes (longer inputs get more lanes, up to ``_MAX_LANES``).
_MIN_LANE = 256
_MAX_LANES = 16384

_Vector = npt.NDArray[np.uint32]


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ _POLYNOMIAL if value & 1 else value >> 1
        table.append(value)
    return table


_TABLE = _make_table()
_TABLE_NP: _Vector = np.array(_TABLE, dtype=np.uint32)

#: A GF(2) 32×32 matrix as its 32 columns: ``columns[b]`` is the image of register bit ``b``.
_Matrix = tuple[int, ...]


def _apply(matrix: _Matrix, register: int) -> int:
    result = 0
    bit = 0
    while register:
        if register & 1:
            result ^= matrix[bit]
        register >>= 1
        bit += 1
    return result


def _multiply(first: _Matrix, second: _Matrix) -> _Matrix:
    """The operator ``first ∘ second`` (apply ``second``, then ``first``)."""
    return tuple(_apply(first, column) for column in second)


@cache
def _zeros_operator(count: int) -> _Matrix:
    """The linear map that advances a raw register over ``count`` zero bytes."""
    if count == 1:
        return tuple(_TABLE[(1 << bit) & 0xFF] ^ ((1 << bit) >> 8) for bit in range(32))
    half = _zeros_operator(count // 2)
    squared = _multiply(half, half)
    return _multiply(_zeros_operator(1), squared) if count % 2 else squared


def _apply_vector(matrix: _Matrix, registers: _Vector) -> _Vector:
    result = np.zeros_like(registers)
    for bit, column in enumerate(matrix):
        if column:
            result ^= ((registers >> np.uint32(bit)) & np.uint32(1)) * np.uint32(column)
    return result


def _raw_bytewise(register: int, data: bytes | memoryview) -> int:
    table = _TABLE
    for byte in bytes(data):
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


def _raw_from_zero_lanes(data: npt.NDArray[np.uint8]) -> int:
    """The raw register after ``data`` starting from 0 (leading zero bytes then change nothing)."""
    lanes = 1
    while lanes * 2 <= _MAX_LANES and data.size >= lanes * 2 * _MIN_LANE:
        lanes *= 2
    length = -(-data.size // lanes)
    padded = np.zeros(lanes * length, dtype=np.uint8)
    padded[padded.size - data.size :] = data
    columns = np.ascontiguousarray(padded.reshape(lanes, length).T).astype(np.uint32)
    registers = np.zeros(lanes, dtype=np.uint32)
    mask = np.uint32(0xFF)
    eight = np.uint32(8)
    for position in range(length):
        registers = _TABLE_NP[(registers ^ columns[position]) & mask] ^ (registers >> eight)
    while registers.size > 1:
        registers = _apply_vector(_zeros_operator(length), registers[0::2]) ^ registers[1::2]
        length *= 2
    return int(registers[0])


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """The CRC-32C of ``data``."""
    view = memoryview(data).cast("B")
    if view.nbytes < _SHORT:
        return _raw_bytewise(_MASK, view) ^ _MASK
    array = np.frombuffer(view, dtype=np.uint8).copy()
    # For a reflected CRC, starting from 0xFFFFFFFF equals starting from 0 with the first four
    # bytes inverted.
    array[:4] ^= np.uint8(0xFF)
    return _raw_from_zero_lanes(array) ^ _MASK


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The TFRecord "masked" CRC-32C: rotated right by 15 bits plus ``0xA282EAD8``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _MASK
