"""Ray casting of a scene: z-buffered box/ground hits, labels, shading, depth, flow, motion mask.

One ray per pixel centre. The ground plane is intersected analytically for all pixels; each box is
intersected (slab test, float32) only for the pixels inside its projected bounding rectangle, and
the nearest hit wins. Everything else is computed from the winning hit: the surface point in the
local frame of the box it lies on gives the texture, and moving that point with the box's pose at
t ± 1 and projecting it into the camera at t ± 1 gives the exact optical flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.synthetic.appearance import (
    ROAD_ZONE,
    SIDEWALK_ZONE,
    FaceSamples,
    MaterialTable,
    box_albedo,
    ground_albedo,
    ground_zones,
    material_table,
    sky_color,
)
from vpsbench.synthetic.config import SyntheticConfig, sensor_noise_rng
from vpsbench.synthetic.geometry import (
    NEAR_PLANE,
    box_corners,
    intersect_box,
    inverse_transform_points,
    pixel_rays,
    project,
    transform_points,
)
from vpsbench.synthetic.procedural import generate_scene
from vpsbench.synthetic.scene import Scene

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]

SKY = -1
ROAD, SIDEWALK, TERRAIN, SKY_CLASS = 0, 1, 9, 10
#: Things with fewer visible pixels than this in a frame are labelled crowd (instance 0) there.
CROWD_MAX_PIXELS = 20
SENSOR_NOISE_SIGMA = 2.0  # grey levels of 255
_GAMMA = 2.2


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """Everything rendered for one frame; all labels and cues are exact (see the module doc)."""

    image: npt.NDArray[np.uint8]
    semantic: Int32Array
    instance: Int32Array
    depth: Float32Array
    flow_forward: Float32Array | None
    flow_backward: Float32Array | None
    moving: BoolArray
    intrinsics: FloatArray
    camera_to_world: FloatArray


@dataclass(frozen=True, eq=False)
class Hits:
    """The z-buffer of one frame: nearest primitive per pixel (−1 sky, N ground) and its depth."""

    primitive: Int32Array
    depth: Float32Array


@dataclass(frozen=True, eq=False)
class SceneTables:
    """Per-scene constants reused by every frame: rays, box sizes, labels and materials."""

    rays: FloatArray  # (H, W, 3) camera-frame directions with z = 1
    rays_x: Float32Array  # (H, W) x of ``rays`` in float32, for the intersection tests
    rays_y: Float32Array  # (H, W) y of ``rays`` in float32
    half_extents: FloatArray  # (N, 3)
    semantic: Int32Array  # (N,)
    track: Int32Array  # (N,) track id of the owning thing, 0 for stuff
    thing: IntArray  # (N + 1,) index of the owning thing, −1 for stuff and the ground (row N)
    materials: MaterialTable


def scene_tables(scene: Scene) -> SceneTables:
    """Precompute the per-scene arrays the renderer gathers from."""
    rays = pixel_rays(scene.intrinsics, scene.height, scene.width)
    primitives = scene.primitives
    thing = np.array([primitive.thing for primitive in primitives] + [-1], dtype=np.int64)
    tracks = np.array([t.track_id for t in scene.things] + [0], dtype=np.int32)
    sizes = np.array([p.part.half_extents for p in primitives], dtype=np.float64).reshape(-1, 3)
    return SceneTables(
        rays=rays,
        rays_x=rays[..., 0].astype(np.float32),
        rays_y=rays[..., 1].astype(np.float32),
        half_extents=sizes,
        semantic=np.array([p.semantic for p in primitives], dtype=np.int32),
        track=tracks[thing[:-1]],
        thing=thing,
        materials=material_table(scene),
    )


def camera_frame_poses(scene: Scene, frame: int) -> tuple[FloatArray, FloatArray]:
    """Poses of all boxes, plus the ground's (last row, = world frame), in camera ``frame``."""
    rotation = scene.camera_rotations[frame]
    position = scene.camera_positions[frame]
    count = len(scene.primitives)
    rotations = np.empty((count + 1, 3, 3), dtype=np.float64)
    translations = np.empty((count + 1, 3), dtype=np.float64)
    rotations[:count] = np.einsum("ji,njk->nik", rotation, scene.rotations[frame])
    translations[:count] = np.einsum("ji,nj->ni", rotation, scene.translations[frame] - position)
    rotations[count] = rotation.T
    translations[count] = -(rotation.T @ position)
    return rotations, translations


def _screen_rectangles(
    scene: Scene, half_extents: FloatArray, rotations: FloatArray, translations: FloatArray
) -> npt.NDArray[np.int64]:
    """Pixel bounding rectangles ``(row0, row1, col0, col1)`` of all boxes (empty when unseen)."""
    corners = (
        np.einsum("nij,nkj->nki", rotations, box_corners(half_extents)) + translations[:, None]
    )
    depth = corners[..., 2]
    in_front = depth.min(axis=1) > NEAR_PLANE
    visible = depth.max(axis=1) > NEAR_PLANE
    safe = np.where(depth > NEAR_PLANE, depth, 1.0)
    k = scene.intrinsics
    cols = k[0, 0] * corners[..., 0] / safe + k[0, 2]
    rows = k[1, 1] * corners[..., 1] / safe + k[1, 2]
    rectangles = np.zeros((len(half_extents), 4), dtype=np.int64)
    col0 = np.floor(cols.min(axis=1)).clip(0, scene.width)
    col1 = (np.ceil(cols.max(axis=1)) + 1).clip(0, scene.width)
    row0 = np.floor(rows.min(axis=1)).clip(0, scene.height)
    row1 = (np.ceil(rows.max(axis=1)) + 1).clip(0, scene.height)
    rectangles[:, 0] = np.where(in_front, row0, 0)
    rectangles[:, 1] = np.where(in_front, row1, scene.height)
    rectangles[:, 2] = np.where(in_front, col0, 0)
    rectangles[:, 3] = np.where(in_front, col1, scene.width)
    rectangles[~visible] = 0
    return rectangles


def _dot(vectors: FloatArray, direction: FloatArray) -> FloatArray:
    """Dot products of vectors ``(..., 3)`` with one direction ``(3,)`` (elementwise, no BLAS)."""
    result: FloatArray = (
        vectors[..., 0] * direction[0]
        + vectors[..., 1] * direction[1]
        + vectors[..., 2] * direction[2]
    )
    return result


def _rotate(rotation: FloatArray, vectors: FloatArray) -> FloatArray:
    """``rotation @ v`` for one rotation and many vectors ``(..., 3)`` (elementwise, no BLAS)."""
    return transform_points(rotation, np.zeros(3), vectors)


def trace(scene: Scene, tables: SceneTables, frame: int) -> Hits:
    """Cast all pixel rays of ``frame``: nearest primitive and its depth per pixel."""
    rotations, translations = camera_frame_poses(scene, frame)
    count = len(scene.primitives)
    # Ground plane z = 0: its normal and the camera's height, in the camera frame.
    up = rotations[count][:, 2]
    camera_height = -float(translations[count] @ up)
    facing = _dot(tables.rays, up)
    with np.errstate(divide="ignore"):
        ground_depth = np.where(facing < 0, -camera_height / facing, np.inf)
    depth = ground_depth.astype(np.float32)
    primitive = np.where(np.isfinite(depth), count, SKY).astype(np.int32)
    rectangles = _screen_rectangles(
        scene, tables.half_extents, rotations[:count], translations[:count]
    )
    seen = (rectangles[:, 1] > rectangles[:, 0]) & (rectangles[:, 3] > rectangles[:, 2])
    origins = -np.einsum("nji,nj->ni", rotations[:count], translations[:count])
    for index in np.flatnonzero(seen):
        row0, row1, col0, col1 = rectangles[index]
        hit_depth = intersect_box(
            origins[index].astype(np.float32),
            rotations[index].astype(np.float32),
            tables.half_extents[index].astype(np.float32),
            tables.rays_x[row0:row1, col0:col1],
            tables.rays_y[row0:row1, col0:col1],
        )
        window = depth[row0:row1, col0:col1]
        nearer = hit_depth < window
        window[nearer] = hit_depth[nearer]
        primitive[row0:row1, col0:col1][nearer] = index
    return Hits(primitive, depth)


@dataclass(frozen=True, eq=False)
class _Surface:
    """The visible surface points of one frame (non-sky pixels, flattened)."""

    pixels: BoolArray  # (H, W) which pixels are surface (not sky)
    primitive: IntArray  # (P,)
    camera_points: FloatArray  # (P, 3) in the camera frame
    local_points: FloatArray  # (P, 3) in the primitive's frame (world frame for the ground)


def _surface(
    hits: Hits, tables: SceneTables, rotations: FloatArray, translations: FloatArray
) -> _Surface:
    """Reconstruct the 3-D hit point of every non-sky pixel, in camera and primitive frames."""
    pixels = hits.primitive >= 0
    primitive = hits.primitive[pixels].astype(np.int64)
    camera_points = tables.rays[pixels] * hits.depth[pixels].astype(np.float64)[:, None]
    local_points = inverse_transform_points(
        rotations[primitive], translations[primitive], camera_points
    )
    return _Surface(pixels, primitive, camera_points, local_points)


def _flow(
    scene: Scene,
    tables: SceneTables,
    surface: _Surface,
    frame: int,
    target: int,
) -> Float32Array:
    """Exact flow from ``frame`` to ``target``: move each seen point with its primitive, project."""
    rotations, translations = camera_frame_poses(scene, target)
    height, width = scene.height, scene.width
    grid_rows, grid_cols = np.mgrid[0:height, 0:width].astype(np.float64)
    destination = np.empty((height, width, 2), dtype=np.float64)
    moved = transform_points(
        rotations[surface.primitive], translations[surface.primitive], surface.local_points
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        projected = project(scene.intrinsics, moved)
    projected[moved[:, 2] <= NEAR_PLANE] = np.nan
    destination[surface.pixels] = projected
    sky = ~surface.pixels
    if sky.any():
        turn = scene.camera_rotations[target].T @ scene.camera_rotations[frame]
        directions = _rotate(turn, tables.rays[sky])
        with np.errstate(divide="ignore", invalid="ignore"):
            sky_projected = project(scene.intrinsics, directions)
        sky_projected[directions[:, 2] <= 0] = np.nan
        destination[sky] = sky_projected
    destination[..., 0] -= grid_cols
    destination[..., 1] -= grid_rows
    return destination.astype(np.float32)


def _face_samples(
    scene: Scene,
    tables: SceneTables,
    surface: _Surface,
    rotations: FloatArray,
    boxes: BoolArray,
) -> tuple[FaceSamples, FloatArray]:
    """Face, face coordinates and pixel footprints of every surface point; and camera normals.

    ``boxes`` marks the points on boxes; the others are on the ground (face = world z, with
    ``u, v`` = world ``x, y``). Footprints come from the exact derivative of the surface point
    with respect to the pixel coordinates on the face's plane.
    """
    count = surface.primitive.size
    local = surface.local_points
    primitive = surface.primitive
    half = np.zeros((count, 3), dtype=np.float64)
    half[boxes] = tables.half_extents[primitive[boxes]]
    axis = np.full(count, 2, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        axis[boxes] = np.argmax(np.abs(local[boxes]) / half[boxes], axis=1)
    normal_coordinate = np.take_along_axis(local, axis[:, None], axis=1)[:, 0]
    sign = np.where(boxes & (normal_coordinate < 0), -1.0, 1.0)
    u_axis = np.array([1, 0, 0])[axis]
    v_axis = np.array([2, 2, 1])[axis]
    u = np.take_along_axis(local + half, u_axis[:, None], axis=1)[:, 0]
    v = np.take_along_axis(local + half, v_axis[:, None], axis=1)[:, 0]
    extent_u = 2.0 * np.take_along_axis(half, u_axis[:, None], axis=1)[:, 0]
    extent_v = 2.0 * np.take_along_axis(half, v_axis[:, None], axis=1)[:, 0]
    # Camera-frame directions of every primitive's local axes: columns[n, a] = R_n[:, a].
    columns = rotations.transpose(0, 2, 1)
    normal = columns[primitive, axis] * sign[:, None]
    along_u = columns[primitive, u_axis]
    along_v = columns[primitive, v_axis]
    k = scene.intrinsics
    depth = surface.camera_points[:, 2]
    rays = surface.camera_points / depth[:, None]
    facing = np.einsum("pi,pi->p", normal, rays)
    facing = np.where(np.abs(facing) < 1e-4, -1e-4, facing)
    # d(point)/d(pixel) on the face plane: depth * (dray - ray * (n . dray) / (n . ray)).
    slope_u = normal[:, 0] / (k[0, 0] * facing)
    slope_v = normal[:, 1] / (k[1, 1] * facing)
    ray_u = np.einsum("pi,pi->p", along_u, rays)
    ray_v = np.einsum("pi,pi->p", along_v, rays)
    filter_u = depth * (
        np.abs(along_u[:, 0] / k[0, 0] - ray_u * slope_u)
        + np.abs(along_u[:, 1] / k[1, 1] - ray_u * slope_v)
    )
    filter_v = depth * (
        np.abs(along_v[:, 0] / k[0, 0] - ray_v * slope_u)
        + np.abs(along_v[:, 1] / k[1, 1] - ray_v * slope_v)
    )
    samples = FaceSamples(
        box=primitive,
        axis=axis,
        sign=sign,
        u=u,
        v=v,
        extent_u=extent_u,
        extent_v=extent_v,
        filter_u=np.minimum(filter_u, 1e3),
        filter_v=np.minimum(filter_v, 1e3),
    )
    return samples, normal


def _shade(
    scene: Scene,
    tables: SceneTables,
    surface: _Surface,
    frame: int,
    rotations: FloatArray,
    ground: tuple[FloatArray, IntArray],
) -> FloatArray:
    """Linear RGB of every pixel: Lambertian surfaces under the sun and ambient light, and sky.

    ``ground`` holds the world points and zones of the surface points on the ground.
    """
    boxes = surface.primitive < len(scene.primitives)
    samples, normal = _face_samples(scene, tables, surface, rotations, boxes)
    albedo = np.empty((surface.primitive.size, 3), dtype=np.float64)
    if boxes.any():
        albedo[boxes] = box_albedo(samples.subset(boxes), tables.materials)
    world, zones = ground
    if world.size:
        on_ground = ~boxes
        albedo[on_ground] = ground_albedo(
            scene.ground,
            zones,
            world[:, 0],
            world[:, 1],
            samples.filter_u[on_ground],
            samples.filter_v[on_ground],
        )
    lighting = scene.lighting
    world_normal = _rotate(scene.camera_rotations[frame], normal)
    sunlit = np.clip(_dot(world_normal, np.asarray(lighting.sun_direction)), 0.0, None)
    irradiance = lighting.ambient + lighting.sun_strength * sunlit
    linear = np.empty((scene.height, scene.width, 3), dtype=np.float64)
    linear[surface.pixels] = albedo**_GAMMA * irradiance[:, None]
    sky = ~surface.pixels
    if sky.any():
        directions = _rotate(scene.camera_rotations[frame], tables.rays[sky])
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        colour = sky_color(lighting, directions, 1.0 / float(scene.intrinsics[0, 0]))
        linear[sky] = colour**_GAMMA
    return linear


def _labels(
    scene: Scene, tables: SceneTables, surface: _Surface, zones: IntArray, boxes: BoolArray
) -> tuple[Int32Array, Int32Array]:
    """Semantic trainIds and instance ids; things under ``CROWD_MAX_PIXELS`` become crowd."""
    shape = surface.pixels.shape
    semantic = np.full(shape, SKY_CLASS, dtype=np.int32)
    instance = np.zeros(shape, dtype=np.int32)
    visible_semantic = np.empty(surface.primitive.size, dtype=np.int32)
    visible_instance = np.zeros(surface.primitive.size, dtype=np.int32)
    visible_semantic[boxes] = tables.semantic[surface.primitive[boxes]]
    visible_instance[boxes] = tables.track[surface.primitive[boxes]]
    visible_semantic[~boxes] = np.select(
        [zones == ROAD_ZONE, zones == SIDEWALK_ZONE], [ROAD, SIDEWALK], TERRAIN
    )
    sizes = np.bincount(visible_instance, minlength=len(scene.things) + 1)
    crowd = sizes < CROWD_MAX_PIXELS
    crowd[0] = False
    visible_instance[crowd[visible_instance]] = 0
    semantic[surface.pixels] = visible_semantic
    instance[surface.pixels] = visible_instance
    return semantic, instance


def _to_image(
    scene: Scene, linear: FloatArray, noise: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """Exposure and white balance, display gamma, sensor noise, 8-bit quantisation."""
    exposed = np.clip(linear * np.asarray(scene.lighting.gain), 0.0, 1.0)
    display = exposed ** (1.0 / _GAMMA) * 255.0
    display += noise.normal(0.0, SENSOR_NOISE_SIGMA, display.shape)
    image: npt.NDArray[np.uint8] = np.clip(np.rint(display), 0, 255).astype(np.uint8)
    return image


def render_frame(
    scene: Scene, tables: SceneTables, frame: int, noise: np.random.Generator
) -> RenderedFrame:
    """Render image, labels and exact cues of one frame (``noise`` draws the sensor noise)."""
    hits = trace(scene, tables, frame)
    rotations, translations = camera_frame_poses(scene, frame)
    surface = _surface(hits, tables, rotations, translations)
    boxes = surface.primitive < len(scene.primitives)
    ground_points = transform_points(
        scene.camera_rotations[frame], scene.camera_positions[frame], surface.camera_points[~boxes]
    )
    zones = ground_zones(scene.ground, ground_points[:, 0], ground_points[:, 1])
    linear = _shade(scene, tables, surface, frame, rotations, (ground_points, zones))
    semantic, instance = _labels(scene, tables, surface, zones, boxes)
    moving_things = np.append(scene.moving_things(frame), False)
    moving = np.zeros(hits.primitive.shape, dtype=bool)
    moving[surface.pixels] = moving_things[tables.thing[surface.primitive]]
    last = scene.frames - 1
    return RenderedFrame(
        image=_to_image(scene, linear, noise),
        semantic=semantic,
        instance=instance,
        depth=hits.depth,
        flow_forward=_flow(scene, tables, surface, frame, frame + 1) if frame < last else None,
        flow_backward=_flow(scene, tables, surface, frame, frame - 1) if frame > 0 else None,
        moving=moving,
        intrinsics=scene.intrinsics.copy(),
        camera_to_world=scene.camera_to_world(frame),
    )


def render_video(config: SyntheticConfig, split: str, video: int) -> Iterator[RenderedFrame]:
    """Render all frames of one video; same inputs give bit-identical arrays."""
    scene = generate_scene(config, split, video)
    tables = scene_tables(scene)
    for frame in range(scene.frames):
        yield render_frame(scene, tables, frame, sensor_noise_rng(config, split, video, frame))
