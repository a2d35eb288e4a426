"""A synthetic street as data: boxes with per-frame poses, the ground layout, lighting, camera.

Everything the renderer needs is precomputed here as arrays over frames, so rendering a frame is a
pure function of ``(scene, frame)``: the poses of all boxes (``rotations``/``translations``, world
frame, one box = one rigid part), the camera track, and which boxes make up which thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from vpsbench.synthetic.geometry import pose_matrix, rotation_z
from vpsbench.synthetic.materials import Material, Rgb

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Poses that differ by less than this (metres, or rotation-matrix entries) count as unchanged.
_STILL_TOLERANCE = 1e-9


class ThingKind(StrEnum):
    """What a thing does in the video (decides whether it moves and how)."""

    DRIVING_VEHICLE = "driving_vehicle"
    PARKED_CAR = "parked_car"
    WALKING_PEDESTRIAN = "walking_pedestrian"
    CROSSING_PEDESTRIAN = "crossing_pedestrian"
    STANDING_PERSON = "standing_person"
    RIDER = "rider"
    BICYCLE = "bicycle"


@dataclass(frozen=True)
class Part:
    """One rigid box of an object: name, half extents (metres, local x/y/z) and appearance."""

    name: str
    half_extents: tuple[float, float, float]
    material: Material


@dataclass(frozen=True)
class Primitive:
    """A box of the scene with its label: trainId, owning thing (index, −1 for stuff), part name."""

    part: Part
    semantic: int
    thing: int
    texture_seed: int


@dataclass(frozen=True)
class Thing:
    """A countable object: its track id (unique in the video), trainId, kind and boxes."""

    track_id: int
    semantic: int
    kind: ThingKind
    primitives: tuple[int, ...]


@dataclass(frozen=True)
class LaneMarking:
    """A painted line along the street at lateral position ``lateral`` (metres, y)."""

    lateral: float
    half_width: float
    dashed: bool


@dataclass(frozen=True, eq=False)
class Ground:
    """The ground plane's zones: road, sidewalks, then sidewalk or terrain up to the facades.

    Along each side (0: left, y > 0; 1: right, y < 0) the street is cut into segments starting at
    ``segment_starts[side]`` (sorted x); in segment ``k`` the ground is road for ``|y| <
    road_half_width``, sidewalk up to ``|y| < terrain_from[side][k]`` and terrain beyond.
    """

    road_half_width: float
    sidewalk_outer: float
    segment_starts: tuple[FloatArray, FloatArray]
    terrain_from: tuple[FloatArray, FloatArray]
    markings: tuple[LaneMarking, ...]
    road: Material
    sidewalk: Material
    terrain: Material
    texture_seed: int


@dataclass(frozen=True)
class Lighting:
    """Per-video illumination and camera response: sun, ambient, exposure × white balance, sky."""

    sun_direction: tuple[float, float, float]
    ambient: float
    sun_strength: float
    gain: Rgb
    sky_horizon: Rgb
    sky_zenith: Rgb
    cloud_cover: float
    texture_seed: int


@dataclass(frozen=True, eq=False)
class Scene:
    """A whole video's world: camera track, boxes with per-frame world poses, things, lighting."""

    height: int
    width: int
    intrinsics: FloatArray
    camera_rotations: FloatArray  # (T, 3, 3) camera → world
    camera_positions: FloatArray  # (T, 3)
    primitives: tuple[Primitive, ...]
    rotations: FloatArray  # (T, N, 3, 3) box → world
    translations: FloatArray  # (T, N, 3) box centre in the world
    things: tuple[Thing, ...]
    ground: Ground
    lighting: Lighting

    @property
    def frames(self) -> int:
        """Number of frames of the video."""
        return int(self.camera_positions.shape[0])

    def camera_to_world(self, frame: int) -> FloatArray:
        """The 4×4 camera-to-world pose at ``frame``."""
        return pose_matrix(self.camera_rotations[frame], self.camera_positions[frame])

    def moving_things(self, frame: int) -> BoolArray:
        """Per thing: does any of its boxes change world pose between ``frame`` and the next?

        The last frame compares with the previous one; a one-frame video has nothing moving.
        """
        if self.frames < 2:
            return np.zeros(len(self.things), dtype=bool)
        first = min(frame, self.frames - 2)
        moved_rotation = np.abs(self.rotations[first + 1] - self.rotations[first]).max(axis=(1, 2))
        moved_centre = np.abs(self.translations[first + 1] - self.translations[first]).max(axis=1)
        box_moves = np.maximum(moved_rotation, moved_centre) > _STILL_TOLERANCE
        return np.array([bool(box_moves[list(thing.primitives)].any()) for thing in self.things])


@dataclass(frozen=True, eq=False)
class Footprint:
    """Where an object stands on the ground over time: centres ``(T or 1, 2)`` and half sizes."""

    centres: FloatArray
    half_size: tuple[float, float]

    def overlaps(self, other: Footprint, margin: tuple[float, float]) -> bool:
        """True when the two ground rectangles come within ``margin`` (along x, y) at any frame."""
        gap = np.abs(self.centres - other.centres)
        limit_x = self.half_size[0] + other.half_size[0] + margin[0]
        limit_y = self.half_size[1] + other.half_size[1] + margin[1]
        return bool(np.any((gap[:, 0] < limit_x) & (gap[:, 1] < limit_y)))


@dataclass
class SceneBuilder:
    """Collects boxes and things while a scene is drawn, then freezes them into a :class:`Scene`."""

    frames: int
    rng: np.random.Generator
    primitives: list[Primitive] = field(default_factory=list)
    things: list[Thing] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    _rotations: list[FloatArray] = field(default_factory=list)
    _translations: list[FloatArray] = field(default_factory=list)

    def _texture_seed(self) -> int:
        """A fresh seed for one box's texture noise."""
        return int(self.rng.integers(1, 2**32 - 1))

    def is_free(self, footprint: Footprint, margin: tuple[float, float]) -> bool:
        """Whether ``footprint`` stays clear of every footprint claimed so far."""
        return not any(footprint.overlaps(other, margin) for other in self.footprints)

    def add_static_box(
        self,
        centre: Sequence[float],
        part: Part,
        semantic: int,
        yaw: float = 0.0,
        thing: int = -1,
    ) -> None:
        """Add a box that never moves (stuff, or a part of a static thing)."""
        self.primitives.append(Primitive(part, semantic, thing, self._texture_seed()))
        self._rotations.append(rotation_z(yaw)[None])
        self._translations.append(np.asarray(centre, dtype=np.float64)[None])

    def add_thing(
        self,
        semantic: int,
        kind: ThingKind,
        parts: Sequence[Part],
        rotations: FloatArray,
        translations: FloatArray,
    ) -> Thing:
        """Add a thing made of ``parts`` with world poses ``(T|1, P, 3, 3)`` and ``(T|1, P, 3)``."""
        thing_index = len(self.things)
        first = len(self.primitives)
        for index, part in enumerate(parts):
            self.primitives.append(Primitive(part, semantic, thing_index, self._texture_seed()))
            self._rotations.append(rotations[:, index])
            self._translations.append(translations[:, index])
        thing = Thing(
            track_id=thing_index + 1,
            semantic=semantic,
            kind=kind,
            primitives=tuple(range(first, len(self.primitives))),
        )
        self.things.append(thing)
        return thing

    def build(
        self,
        height: int,
        width: int,
        intrinsics: FloatArray,
        camera_rotations: FloatArray,
        camera_positions: FloatArray,
        ground: Ground,
        lighting: Lighting,
    ) -> Scene:
        """Freeze everything added so far, broadcasting static poses over all frames."""
        count = len(self.primitives)
        rotations = np.empty((self.frames, count, 3, 3), dtype=np.float64)
        translations = np.empty((self.frames, count, 3), dtype=np.float64)
        for index, (rotation, translation) in enumerate(
            zip(self._rotations, self._translations, strict=True)
        ):
            rotations[:, index] = rotation
            translations[:, index] = translation
        return Scene(
            height=height,
            width=width,
            intrinsics=intrinsics,
            camera_rotations=camera_rotations,
            camera_positions=camera_positions,
            primitives=tuple(self.primitives),
            rotations=rotations,
            translations=translations,
            things=tuple(self.things),
            ground=ground,
            lighting=lighting,
        )
