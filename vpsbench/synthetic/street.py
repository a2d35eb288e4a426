"""The static street: lanes, sidewalks, facades (buildings, walls, fences, hedges, parks), poles.

Cross-section from the centre line outwards (the same on both sides): driving lanes, an optional
bike lane, a parking strip, the sidewalk, then per segment along the street either sidewalk up to
a facade or a terrain strip in front of it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.synthetic.materials import (
    FACADE_COLORS,
    FENCE_COLORS,
    GLASS_COLORS,
    LAMP_COLORS,
    SIGN_COLORS,
    WALL_COLORS,
    Material,
    Pattern,
    jitter,
    pick,
)
from vpsbench.synthetic.scene import Footprint, Ground, LaneMarking, Part, SceneBuilder

FloatArray = npt.NDArray[np.float64]

ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE = 0, 1, 2, 3, 4, 5
TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN = 6, 7, 8, 9

_SIDES = (1.0, -1.0)  # left (y > 0), right (y < 0)
_SEGMENT_KINDS = ("building", "yard", "wall", "fence", "hedge", "park")
_SEGMENT_WEIGHTS = (0.45, 0.15, 0.1, 0.1, 0.1, 0.1)


@dataclass(frozen=True)
class StreetLayout:
    """Cross-section widths (metres) of a street with ``lanes_per_direction`` lanes each way."""

    lanes_per_direction: int
    lane_width: float
    bike_lane: float
    parking: float
    sidewalk: float

    @property
    def driving_half_width(self) -> float:
        """Distance from the centre line to the outer edge of the driving lanes."""
        return self.lanes_per_direction * self.lane_width

    @property
    def road_half_width(self) -> float:
        """Distance from the centre line to the curb."""
        return self.driving_half_width + self.bike_lane + self.parking

    @property
    def sidewalk_outer(self) -> float:
        """Distance from the centre line to the sidewalk's outer edge."""
        return self.road_half_width + self.sidewalk

    def lane_centre(self, lane: int, side: float) -> float:
        """Lateral position of lane ``lane`` (0 = next to the centre line) on ``side`` (±1)."""
        return side * (lane + 0.5) * self.lane_width

    def parking_centre(self, side: float) -> float:
        """Lateral position of the middle of the parking strip on ``side``."""
        return side * (self.road_half_width - self.parking / 2)

    def cycling_line(self, side: float) -> float:
        """Where cyclists ride on ``side``: the bike lane, else the outer lane's edge."""
        if self.bike_lane > 0:
            return side * (self.driving_half_width + self.bike_lane / 2)
        return side * (self.driving_half_width - 0.7)


def random_layout(rng: np.random.Generator) -> StreetLayout:
    """A street cross-section: 1–2 lanes each way, maybe a bike lane, parking, sidewalks."""
    return StreetLayout(
        lanes_per_direction=int(rng.integers(1, 3)),
        lane_width=float(rng.uniform(3.1, 3.5)),
        bike_lane=float(rng.uniform(1.3, 1.8)) if rng.random() < 0.5 else 0.0,
        parking=float(rng.uniform(2.1, 2.5)),
        sidewalk=float(rng.uniform(2.8, 4.5)),
    )


def _markings(layout: StreetLayout) -> tuple[LaneMarking, ...]:
    """Centre line, dashed lane dividers, solid edge lines and bike-lane lines."""
    lines = [LaneMarking(0.0, 0.07, dashed=False)]
    for side in _SIDES:
        for lane in range(1, layout.lanes_per_direction):
            lines.append(LaneMarking(side * lane * layout.lane_width, 0.06, dashed=True))
        lines.append(LaneMarking(side * layout.driving_half_width, 0.06, dashed=False))
        if layout.bike_lane > 0:
            outer = layout.driving_half_width + layout.bike_lane
            lines.append(LaneMarking(side * outer, 0.05, dashed=False))
    return tuple(lines)


def _facade_material(rng: np.random.Generator) -> Material:
    """A building facade: wall colour with a grid of windows."""
    period_u = rng.uniform(2.4, 3.8)
    period_v = rng.uniform(3.0, 3.6)
    return Material(
        pick(rng, FACADE_COLORS),
        Pattern.FACADE,
        accent=pick(rng, GLASS_COLORS, 0.04),
        noise_amplitude=rng.uniform(0.12, 0.25),
        noise_cell=rng.uniform(0.8, 1.6),
        period_u=period_u,
        period_v=period_v,
        fill_u=period_u * rng.uniform(0.35, 0.6),
        fill_v=period_v * rng.uniform(0.4, 0.6),
    )


def _foliage(rng: np.random.Generator) -> Material:
    """Leaves: two greens mixed by fine noise."""
    dark = jitter(rng, (0.12, 0.25, 0.08), 0.04)
    light = jitter(rng, (0.35, 0.55, 0.18), 0.06)
    return Material(dark, Pattern.FOLIAGE, accent=light, noise_amplitude=1.0, noise_cell=0.45)


class _StreetBuilder:
    """Places the static boxes of one street into a :class:`SceneBuilder`."""

    def __init__(self, builder: SceneBuilder, layout: StreetLayout) -> None:
        self.builder = builder
        self.rng = builder.rng
        self.layout = layout

    def box(
        self,
        name: str,
        x_range: tuple[float, float],
        lateral_range: tuple[float, float],
        side: float,
        height: tuple[float, float],
        material: Material,
        semantic: int,
        yaw: float = 0.0,
    ) -> None:
        """Add a box over ``x_range``, ``|y|`` in ``lateral_range`` on ``side``, z in ``height``."""
        centre = (
            (x_range[0] + x_range[1]) / 2,
            side * (lateral_range[0] + lateral_range[1]) / 2,
            (height[0] + height[1]) / 2,
        )
        half = (
            (x_range[1] - x_range[0]) / 2,
            (lateral_range[1] - lateral_range[0]) / 2,
            (height[1] - height[0]) / 2,
        )
        self.builder.add_static_box(centre, Part(name, half, material), semantic, yaw=yaw)

    def claim(self, x: float, y: float, half_x: float, half_y: float) -> None:
        """Reserve ground so that moving things do not walk or drive through a static object."""
        self.builder.footprints.append(Footprint(np.array([[x, y]]), (half_x, half_y)))

    def buildings(self, x_range: tuple[float, float], side: float, front: float) -> None:
        """One to three adjoining buildings with their own heights and facades."""
        rng = self.rng
        count = int(rng.integers(1, 4))
        cuts = np.sort(rng.uniform(x_range[0], x_range[1], count - 1))
        edges = [x_range[0], *cuts.tolist(), x_range[1]]
        for start, end in itertools.pairwise(edges):
            if end - start < 4.0:
                continue
            setback = front + rng.uniform(0.0, 0.6)
            depth = rng.uniform(8.0, 16.0)
            height = rng.uniform(6.0, 26.0)
            self.box(
                "building",
                (start, end),
                (setback, setback + depth),
                side,
                (0.0, height),
                _facade_material(rng),
                BUILDING,
            )

    def tree(self, x: float, lateral: float, side: float) -> None:
        """A trunk with a crown of two crossed boxes (all vegetation, as in Cityscapes)."""
        rng = self.rng
        trunk_height = rng.uniform(1.8, 3.2)
        radius = rng.uniform(1.2, 2.4)
        bark = Material(jitter(rng, (0.30, 0.22, 0.15)), noise_amplitude=0.35, noise_cell=0.15)
        trunk = (0.0, trunk_height + radius * 0.5)
        self.box(
            "trunk",
            (x - 0.14, x + 0.14),
            (lateral - 0.14, lateral + 0.14),
            side,
            trunk,
            bark,
            VEGETATION,
        )
        crown_bottom = trunk_height
        crown_top = trunk_height + radius * rng.uniform(1.4, 1.9)
        for yaw in (0.0, np.pi / 4):
            centre = (x, side * lateral, (crown_bottom + crown_top) / 2)
            half = (radius, radius, (crown_top - crown_bottom) / 2)
            part = Part("crown", half, _foliage(rng))
            self.builder.add_static_box(centre, part, VEGETATION, yaw=yaw)
        self.claim(x, side * lateral, 0.3, 0.3)

    def segment(self, x_range: tuple[float, float], side: float) -> float:
        """Fill one stretch of one side; returns ``|y|`` where terrain starts in it."""
        rng = self.rng
        outer = self.layout.sidewalk_outer
        kind = _SEGMENT_KINDS[int(rng.choice(len(_SEGMENT_KINDS), p=_SEGMENT_WEIGHTS))]
        start, end = x_range
        if kind == "building":
            front = outer + (rng.uniform(0.5, 2.0) if rng.random() < 0.3 else 0.0)
            self.buildings(x_range, side, front)
            return front
        if kind == "yard":
            front = outer + rng.uniform(2.5, 6.0)
            self.buildings(x_range, side, front)
            for x in np.arange(start + rng.uniform(2, 6), end - 2, rng.uniform(7, 12)):
                self.tree(float(x), outer + rng.uniform(1.0, front - outer - 1.0 + 1e-3), side)
            return outer
        if kind == "wall":
            height = rng.uniform(1.2, 2.8)
            wall = Material(
                pick(rng, WALL_COLORS),
                Pattern.GRID,
                accent=(0.35, 0.35, 0.33),
                noise_amplitude=0.25,
                noise_cell=0.5,
                period_u=rng.uniform(1.5, 3.0),
                fill_u=0.04,
                period_v=rng.uniform(0.3, 0.6),
                fill_v=0.02,
            )
            self.box("wall", (start, end), (outer, outer + 0.3), side, (0.0, height), wall, WALL)
            if rng.random() < 0.7:
                self.buildings(x_range, side, outer + rng.uniform(3.0, 10.0))
            return outer
        if kind == "fence":
            line = outer + rng.uniform(0.0, 1.5)
            height = rng.uniform(0.9, 1.8)
            fence = Material(
                pick(rng, FENCE_COLORS),
                Pattern.GRID,
                accent=(0.72, 0.74, 0.70),
                noise_amplitude=0.2,
                noise_cell=0.3,
                period_u=rng.uniform(0.12, 0.25),
                fill_u=0.05,
                period_v=height / 2 + 0.01,
                fill_v=0.05,
            )
            self.box("fence", (start, end), (line, line + 0.06), side, (0.0, height), fence, FENCE)
            if rng.random() < 0.5:
                bush = (line + 0.5, line + rng.uniform(1.5, 3.0))
                self.box(
                    "bush",
                    (start, end),
                    bush,
                    side,
                    (0.0, rng.uniform(1.0, 2.5)),
                    _foliage(rng),
                    VEGETATION,
                )
            if rng.random() < 0.6:
                self.buildings(x_range, side, line + rng.uniform(4.0, 12.0))
            return outer
        if kind == "hedge":
            depth = rng.uniform(0.8, 1.5)
            self.box(
                "hedge",
                (start, end),
                (outer, outer + depth),
                side,
                (0.0, rng.uniform(0.8, 2.2)),
                _foliage(rng),
                VEGETATION,
            )
            if rng.random() < 0.7:
                self.buildings(x_range, side, outer + depth + rng.uniform(2.0, 8.0))
            return outer
        for x in np.arange(start + rng.uniform(1, 5), end - 1, rng.uniform(5, 10)):
            self.tree(float(x), outer + rng.uniform(1.5, 9.0), side)
        if rng.random() < 0.5:
            self.buildings(x_range, side, outer + rng.uniform(15.0, 35.0))
        return outer

    def side(self, side: float, x_start: float, x_end: float) -> tuple[FloatArray, FloatArray]:
        """Facade segments along one side; returns their start x and terrain-start ``|y|``."""
        rng = self.rng
        starts: list[float] = []
        terrain_from: list[float] = []
        x = x_start
        while x < x_end:
            if rng.random() < 0.15:
                gap = rng.uniform(2.0, 7.0)
                starts.append(x)
                terrain_from.append(self.layout.sidewalk_outer)
                x += gap
            length = rng.uniform(10.0, 35.0)
            starts.append(x)
            terrain_from.append(self.segment((x, x + length), side))
            x += length
        return np.array(starts), np.array(terrain_from)

    def poles(self, side: float, x_start: float, x_end: float) -> None:
        """Poles near the curb; some carry a traffic sign, some a traffic light."""
        rng = self.rng
        lateral = self.layout.road_half_width + 0.4
        metal = Material(jitter(rng, (0.45, 0.46, 0.47)), noise_amplitude=0.2, noise_cell=0.2)
        x = x_start + rng.uniform(0.0, 10.0)
        while x < x_end:
            kind = rng.random()
            height = rng.uniform(3.2, 4.2) if kind < 0.18 else rng.uniform(3.5, 7.5)
            self.box(
                "pole",
                (x - 0.06, x + 0.06),
                (lateral - 0.06, lateral + 0.06),
                side,
                (0.0, height),
                metal,
                POLE,
            )
            if kind < 0.18:
                lamp = Material(
                    (0.12, 0.12, 0.12),
                    Pattern.LAMP,
                    accent=pick(rng, LAMP_COLORS, 0.0),
                    noise_amplitude=0.2,
                    noise_cell=0.1,
                    variant=int(rng.integers(3)),
                )
                self.box(
                    "traffic_light",
                    (x - 0.16, x + 0.16),
                    (lateral - 0.16, lateral + 0.16),
                    side,
                    (height, height + 0.9),
                    lamp,
                    TRAFFIC_LIGHT,
                )
            elif kind < 0.5:
                plate = Material(
                    pick(rng, SIGN_COLORS),
                    Pattern.SIGN,
                    accent=(0.85, 0.1, 0.1),
                    noise_amplitude=0.1,
                    noise_cell=0.15,
                )
                size = rng.uniform(0.25, 0.4)
                top = height - 0.1
                self.box(
                    "traffic_sign",
                    (x - 0.1, x - 0.07),
                    (lateral - size, lateral + size),
                    side,
                    (top - 2 * size, top),
                    plate,
                    TRAFFIC_SIGN,
                )
            self.claim(x, side * lateral, 0.2, 0.2)
            x += rng.uniform(12.0, 26.0)


def build_street(
    builder: SceneBuilder, layout: StreetLayout, x_start: float, x_end: float
) -> Ground:
    """Add all static boxes of a street from ``x_start`` to ``x_end`` (closed by a far building)."""
    rng = builder.rng
    street = _StreetBuilder(builder, layout)
    starts: list[FloatArray] = []
    terrain_from: list[FloatArray] = []
    for side in _SIDES:
        side_starts, side_terrain = street.side(side, x_start, x_end)
        starts.append(side_starts)
        terrain_from.append(side_terrain)
        street.poles(side, x_start, x_end)
    far_height = rng.uniform(15.0, 40.0)
    street.box(
        "building",
        (x_end, x_end + 25.0),
        (-80.0, 80.0),
        1.0,
        (0.0, far_height),
        _facade_material(rng),
        BUILDING,
    )
    grey = rng.uniform(0.24, 0.36)
    asphalt = jitter(rng, (grey, grey, grey * 1.02), 0.012)
    paving = jitter(rng, (0.64, 0.62, 0.58), 0.06)
    slab = rng.uniform(0.5, 1.0)
    grass = jitter(rng, (0.30, 0.40, 0.16), 0.05)
    soil = jitter(rng, (0.45, 0.38, 0.25), 0.05)
    return Ground(
        road_half_width=layout.road_half_width,
        sidewalk_outer=layout.sidewalk_outer,
        segment_starts=(starts[0], starts[1]),
        terrain_from=(terrain_from[0], terrain_from[1]),
        markings=_markings(layout),
        road=Material(asphalt, noise_amplitude=0.28, noise_cell=0.6),
        sidewalk=Material(
            paving,
            Pattern.GRID,
            accent=jitter(rng, (0.45, 0.44, 0.42), 0.03),
            noise_amplitude=0.2,
            noise_cell=0.6,
            period_u=slab,
            period_v=slab,
            fill_u=0.03,
            fill_v=0.03,
        ),
        terrain=Material(grass, Pattern.FOLIAGE, accent=soil, noise_amplitude=1.0, noise_cell=0.7),
        texture_seed=int(rng.integers(1, 2**32 - 1)),
    )
