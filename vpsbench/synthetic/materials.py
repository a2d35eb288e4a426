"""Surface appearances as data: a pattern kind plus colours and sizes, drawn per scene object."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

Rgb = tuple[float, float, float]


class Pattern(IntEnum):
    """How a material paints a box face (coordinates are the face's own, in metres)."""

    PLAIN = 0  # base colour modulated by fractal noise
    GRID = 1  # accent lines every period_u (along the face) / period_v (upwards), fill_* wide
    FACADE = 2  # windows (accent) on a period_u × period_v grid on the vertical faces
    FOLIAGE = 3  # two greens mixed by fine noise
    BODYWORK = 4  # vehicle body: headlights at the front, tail lights at the back, dark sill
    CABIN = 5  # glass (accent) inside a frame on the vertical faces, body colour on the roof
    BUS = 6  # body with a window band along the sides and a windscreen
    LAMP = 7  # traffic-light housing with three lamps, lamp ``variant`` lit in the accent colour
    SIGN = 8  # plate with an accent border ring
    WHEEL = 9  # dark tyre with a light hub square (makes the wheel's rotation visible)


@dataclass(frozen=True)
class Material:
    """A pattern and its parameters; colours are display RGB in [0, 1], sizes in metres."""

    color: Rgb
    pattern: Pattern = Pattern.PLAIN
    accent: Rgb = (0.0, 0.0, 0.0)
    noise_amplitude: float = 0.2
    noise_cell: float = 0.5
    period_u: float = 0.0
    period_v: float = 0.0
    fill_u: float = 0.0
    fill_v: float = 0.0
    variant: int = 0


def jitter(rng: np.random.Generator, color: Rgb, amount: float = 0.06) -> Rgb:
    """A colour varied a little per object, kept inside [0, 1]."""
    varied = np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0.0, 1.0)
    return float(varied[0]), float(varied[1]), float(varied[2])


def pick(rng: np.random.Generator, palette: tuple[Rgb, ...], amount: float = 0.05) -> Rgb:
    """A palette colour chosen at random and jittered."""
    return jitter(rng, palette[int(rng.integers(len(palette)))], amount)


FACADE_COLORS: tuple[Rgb, ...] = (
    (0.78, 0.72, 0.62),
    (0.70, 0.70, 0.68),
    (0.62, 0.36, 0.28),
    (0.88, 0.86, 0.80),
    (0.85, 0.78, 0.55),
    (0.45, 0.45, 0.47),
    (0.66, 0.55, 0.45),
)
GLASS_COLORS: tuple[Rgb, ...] = ((0.18, 0.22, 0.28), (0.25, 0.30, 0.36), (0.14, 0.16, 0.18))
WALL_COLORS: tuple[Rgb, ...] = ((0.62, 0.60, 0.57), (0.55, 0.45, 0.38), (0.72, 0.70, 0.64))
FENCE_COLORS: tuple[Rgb, ...] = ((0.30, 0.32, 0.30), (0.50, 0.42, 0.32), (0.60, 0.62, 0.62))
CAR_COLORS: tuple[Rgb, ...] = (
    (0.75, 0.10, 0.10),
    (0.12, 0.25, 0.70),
    (0.90, 0.90, 0.90),
    (0.12, 0.12, 0.13),
    (0.62, 0.63, 0.66),
    (0.88, 0.72, 0.12),
    (0.12, 0.45, 0.22),
    (0.92, 0.45, 0.08),
    (0.35, 0.18, 0.45),
)
SHIRT_COLORS: tuple[Rgb, ...] = (
    (0.80, 0.15, 0.15),
    (0.15, 0.30, 0.70),
    (0.90, 0.90, 0.88),
    (0.20, 0.55, 0.30),
    (0.95, 0.75, 0.15),
    (0.35, 0.35, 0.38),
    (0.60, 0.30, 0.60),
)
TROUSER_COLORS: tuple[Rgb, ...] = (
    (0.15, 0.18, 0.30),
    (0.20, 0.20, 0.22),
    (0.45, 0.38, 0.28),
    (0.35, 0.38, 0.45),
)
SKIN_COLORS: tuple[Rgb, ...] = ((0.92, 0.76, 0.62), (0.78, 0.58, 0.42), (0.52, 0.36, 0.24))
SIGN_COLORS: tuple[Rgb, ...] = ((0.10, 0.30, 0.75), (0.90, 0.90, 0.90), (0.95, 0.80, 0.10))
LAMP_COLORS: tuple[Rgb, ...] = ((1.0, 0.15, 0.10), (1.0, 0.70, 0.10), (0.20, 1.0, 0.35))
