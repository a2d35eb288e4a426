"""Surface colours (albedo, display RGB in [0, 1]) of boxes, ground zones and the sky.

Textures are functions of each surface's own coordinates (a box face's, or the world's for the
ground), so they move exactly with the surface; every pattern is box-filtered over the pixel's
footprint (see :mod:`vpsbench.synthetic.textures`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.synthetic.materials import Material, Pattern
from vpsbench.synthetic.scene import Ground, Lighting, Scene
from vpsbench.synthetic.textures import (
    band_coverage,
    fractal_noise,
    mix,
    pulse_coverage,
    rectangle_coverage,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UintArray = npt.NDArray[np.uint32]

ROAD_ZONE, SIDEWALK_ZONE, TERRAIN_ZONE = 0, 1, 2
_WHITE_PAINT = np.array([0.86, 0.86, 0.83])
_TAIL_LIGHT = np.array([0.75, 0.05, 0.05])
_PLATE = np.array([0.90, 0.90, 0.86])
_SILL = np.array([0.10, 0.10, 0.11])
_DIM_LAMP = np.array([0.18, 0.18, 0.17])
_CURB = np.array([0.74, 0.73, 0.70])
_CLOUD = np.array([0.96, 0.96, 0.97])
_FACE_SEED = np.uint32(0x27D4EB2D)
_WINDOW_SEED = np.uint32(0x165667B1)


@dataclass(frozen=True, eq=False)
class MaterialTable:
    """Every box's material parameters as arrays indexed by box (for per-pixel gathers)."""

    pattern: IntArray
    color: FloatArray
    accent: FloatArray
    noise_amplitude: FloatArray
    noise_cell: FloatArray
    period_u: FloatArray
    period_v: FloatArray
    fill_u: FloatArray
    fill_v: FloatArray
    variant: IntArray
    seed: UintArray


def material_table(scene: Scene) -> MaterialTable:
    """Gather the materials and texture seeds of all boxes of a scene into arrays."""
    materials = [primitive.part.material for primitive in scene.primitives]

    def column(name: str) -> FloatArray:
        return np.array(
            [float(getattr(material, name)) for material in materials], dtype=np.float64
        )

    return MaterialTable(
        pattern=np.array([int(material.pattern) for material in materials], dtype=np.int64),
        color=np.array([material.color for material in materials], dtype=np.float64).reshape(-1, 3),
        accent=np.array([material.accent for material in materials], dtype=np.float64).reshape(
            -1, 3
        ),
        noise_amplitude=column("noise_amplitude"),
        noise_cell=column("noise_cell"),
        period_u=column("period_u"),
        period_v=column("period_v"),
        fill_u=column("fill_u"),
        fill_v=column("fill_v"),
        variant=np.array([material.variant for material in materials], dtype=np.int64),
        seed=np.array([primitive.texture_seed for primitive in scene.primitives], dtype=np.uint32),
    )


@dataclass(frozen=True, eq=False)
class FaceSamples:
    """Visible points on box faces: which box and face, face coordinates and filter widths.

    ``u``/``v`` run along the face from its lower corner (``v`` upwards on vertical faces), in
    metres; ``filter_*`` are how many metres of the face one pixel spans along each.
    """

    box: IntArray
    axis: IntArray
    sign: FloatArray
    u: FloatArray
    v: FloatArray
    extent_u: FloatArray
    extent_v: FloatArray
    filter_u: FloatArray
    filter_v: FloatArray

    def subset(self, mask: npt.NDArray[np.bool_]) -> FaceSamples:
        """The samples where ``mask`` is true."""
        return FaceSamples(*(getattr(self, name)[mask] for name in self.__dataclass_fields__))


def _noise_footprint(filter_u: FloatArray, filter_v: FloatArray) -> FloatArray:
    """One filter width for isotropic noise: the geometric mean of the two face directions.

    The larger width alone would blur surfaces seen at grazing angles (the road) to their mean;
    the geometric mean keeps their grain and still fades octaves finer than a pixel's area.
    """
    result: FloatArray = np.sqrt(filter_u * filter_v)
    return result


def _base(samples: FaceSamples, table: MaterialTable) -> FloatArray:
    """Material colour modulated by the material's fractal noise (different on every face)."""
    face = (samples.axis * 2 + (samples.sign > 0)).astype(np.uint32)
    seed = table.seed[samples.box] ^ (face * _FACE_SEED)
    footprint = _noise_footprint(samples.filter_u, samples.filter_v)
    noise = fractal_noise(samples.u, samples.v, seed, table.noise_cell[samples.box], footprint)
    amplitude = table.noise_amplitude[samples.box]
    shade = 1.0 + amplitude * (2.0 * noise - 1.0)
    result: FloatArray = np.clip(table.color[samples.box] * shade[:, None], 0.0, 1.0)
    return result


def _lines(
    coord: FloatArray, period: FloatArray, width: FloatArray, filter_width: FloatArray
) -> FloatArray:
    """Coverage of lines ``width`` wide every ``period`` (no lines where the period is 0)."""
    has_lines = period > 0
    safe_period = np.where(has_lines, period, 1.0)
    coverage = pulse_coverage(coord, safe_period, np.zeros_like(coord), width, filter_width)
    result: FloatArray = np.where(has_lines, coverage, 0.0)
    return result


def _grid(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """Accent lines along and across the face (paving joints, panels, fence bars, stripes)."""
    box = samples.box
    along = _lines(samples.u, table.period_u[box], table.fill_u[box], samples.filter_u)
    across = _lines(samples.v, table.period_v[box], table.fill_v[box], samples.filter_v)
    return mix(base, table.accent[box], np.maximum(along, across))


def _facade(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """A grid of windows on the vertical faces; a darker roof on top."""
    box = samples.box
    period_u, period_v = table.period_u[box], table.period_v[box]
    width_u, width_v = table.fill_u[box], table.fill_v[box]
    columns = pulse_coverage(
        samples.u, period_u, (period_u - width_u) / 2, width_u, samples.filter_u
    )
    rows = pulse_coverage(
        samples.v, period_v, (period_v - width_v) / 2 + 0.2, width_v, samples.filter_v
    )
    vertical = samples.axis != 2
    glass_seed = table.seed[box] ^ _WINDOW_SEED
    reflection = fractal_noise(
        samples.u, samples.v, glass_seed, np.full_like(samples.u, 1.5), samples.filter_u
    )
    glass = table.accent[box] * (0.55 + 0.9 * reflection)[:, None]
    walls = mix(base, glass, np.where(vertical, columns * rows, 0.0))
    result: FloatArray = np.where(vertical[:, None], walls, base * 0.55)
    return result


def _foliage(samples: FaceSamples, table: MaterialTable) -> FloatArray:
    """Two greens mixed by high-contrast fine noise."""
    face = (samples.axis * 2 + (samples.sign > 0)).astype(np.uint32)
    seed = table.seed[samples.box] ^ (face * _FACE_SEED)
    footprint = _noise_footprint(samples.filter_u, samples.filter_v)
    noise = fractal_noise(samples.u, samples.v, seed, table.noise_cell[samples.box], footprint)
    amount = np.clip((noise - 0.5) * 2.8 + 0.5, 0.0, 1.0)
    return mix(table.color[samples.box], table.accent[samples.box], amount)


def _bodywork(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """Vehicle body: headlights and plate in front, tail lights and plate behind, dark sill."""
    box = samples.box
    u, v, fu, fv = samples.u, samples.v, samples.filter_u, samples.filter_v
    width, height = samples.extent_u, samples.extent_v
    end_face = samples.axis == 0
    lamp_rows = (height - 0.28, height - 0.08)
    lamps = rectangle_coverage(u, v, (0.12, 0.45), lamp_rows, fu, fv) + rectangle_coverage(
        u, v, (width - 0.45, width - 0.12), lamp_rows, fu, fv
    )
    plate = rectangle_coverage(u, v, (width / 2 - 0.26, width / 2 + 0.26), (0.12, 0.24), fu, fv)
    lamp_color = np.where((samples.sign > 0)[:, None], table.accent[box], _TAIL_LIGHT)
    colour = mix(base, lamp_color, np.where(end_face, lamps, 0.0))
    colour = mix(colour, np.broadcast_to(_PLATE, colour.shape), np.where(end_face, plate, 0.0))
    side = samples.axis == 1
    sill = band_coverage(v, np.zeros_like(v), np.full_like(v, 0.1), fv)
    seam = band_coverage(u, width * 0.52 - 0.015, width * 0.52 + 0.015, fu) * (v > 0.1)
    dark = np.where(side, np.maximum(sill, 0.7 * seam), 0.0)
    return mix(colour, np.broadcast_to(_SILL, colour.shape), dark)


def _cabin(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """Glass inside a frame on the vertical faces (from ``fill_v`` up), a B-pillar on the sides."""
    box = samples.box
    u, v, fu, fv = samples.u, samples.v, samples.filter_u, samples.filter_v
    frame = table.fill_u[box]
    glass = rectangle_coverage(
        u,
        v,
        (frame, samples.extent_u - frame),
        (table.fill_v[box], samples.extent_v - frame),
        fu,
        fv,
    )
    has_pillar = (samples.axis == 1) & (table.period_u[box] > 0)
    middle = samples.extent_u / 2
    pillar = band_coverage(u, middle - 0.06, middle + 0.06, fu)
    glass = np.where(has_pillar, glass * (1.0 - pillar), glass)
    glass = np.where(samples.axis == 2, 0.0, glass)
    return mix(base, table.accent[box], glass)


def _bus(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """Bus body: side window band with pillars, large windscreen, rear window."""
    box = samples.box
    u, v, fu, fv = samples.u, samples.v, samples.filter_u, samples.filter_v
    width, height = samples.extent_u, samples.extent_v
    period, pillar = table.period_u[box], table.fill_u[box]
    band = band_coverage(v, 0.4 * height, 0.85 * height, fv)
    panes = pulse_coverage(u, period, pillar / 2, period - pillar, fu)
    side = band * panes
    front = rectangle_coverage(u, v, (0.12, width - 0.12), (0.35 * height, 0.9 * height), fu, fv)
    rear = rectangle_coverage(u, v, (0.2, width - 0.2), (0.55 * height, 0.85 * height), fu, fv)
    end = np.where(samples.sign > 0, front, rear)
    glass = np.select([samples.axis == 1, samples.axis == 0], [side, end], 0.0)
    return mix(base, table.accent[box], glass)


def _lamp(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """Traffic-light housing with three lamps on its front and back; one is lit."""
    box = samples.box
    u, v, fu, fv = samples.u, samples.v, samples.filter_u, samples.filter_v
    colour = base
    for index, height_fraction in enumerate((0.78, 0.5, 0.22)):
        centre_u, centre_v = samples.extent_u / 2, samples.extent_v * height_fraction
        disc = rectangle_coverage(
            u, v, (centre_u - 0.09, centre_u + 0.09), (centre_v - 0.09, centre_v + 0.09), fu, fv
        )
        lit = (table.variant[box] == index)[:, None]
        lamp_colour = np.where(lit, table.accent[box], _DIM_LAMP)
        colour = mix(colour, lamp_colour, np.where(samples.axis == 0, disc, 0.0))
    return colour


def _sign(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """Sign plate with an accent-coloured border on its two large faces."""
    u, v, fu, fv = samples.u, samples.v, samples.filter_u, samples.filter_v
    inner = rectangle_coverage(
        u, v, (0.06, samples.extent_u - 0.06), (0.06, samples.extent_v - 0.06), fu, fv
    )
    border = np.where(samples.axis == 0, 1.0 - inner, 0.0)
    return mix(base, table.accent[samples.box], border)


def _wheel(samples: FaceSamples, table: MaterialTable, base: FloatArray) -> FloatArray:
    """Tyre with a light hub and one spoke on the side faces (shows the wheel turning)."""
    u, v, fu, fv = samples.u, samples.v, samples.filter_u, samples.filter_v
    centre_u, centre_v = samples.extent_u / 2, samples.extent_v / 2
    hub = rectangle_coverage(
        u, v, (0.55 * centre_u, 1.45 * centre_u), (0.55 * centre_v, 1.45 * centre_v), fu, fv
    )
    spoke = band_coverage(v, centre_v - 0.02, centre_v + 0.02, fv)
    amount = np.where(samples.axis == 1, np.maximum(hub, 0.8 * spoke), 0.0)
    return mix(base, table.accent[samples.box], amount)


def box_albedo(samples: FaceSamples, table: MaterialTable) -> FloatArray:
    """Albedo of every sample on a box face, by the pattern of the box's material."""
    albedo = np.empty((samples.box.size, 3), dtype=np.float64)
    patterns = table.pattern[samples.box]
    for pattern in np.unique(patterns):
        mask = patterns == pattern
        subset = samples.subset(mask)
        if pattern == Pattern.FOLIAGE:
            albedo[mask] = _foliage(subset, table)
            continue
        base = _base(subset, table)
        painter = _PAINTERS.get(Pattern(int(pattern)))
        albedo[mask] = base if painter is None else painter(subset, table, base)
    return albedo


_PAINTERS = {
    Pattern.GRID: _grid,
    Pattern.FACADE: _facade,
    Pattern.BODYWORK: _bodywork,
    Pattern.CABIN: _cabin,
    Pattern.BUS: _bus,
    Pattern.LAMP: _lamp,
    Pattern.SIGN: _sign,
    Pattern.WHEEL: _wheel,
}


def ground_zones(ground: Ground, x: FloatArray, y: FloatArray) -> IntArray:
    """Road, sidewalk or terrain zone of ground points at world ``(x, y)``."""
    lateral = np.abs(y)
    terrain_from = np.empty_like(x)
    for side, on_side in enumerate((y >= 0, y < 0)):
        starts = ground.segment_starts[side]
        segment = np.clip(np.searchsorted(starts, x[on_side], side="right") - 1, 0, starts.size - 1)
        terrain_from[on_side] = ground.terrain_from[side][segment]
    zones: IntArray = np.where(
        lateral < ground.road_half_width,
        ROAD_ZONE,
        np.where(lateral < terrain_from, SIDEWALK_ZONE, TERRAIN_ZONE),
    ).astype(np.int64)
    return zones


def _ground_base(
    material: Material, seed: int, x: FloatArray, y: FloatArray, footprint: FloatArray
) -> FloatArray:
    """A ground material's colour modulated by its fractal noise at world ``(x, y)``."""
    seeds = np.full(x.shape, seed, dtype=np.uint32)
    noise = fractal_noise(x, y, seeds, np.full_like(x, material.noise_cell), footprint)
    shade = 1.0 + material.noise_amplitude * (2.0 * noise - 1.0)
    result: FloatArray = np.asarray(material.color) * shade[:, None]
    return result


def _paint(base: FloatArray, colour: npt.ArrayLike, amount: FloatArray) -> FloatArray:
    """Blend one fixed colour over per-pixel colours by ``amount``."""
    return mix(base, np.broadcast_to(np.asarray(colour, dtype=np.float64), base.shape), amount)


def _road(
    ground: Ground, x: FloatArray, y: FloatArray, fx: FloatArray, fy: FloatArray
) -> FloatArray:
    """Asphalt with white lane markings (solid or dashed 3 m in 9 m)."""
    colour = _ground_base(ground.road, ground.texture_seed, x, y, _noise_footprint(fx, fy))
    paint = np.zeros_like(x)
    for marking in ground.markings:
        low, high = marking.lateral - marking.half_width, marking.lateral + marking.half_width
        line = band_coverage(y, low, high, fy)
        if marking.dashed:
            line = line * pulse_coverage(x, 9.0, 0.0, 3.0, fx)
        paint = np.maximum(paint, line)
    return _paint(colour, _WHITE_PAINT, paint)


def _sidewalk(
    ground: Ground, x: FloatArray, y: FloatArray, fx: FloatArray, fy: FloatArray
) -> FloatArray:
    """Paving slabs with joints and a lighter curb stone along the road."""
    material = ground.sidewalk
    seed = ground.texture_seed ^ 0x5A5A5A5A
    colour = _ground_base(material, seed, x, y, _noise_footprint(fx, fy))
    joints = np.maximum(
        pulse_coverage(x, material.period_u, 0.0, material.fill_u, fx),
        pulse_coverage(y, material.period_v, 0.0, material.fill_v, fy),
    )
    colour = _paint(colour, material.accent, joints)
    edge = ground.road_half_width
    curb = band_coverage(np.abs(y), edge - 1.0, edge + 0.22, fy)
    return _paint(colour, _CURB, curb)


def _terrain(
    ground: Ground, x: FloatArray, y: FloatArray, fx: FloatArray, fy: FloatArray
) -> FloatArray:
    """Grass and soil mixed by high-contrast noise."""
    material = ground.terrain
    seeds = np.full(x.shape, ground.texture_seed ^ 0x3C3C3C3C, dtype=np.uint32)
    cell = np.full_like(x, material.noise_cell)
    noise = fractal_noise(x, y, seeds, cell, _noise_footprint(fx, fy))
    amount = np.clip((noise - 0.5) * 2.5 + 0.5, 0.0, 1.0)
    grass = np.broadcast_to(np.asarray(material.color), (x.size, 3))
    return _paint(grass, material.accent, amount)


def ground_albedo(
    ground: Ground,
    zones: IntArray,
    x: FloatArray,
    y: FloatArray,
    filter_x: FloatArray,
    filter_y: FloatArray,
) -> FloatArray:
    """Albedo of ground points at world ``(x, y)`` by zone: road, sidewalk or terrain."""
    albedo = np.empty((x.size, 3), dtype=np.float64)
    for zone, painter in ((ROAD_ZONE, _road), (SIDEWALK_ZONE, _sidewalk), (TERRAIN_ZONE, _terrain)):
        mask = zones == zone
        if mask.any():
            albedo[mask] = painter(ground, x[mask], y[mask], filter_x[mask], filter_y[mask])
    result: FloatArray = np.clip(albedo, 0.0, 1.0)
    return result


def sky_color(lighting: Lighting, directions: FloatArray, angular_footprint: float) -> FloatArray:
    """Sky colour of world ray ``directions`` (unit, ``(P, 3)``): blue gradient and soft clouds.

    A pure function of direction, so the sky moves only with the camera's rotation.
    """
    elevation = np.arcsin(np.clip(directions[:, 2], -1.0, 1.0))
    height = np.clip(elevation / 0.6, 0.0, 1.0) ** 0.8
    colour = mix(
        np.broadcast_to(np.asarray(lighting.sky_horizon), directions.shape),
        np.broadcast_to(np.asarray(lighting.sky_zenith), directions.shape),
        height,
    )
    lift = np.maximum(directions[:, 2], 0.0) + 0.15
    cloud_u, cloud_v = directions[:, 0] / lift, directions[:, 1] / lift
    footprint = angular_footprint / lift**2
    seeds = np.full(elevation.shape, lighting.texture_seed, dtype=np.uint32)
    noise = fractal_noise(cloud_u, cloud_v, seeds, np.full_like(cloud_u, 1.2), footprint)
    cover = np.clip((noise - (0.75 - 0.45 * lighting.cloud_cover)) * 4.0, 0.0, 1.0)
    return mix(colour, np.broadcast_to(_CLOUD, colour.shape), cover * 0.85)
