"""Bit-exact PNG reading and writing of label maps (8-bit gray, palette indices, RGB, 16-bit gray).

Pillow alone accepts some damaged files silently (a flipped bit inside the compressed data may
decode to wrong pixels, a file cut just before its end chunk decodes fine), so :func:`read_png`
first walks the PNG chunk structure itself: signature, chunk lengths, the CRC of every critical
chunk and the final ``IEND`` chunk. Only then are the pixels decoded: by libspng (``pyspng``,
about four times faster) for the formats label maps use most, non-interlaced 8-bit RGB and 8-bit
gray, and by Pillow for everything else (and whenever ``pyspng`` is not installed), with no
global Pillow setting changed. Both give the same samples (tests compare them bit for bit).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

try:
    import pyspng
except ImportError:  # pragma: no cover - the Pillow path decodes everything
    pyspng = None

from vpsbench.errors import InputError
from vpsbench.formats.atomic import atomic_write

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_CHUNK_LENGTH = 2**31 - 1
_COLOR_TYPE_NAMES = {
    0: "grayscale",
    2: "RGB",
    3: "palette",
    4: "grayscale+alpha",
    6: "RGBA",
}
_COMPRESS_LEVEL = 6

PngArray = npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
# What a damaged PNG may raise while it is decoded (turned into one-line InputErrors).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    RuntimeError,
    struct.error,
    zlib.error,
)


@dataclass(frozen=True, slots=True)
class PngHeader:
    """The fields of a PNG's ``IHDR`` chunk that decide how its samples are read."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    interlaced: bool = False

    @property
    def description(self) -> str:
        """Human-readable pixel format, e.g. ``16-bit grayscale``."""
        name = _COLOR_TYPE_NAMES.get(self.color_type, f"color type {self.color_type}")
        return f"{self.bit_depth}-bit {name}"


def _check_png_structure(data: bytes) -> PngHeader:
    """Validate signature, chunk layout and CRCs; return the header or raise ``ValueError``."""
    if not data:
        raise ValueError("empty file, expected a PNG")
    if not data.startswith(PNG_SIGNATURE):
        if len(data) < len(PNG_SIGNATURE) and PNG_SIGNATURE.startswith(data):
            raise ValueError("truncated PNG (cut inside the signature)")
        raise ValueError("not a PNG file (bad signature)")
    pos = len(PNG_SIGNATURE)
    header: PngHeader | None = None
    while True:
        if pos + 8 > len(data):
            raise ValueError("truncated PNG (no IEND chunk)")
        length, chunk_type = struct.unpack(">I4s", data[pos : pos + 8])
        name = chunk_type.decode("latin-1")
        if length > _MAX_CHUNK_LENGTH or not chunk_type.isalpha():
            raise ValueError(f"corrupt PNG (invalid chunk at byte {pos})")
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG (chunk {name} cut short)")
        body = data[pos + 8 : pos + 8 + length]
        is_critical = chunk_type[0] & 0x20 == 0
        if is_critical:
            (stored_crc,) = struct.unpack(">I", data[pos + 8 + length : end])
            if zlib.crc32(chunk_type + body) != stored_crc:
                raise ValueError(f"corrupt PNG (CRC mismatch in chunk {name} at byte {pos})")
        if header is None:
            if chunk_type != b"IHDR" or length != 13:
                raise ValueError("corrupt PNG (first chunk is not a valid IHDR)")
            width, height, bit_depth, color_type = struct.unpack(">IIBB", body[:10])
            header = PngHeader(width, height, bit_depth, color_type, body[12] != 0)
        if chunk_type == b"IEND":
            return header
        pos = end


def _read_bytes(path: str | Path) -> bytes:
    """Read a whole file, turning OS errors into one-line :class:`InputError`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from None


def _image_to_array(image: Image.Image, header: PngHeader) -> PngArray:
    """Convert a decoded Pillow image to the documented array type, or raise ``ValueError``."""
    if header.bit_depth == 16 and header.color_type != 0:
        raise ValueError(f"{header.description} PNG is not supported (only 16-bit grayscale)")
    mode = image.mode
    if mode in ("L", "P"):
        return np.asarray(image, dtype=np.uint8)
    if mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if mode == "LA":
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, 0])
    if mode in ("RGB", "RGBA"):
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, :3])
    if mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image).astype(np.uint16)
    if mode == "I":
        values = np.asarray(image)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 0xFFFF):
            raise ValueError("grayscale values outside the 16-bit range")
        return values.astype(np.uint16)
    raise ValueError(f"unsupported PNG pixel format {header.description} (Pillow mode {mode})")


def read_png(path: str | Path) -> PngArray:
    """Read a PNG bit-exactly: uint8 (H,W) gray/palette indices, uint8 (H,W,3) RGB, uint16 (H,W).

    Palette images give their raw indices, RGBA and gray+alpha drop the alpha channel, and gray
    images of 1, 2 or 4 bits are scaled to 8 bits as the PNG standard defines. Every problem
    (missing file, not a PNG, truncated or corrupt data, 16-bit colour) raises :class:`InputError`.
    """
    data = _read_bytes(path)
    array: PngArray
    try:
        header = _check_png_structure(data)
        spng_format = _SPNG_FORMATS.get((header.bit_depth, header.color_type))
        if pyspng is not None and spng_format is not None and not header.interlaced:
            _check_pixel_count(header)
            array = np.asarray(pyspng.load(data, spng_format), dtype=np.uint8)
        else:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                image.load()
                array = _image_to_array(image, header)
    except Image.DecompressionBombError:
        raise InputError(path, "PNG too large to decode safely") from None
    except _DECODE_ERRORS as exc:
        raise InputError(path, _one_line(exc)) from None
    if array.shape[:2] != (header.height, header.width):
        raise InputError(path, f"decoded size {array.shape[:2]} does not match the PNG header")
    return array


def read_rgb_codes(path: str | Path, kind: str = "") -> npt.NDArray[np.uint32]:
    """An 8-bit RGB PNG as one ``uint32`` code per pixel: ``R | G << 8 | B << 16`` (H×W).

    Bits 24–31 hold an alpha byte and carry no label (:func:`code_channels` ignores them). Label
    formats that spread one value over the channels (STEP) are compared and counted on these
    codes, one array of four bytes a pixel, and decoded only where needed. libspng writes the
    codes directly (decoding to RGBA); otherwise they are packed from :func:`read_png`'s
    samples. The checks and errors are :func:`read_png`'s, and a PNG that is not RGB raises
    :class:`InputError` ("expected an 8-bit RGB ``kind`` PNG").
    """
    data = _read_bytes(path)
    try:
        header = _check_png_structure(data)
        rgb = (header.bit_depth, header.color_type, header.interlaced) == (8, 2, False)
        if pyspng is not None and rgb:
            _check_pixel_count(header)
            rgba = np.asarray(pyspng.load(data, "RGBA"), dtype=np.uint8)
            if rgba.shape != (header.height, header.width, 4):
                raise ValueError(f"decoded size {rgba.shape[:2]} does not match the header")
            codes = np.ascontiguousarray(rgba).view("<u4")[:, :, 0]
            return codes.astype(np.uint32, copy=False)  # a view on little-endian machines
    except Image.DecompressionBombError:
        raise InputError(path, "PNG too large to decode safely") from None
    except _DECODE_ERRORS as exc:
        raise InputError(path, _one_line(exc)) from None
    array = read_png(path)
    if array.ndim != 3 or array.dtype != np.uint8:
        label = f"{kind} " if kind else ""
        raise InputError(path, f"expected an 8-bit RGB {label}PNG, got {describe_png_array(array)}")
    codes = array[:, :, 2].astype(np.uint32)
    codes <<= 8
    codes |= array[:, :, 1]
    codes <<= 8
    codes |= array[:, :, 0]
    return codes


def code_channels(
    codes: npt.NDArray[np.uint32],
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """The R, G and B samples behind :func:`read_rgb_codes` codes, as ``int32`` arrays."""
    values = codes.astype(np.int32) if codes.dtype != np.int32 else codes
    return values & 0xFF, (values >> 8) & 0xFF, (values >> 16) & 0xFF


# (bit depth, colour type) → libspng output format for the formats it decodes here.
_SPNG_FORMATS = {(8, 2): "RGB", (8, 0): "L"}


def _check_pixel_count(header: PngHeader) -> None:
    """Refuse what Pillow refuses as a decompression bomb, so both decoders accept the same."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and header.width * header.height > 2 * limit:
        raise Image.DecompressionBombError(f"{header.width}x{header.height} pixels")


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, for use inside an :class:`InputError`."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def read_png_header(path: str | Path) -> PngHeader:
    """Read and validate a PNG's structure, returning its header without decoding the pixels."""
    try:
        return _check_png_structure(_read_bytes(path))
    except ValueError as exc:
        raise InputError(path, _one_line(exc)) from None


def describe_png_array(array: npt.NDArray[np.generic]) -> str:
    """Name the pixel format of an array returned by :func:`read_png`, for error messages."""
    if array.ndim == 3:
        return "an 8-bit RGB PNG"
    if array.dtype == np.uint16:
        return "a 16-bit grayscale PNG"
    return "an 8-bit grayscale/palette PNG"


def _to_image(array: npt.NDArray[np.generic]) -> Image.Image:
    """Build the Pillow image that stores ``array`` losslessly, or raise ``ValueError``."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(array).__name__}")
    if array.size == 0:
        raise ValueError(f"cannot write an empty array of shape {array.shape} as PNG")
    kind, itemsize = array.dtype.kind, array.dtype.itemsize
    expected_mode = None
    if kind == "u" and itemsize == 1 and array.ndim == 2:
        expected_mode, native = "L", np.ascontiguousarray(array, dtype=np.uint8)
    elif kind == "u" and itemsize == 1 and array.ndim == 3 and array.shape[2] == 3:
        expected_mode, native = "RGB", np.ascontiguousarray(array, dtype=np.uint8)
    elif kind == "u" and itemsize == 2 and array.ndim == 2:
        expected_mode, native = "I;16", np.ascontiguousarray(array, dtype=np.uint16)
    if expected_mode is not None:
        image = Image.fromarray(native)
        if image.mode != expected_mode:
            raise ValueError(f"Pillow built mode {image.mode}, expected {expected_mode}")
        return image
    raise ValueError(
        f"cannot write array of dtype {array.dtype} and shape {array.shape} as PNG "
        "(expected uint8 (H,W), uint8 (H,W,3) or uint16 (H,W))"
    )


def write_png(path: str | Path, array: npt.NDArray[np.generic]) -> None:
    """Write a uint8 (H,W) gray, uint8 (H,W,3) RGB or uint16 (H,W) gray PNG, atomically.

    Raises ``ValueError`` for any other array; the file is then not created.
    """
    image = _to_image(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_COMPRESS_LEVEL)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
