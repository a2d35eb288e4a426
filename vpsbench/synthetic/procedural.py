"""Draw one video's scene from its seed: camera track, street, traffic, people, lighting.

Every random choice comes from :func:`~vpsbench.synthetic.config.scene_rng`, in a fixed order
that does not depend on the image size, so the same (seed, split, video) always gives the same
world; only the intrinsics follow the requested resolution. Moving things are placed by rejection
sampling against everything placed before (their ground rectangles over all frames), so cars do
not drive through each other, the ego car or parked cars, and people do not walk through poles.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt

from vpsbench.synthetic.actors import (
    Model,
    Path,
    bicycle_model,
    bus_model,
    car_model,
    crank_angles,
    cycling_figure,
    gait,
    place_on_path,
    random_figure,
    straight_path,
    truck_model,
    walking_figure,
)
from vpsbench.synthetic.config import FPS, SyntheticConfig, scene_rng
from vpsbench.synthetic.geometry import camera_rotation, intrinsics_for
from vpsbench.synthetic.materials import jitter
from vpsbench.synthetic.scene import Footprint, Lighting, Scene, SceneBuilder, ThingKind
from vpsbench.synthetic.street import StreetLayout, build_street, random_layout

FloatArray = npt.NDArray[np.float64]

PERSON, RIDER, CAR, TRUCK, BUS, BICYCLE = 11, 12, 13, 14, 15, 18
#: How far ahead of the camera things are placed (metres); beyond, they are too small to matter.
_AHEAD = 110.0
_PLACEMENT_ATTEMPTS = 25
_PERSON_HALF = (0.35, 0.35)


class _Traffic:
    """Places things into a scene builder, each on a collision-free path."""

    def __init__(
        self, builder: SceneBuilder, layout: StreetLayout, times: FloatArray, camera_x: FloatArray
    ) -> None:
        self.builder = builder
        self.rng = builder.rng
        self.layout = layout
        self.times = times
        self.camera_x = camera_x
        self.middle = len(times) // 2

    def _try(self, attempt: Callable[[], bool]) -> bool:
        """Call ``attempt`` until it places its thing, at most a fixed number of times."""
        return any(attempt() for _ in range(_PLACEMENT_ATTEMPTS))

    def _path_through(
        self, target: tuple[float, float], heading: float, speed: float, wobble: float = 0.0
    ) -> Path:
        """A straight path that passes ``target`` (x, y) at the middle frame."""
        rng = self.rng
        period, phase = rng.uniform(3.0, 8.0), rng.uniform(0.0, 2 * np.pi)
        probe = straight_path(self.times, (0.0, 0.0), heading, speed, wobble, period, phase)
        offset = probe.positions[self.middle, :2]
        start = (target[0] - float(offset[0]), target[1] - float(offset[1]))
        return straight_path(self.times, start, heading, speed, wobble, period, phase)

    def _claim_path(
        self, path: Path, half: tuple[float, float], margin: tuple[float, float]
    ) -> bool:
        """Reserve the ground a thing covers along ``path`` if it is free."""
        footprint = Footprint(path.positions[:, :2].copy(), half)
        if not self.builder.is_free(footprint, margin):
            return False
        self.builder.footprints.append(footprint)
        return True

    def _add(self, semantic: int, kind: ThingKind, model: Model, path: Path) -> None:
        """Add a model carried along a path as one thing."""
        rotations, translations = place_on_path(model, path)
        self.builder.add_thing(semantic, kind, model.parts, rotations, translations)

    def parked_car(self, x: float, side: float) -> bool:
        """Park a car parallel to the curb around ``x`` on ``side``."""
        rng = self.rng
        model, length, width = car_model(rng)
        heading = (0.0 if side < 0 else np.pi) + rng.uniform(-0.03, 0.03)
        lateral = self.layout.parking_centre(side) + rng.uniform(-0.15, 0.15)
        path = straight_path(self.times[:1], (x, lateral), heading, 0.0)
        if not self._claim_path(path, (length / 2, width / 2), (0.6, 0.3)):
            return False
        self._add(CAR, ThingKind.PARKED_CAR, model, path)
        return True

    def parked_cars(self) -> None:
        """One parked car close ahead on the right, then random cars along both parking strips."""
        rng = self.rng
        ahead = self.camera_x[self.middle]
        self._try(lambda: self.parked_car(ahead + rng.uniform(8.0, 25.0), -1.0))
        for side in (1.0, -1.0):
            x = float(self.camera_x[0]) - 15.0 + rng.uniform(0.0, 6.0)
            while x < self.camera_x[-1] + _AHEAD:
                if rng.random() < 0.55:
                    self.parked_car(x, side)
                x += rng.uniform(5.5, 11.0)

    def vehicle(self, ahead: tuple[float, float]) -> bool:
        """A car, truck or bus driving in a random lane, ``ahead`` metres in front at mid-video."""
        rng = self.rng
        draw = rng.random()
        if draw < 0.7:
            (model, length, width), semantic, top_speed = car_model(rng), CAR, 14.0
        elif draw < 0.85:
            (model, length, width), semantic, top_speed = truck_model(rng), TRUCK, 11.0
        else:
            (model, length, width), semantic, top_speed = bus_model(rng), BUS, 10.0
        side = -1.0 if rng.random() < 0.55 else 1.0
        lane = int(rng.integers(self.layout.lanes_per_direction))
        lateral = self.layout.lane_centre(lane, side) + rng.uniform(-0.25, 0.25)
        heading = 0.0 if side < 0 else np.pi
        speed = rng.uniform(4.0, top_speed)
        wobble = rng.uniform(0.0, min(2.0, speed - 2.0))
        x = float(self.camera_x[self.middle]) + rng.uniform(*ahead)
        path = self._path_through((x, lateral), heading, speed, wobble)
        if not self._claim_path(path, (length / 2, width / 2), (4.0, 0.3)):
            return False
        self._add(semantic, ThingKind.DRIVING_VEHICLE, model, path)
        return True

    def walker(self, target: tuple[float, float], heading: float, kind: ThingKind) -> bool:
        """A person walking through ``target`` at mid-video with the given heading."""
        rng = self.rng
        figure = random_figure(rng)
        speed = rng.uniform(0.9, 1.7)
        path = self._path_through(target, heading, speed)
        if not self._claim_path(path, _PERSON_HALF, (0.2, 0.2)):
            return False
        phases, swing = gait(path.distances, figure.height, speed, rng.uniform(0, 2 * np.pi))
        self._add(PERSON, kind, walking_figure(figure, phases, swing), path)
        return True

    def sidewalk_lateral(self, side: float) -> float:
        """A random lateral position on the walking band of the sidewalk on ``side``."""
        inner = self.layout.road_half_width + 0.9
        outer = self.layout.sidewalk_outer - 0.5
        return side * self.rng.uniform(inner, max(inner, outer))

    def sidewalk_walker(self, ahead: tuple[float, float], side: float) -> bool:
        """A pedestrian walking along the sidewalk on ``side``, ``ahead`` metres ahead mid-video."""
        rng = self.rng
        x = float(self.camera_x[self.middle]) + rng.uniform(*ahead)
        heading = 0.0 if rng.random() < 0.5 else np.pi
        return self.walker((x, self.sidewalk_lateral(side)), heading, ThingKind.WALKING_PEDESTRIAN)

    def crossing_walker(self) -> bool:
        """A pedestrian crossing the road ahead, somewhere on the road at mid-video."""
        rng = self.rng
        x = float(self.camera_x[self.middle]) + rng.uniform(12.0, 50.0)
        lateral = rng.uniform(-self.layout.road_half_width, self.layout.road_half_width)
        heading = np.pi / 2 if rng.random() < 0.5 else -np.pi / 2
        return self.walker((x, lateral), heading, ThingKind.CROSSING_PEDESTRIAN)

    def standing_person(self) -> bool:
        """A person standing still on a sidewalk, facing a random direction."""
        rng = self.rng
        figure = random_figure(rng)
        side = 1.0 if rng.random() < 0.5 else -1.0
        x = float(self.camera_x[self.middle]) + rng.uniform(-5.0, 70.0)
        lateral = side * (
            self.layout.road_half_width + rng.uniform(0.4, self.layout.sidewalk - 0.4)
        )
        path = straight_path(self.times[:1], (x, lateral), rng.uniform(-np.pi, np.pi), 0.0)
        if not self._claim_path(path, _PERSON_HALF, (0.2, 0.2)):
            return False
        stance = np.array([rng.uniform(0.0, 2 * np.pi)])
        model = walking_figure(figure, stance, rng.uniform(0.0, 0.15))
        self._add(PERSON, ThingKind.STANDING_PERSON, model, path)
        return True

    def cyclist(self) -> bool:
        """A rider on a bicycle along the bike lane (or the outer lane's edge): two things."""
        rng = self.rng
        side = -1.0 if rng.random() < 0.6 else 1.0
        heading = 0.0 if side < 0 else np.pi
        speed = rng.uniform(3.0, 6.5)
        x = float(self.camera_x[self.middle]) + rng.uniform(5.0, 70.0)
        lateral = self.layout.cycling_line(side) + rng.uniform(-0.2, 0.2)
        path = self._path_through((x, lateral), heading, speed, rng.uniform(0.0, 0.8))
        if not self._claim_path(path, (0.95, 0.4), (1.0, 0.3)):
            return False
        figure = random_figure(rng)
        cranks = crank_angles(path.distances, rng.uniform(0, 2 * np.pi))
        self._add(RIDER, ThingKind.RIDER, cycling_figure(figure, cranks), path)
        self._add(BICYCLE, ThingKind.BICYCLE, bicycle_model(rng, figure, path.distances), path)
        return True

    def populate(self) -> None:
        """All things of the video; a close walker, parked car and vehicle are always attempted."""
        rng = self.rng
        self.parked_cars()
        self._try(lambda: self.vehicle((12.0, 40.0)))
        for _ in range(int(rng.integers(2, 7))):
            self._try(lambda: self.vehicle((-10.0, _AHEAD)))
        self._try(lambda: self.sidewalk_walker((8.0, 22.0), -1.0))
        for _ in range(int(rng.integers(2, 9))):
            side = 1.0 if rng.random() < 0.5 else -1.0
            self._try(partial(self.sidewalk_walker, (-5.0, 90.0), side))
        for _ in range(int(rng.integers(0, 3))):
            self._try(self.crossing_walker)
        for _ in range(int(rng.integers(0, 3))):
            self._try(self.cyclist)
        for _ in range(int(rng.integers(1, 5))):
            self._try(self.standing_person)


def _camera_track(
    rng: np.random.Generator, layout: StreetLayout, times: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Ego camera rotations and positions: straight down a lane, slight yaw wobble, fixed pitch."""
    draw = rng.random()
    if draw < 0.08:
        speed = 0.0
    elif draw < 0.2:
        speed = rng.uniform(0.5, 4.0)
    else:
        speed = rng.uniform(5.0, 12.0)
    lane = int(rng.integers(layout.lanes_per_direction))
    lateral = layout.lane_centre(lane, -1.0) + rng.uniform(-0.2, 0.2)
    height = rng.uniform(1.5, 1.75)
    yaw = rng.uniform(-0.015, 0.015) + rng.uniform(0.0, 0.01) * np.sin(
        2 * np.pi * times / rng.uniform(3.0, 8.0) + rng.uniform(0, 2 * np.pi)
    )
    pitch = np.full_like(times, rng.uniform(-0.02, 0.02))
    positions = np.zeros((times.size, 3), dtype=np.float64)
    positions[:, 0] = speed * times
    positions[:, 1] = lateral
    positions[:, 2] = height
    return camera_rotation(yaw, pitch), positions


def _lighting(rng: np.random.Generator) -> Lighting:
    """Sun direction and strength, ambient light, exposure × white balance, sky colours."""
    elevation = rng.uniform(0.35, 1.1)
    azimuth = rng.uniform(0.0, 2 * np.pi)
    sun = (
        float(np.cos(elevation) * np.cos(azimuth)),
        float(np.cos(elevation) * np.sin(azimuth)),
        float(np.sin(elevation)),
    )
    exposure = rng.uniform(0.85, 1.15)
    balance = 1.0 + rng.uniform(-0.05, 0.05, 3)
    gain = exposure * balance
    return Lighting(
        sun_direction=sun,
        ambient=float(rng.uniform(0.35, 0.55)),
        sun_strength=float(rng.uniform(0.5, 0.85)),
        gain=(float(gain[0]), float(gain[1]), float(gain[2])),
        sky_horizon=jitter(rng, (0.80, 0.85, 0.90), 0.04),
        sky_zenith=jitter(rng, (0.35, 0.55, 0.85), 0.06),
        cloud_cover=float(rng.uniform(0.0, 0.6)),
        texture_seed=int(rng.integers(1, 2**32 - 1)),
    )


def generate_scene(config: SyntheticConfig, split: str, video: int) -> Scene:
    """The scene of video ``video`` of ``split``: a pure function of the config's seed."""
    rng = scene_rng(config, split, video)
    times = np.arange(config.frames, dtype=np.float64) / FPS
    layout = random_layout(rng)
    camera_rotations, camera_positions = _camera_track(rng, layout, times)
    builder = SceneBuilder(config.frames, rng)
    ego = camera_positions[:, :2].copy()
    ego[:, 0] -= 1.0
    builder.footprints.append(Footprint(ego, (2.4, 1.0)))
    x_end = float(camera_positions[-1, 0]) + 240.0
    ground = build_street(builder, layout, -45.0, x_end)
    _Traffic(builder, layout, times, camera_positions[:, 0]).populate()
    lighting = _lighting(rng)
    return builder.build(
        height=config.height,
        width=config.width,
        intrinsics=intrinsics_for(config.height, config.width),
        camera_rotations=camera_rotations,
        camera_positions=camera_positions,
        ground=ground,
        lighting=lighting,
    )
