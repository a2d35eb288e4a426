"""Band-limited procedural texture functions of a surface's own coordinates (metres).

Every function takes the pixel's filter widths (how many metres of the surface one pixel covers
along each coordinate) and returns the texture *averaged over that footprint*: noise octaves finer
than the pixel fade to their mean, stripes and window grids are integrated exactly over a box
filter. This keeps far surfaces free of aliasing speckle, so warping a frame with the true flow
reproduces its neighbour.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
UintArray = npt.NDArray[np.uint32]
#: A per-sample array or one value for all samples.
Real = FloatArray | float

_HASH_X = np.uint32(0x8DA6B343)
_HASH_Y = np.uint32(0xD8163841)
_HASH_MIX = np.uint32(0x5BD1E995)
_OCTAVE_WEIGHTS = (0.28, 0.24, 0.20, 0.16, 0.12)
#: Summing octaves shrinks the spread of value noise; this restores a standard deviation ≈ 0.2.
_CONTRAST = 2.0
#: An octave fades out as its cell shrinks from this many pixels …
_FADE_FULL_PIXELS = 3.0
#: … to this many, where it is replaced by its mean.
_FADE_GONE_PIXELS = 1.5


def _lattice_values(
    cell_x: npt.NDArray[np.int64], cell_y: npt.NDArray[np.int64], seed: UintArray
) -> FloatArray:
    """Pseudo-random value in [0, 1) for each integer lattice point, a pure hash of its indices."""
    hashed = (cell_x.astype(np.uint32) * _HASH_X) ^ (cell_y.astype(np.uint32) * _HASH_Y) ^ seed
    hashed ^= hashed >> np.uint32(13)
    hashed *= _HASH_MIX
    hashed ^= hashed >> np.uint32(15)
    hashed *= _HASH_MIX
    hashed ^= hashed >> np.uint32(16)
    values: FloatArray = (hashed >> np.uint32(8)).astype(np.float64) * (1.0 / (1 << 24))
    return values


def value_noise(u: FloatArray, v: FloatArray, seed: UintArray) -> FloatArray:
    """Smooth 2-D value noise in [0, 1] with unit lattice spacing (C1-continuous, smoothstep)."""
    floor_u, floor_v = np.floor(u), np.floor(v)
    frac_u, frac_v = u - floor_u, v - floor_v
    cell_u, cell_v = floor_u.astype(np.int64), floor_v.astype(np.int64)
    weight_u = frac_u * frac_u * (3.0 - 2.0 * frac_u)
    weight_v = frac_v * frac_v * (3.0 - 2.0 * frac_v)
    corner_00 = _lattice_values(cell_u, cell_v, seed)
    corner_10 = _lattice_values(cell_u + 1, cell_v, seed)
    corner_01 = _lattice_values(cell_u, cell_v + 1, seed)
    corner_11 = _lattice_values(cell_u + 1, cell_v + 1, seed)
    bottom = corner_00 + (corner_10 - corner_00) * weight_u
    top = corner_01 + (corner_11 - corner_01) * weight_u
    result: FloatArray = bottom + (top - bottom) * weight_v
    return result


def fractal_noise(
    u: FloatArray, v: FloatArray, seed: UintArray, cell: FloatArray, footprint: FloatArray
) -> FloatArray:
    """Five octaves of value noise (cells ``cell``, /2, … /16 metres) in [0, 1], footprint-filtered.

    An octave whose cell spans under three pixels (``footprint`` metres each) fades towards its
    mean 0.5, reached at 1.5 pixels.
    """
    total = np.zeros_like(u)
    scale = np.asarray(cell, dtype=np.float64)
    for octave, weight in enumerate(_OCTAVE_WEIGHTS):
        size = scale / (1 << octave)
        pixels = size / np.maximum(footprint, 1e-9)
        fade = np.clip(
            (pixels - _FADE_GONE_PIXELS) / (_FADE_FULL_PIXELS - _FADE_GONE_PIXELS), 0.0, 1.0
        )
        if not fade.any():
            total += weight * 0.5
            continue
        octave_seed = seed ^ np.uint32(0x9E3779B9 * (octave + 1) & 0xFFFFFFFF)
        noise = value_noise(u / size, v / size, octave_seed)
        total += weight * (0.5 + (noise - 0.5) * fade)
    result: FloatArray = np.clip(0.5 + (total - 0.5) * _CONTRAST, 0.0, 1.0)
    return result


def _pulse_integral(coord: FloatArray, period: Real, start: Real, width: Real) -> FloatArray:
    """∫₀^coord of the pulse train that is 1 on ``[start + k·period, start + k·period + width)``."""
    whole = np.floor(coord / period)
    inside = coord - whole * period
    integral: FloatArray = whole * width + np.clip(inside - start, 0.0, width)
    return integral


def pulse_coverage(
    coord: FloatArray, period: Real, start: Real, width: Real, filter_width: FloatArray
) -> FloatArray:
    """Fraction of ``[coord ± filter_width/2]`` covered by a periodic pulse train (box filter)."""
    half = np.maximum(filter_width, 1e-6) / 2.0
    covered = _pulse_integral(coord + half, period, start, width) - _pulse_integral(
        coord - half, period, start, width
    )
    result: FloatArray = np.clip(covered / (2.0 * half), 0.0, 1.0)
    return result


def band_coverage(coord: FloatArray, low: Real, high: Real, filter_width: FloatArray) -> FloatArray:
    """Fraction of ``[coord ± filter_width/2]`` inside the interval ``[low, high]`` (box filter)."""
    half = np.maximum(filter_width, 1e-6) / 2.0
    covered = np.clip(coord + half, low, high) - np.clip(coord - half, low, high)
    result: FloatArray = np.clip(covered / (2.0 * half), 0.0, 1.0)
    return result


def rectangle_coverage(
    u: FloatArray,
    v: FloatArray,
    u_range: tuple[Real, Real],
    v_range: tuple[Real, Real],
    filter_u: FloatArray,
    filter_v: FloatArray,
) -> FloatArray:
    """Box-filtered indicator of an axis-aligned rectangle in face coordinates."""
    across_u = band_coverage(u, u_range[0], u_range[1], filter_u)
    return across_u * band_coverage(v, v_range[0], v_range[1], filter_v)


def mix(first: FloatArray, second: FloatArray, amount: FloatArray) -> FloatArray:
    """Per-pixel linear blend of two colour arrays ``(P, 3)`` by ``amount`` ``(P,)`` in [0, 1]."""
    blended: FloatArray = first + (second - first) * amount[:, None]
    return blended
