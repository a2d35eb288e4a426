"""The things of a street as boxes in their own frame: vehicles, walking people, cyclists.

Local frames: ``x`` forward (direction of travel), ``y`` left, ``z`` up, origin on the ground under
the object's centre. Rigid models return constant part poses; people and bicycles return poses per
frame, driven by the distance travelled (gait phase, pedal crank, wheel spin), so they move
non-rigidly. :func:`place_on_path` puts local poses into the world along a :class:`Path`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vpsbench.synthetic.geometry import rotation_y, rotation_z, segment_pose, transform_points
from vpsbench.synthetic.materials import (
    CAR_COLORS,
    GLASS_COLORS,
    SHIRT_COLORS,
    SKIN_COLORS,
    TROUSER_COLORS,
    Material,
    Pattern,
    jitter,
    pick,
)
from vpsbench.synthetic.scene import Part

FloatArray = npt.NDArray[np.float64]

_HEADLIGHT = (1.0, 0.95, 0.80)
_TYRE = (0.10, 0.10, 0.11)
_HUB = (0.70, 0.70, 0.72)
_FRAME_COLORS = ((0.80, 0.10, 0.10), (0.10, 0.10, 0.12), (0.15, 0.35, 0.75), (0.85, 0.85, 0.85))
_CRANK_RADIUS = 0.17
_CRANK_HEIGHT = 0.30
_WHEEL_RADIUS = 0.34
_SADDLE_X = -0.22
_HANDLEBAR_X = 0.48
#: Metres travelled per pedal revolution.
_METRES_PER_CRANK_TURN = 4.5


@dataclass(frozen=True, eq=False)
class Model:
    """Parts of one object and their local poses ``(T or 1, P, 3, 3)`` and ``(T or 1, P, 3)``."""

    parts: tuple[Part, ...]
    rotations: FloatArray
    translations: FloatArray


@dataclass(frozen=True, eq=False)
class Path:
    """Where an object's local origin is at each frame, its heading and the distance travelled."""

    positions: FloatArray  # (T, 3)
    headings: FloatArray  # (T,)
    distances: FloatArray  # (T,)


def straight_path(
    times: FloatArray,
    start: tuple[float, float],
    heading: float,
    speed: float,
    wobble: float = 0.0,
    wobble_period: float = 4.0,
    wobble_phase: float = 0.0,
) -> Path:
    """Travel along a straight line at ``speed + wobble·sin(2πt/period + phase)`` m/s (exact)."""
    omega = 2.0 * np.pi / wobble_period
    distances = speed * times + wobble / omega * (
        np.cos(wobble_phase) - np.cos(omega * times + wobble_phase)
    )
    positions = np.zeros((times.size, 3), dtype=np.float64)
    positions[:, 0] = start[0] + distances * np.cos(heading)
    positions[:, 1] = start[1] + distances * np.sin(heading)
    return Path(positions, np.full(times.size, heading), distances)


def place_on_path(model: Model, path: Path) -> tuple[FloatArray, FloatArray]:
    """World poses ``(T, P, 3, 3)``, ``(T, P, 3)`` of a model's parts carried along a path."""
    root = rotation_z(path.headings)[:, None]
    frames = path.positions.shape[0]
    parts = len(model.parts)
    local_rotations = np.broadcast_to(model.rotations, (frames, parts, 3, 3))
    local_translations = np.broadcast_to(model.translations, (frames, parts, 3))
    rotations = np.einsum(
        "tpij,tpjk->tpik", np.broadcast_to(root, (frames, parts, 3, 3)), local_rotations
    )
    translations = transform_points(root, path.positions[:, None], local_translations)
    return rotations, translations


def _rigid(parts: list[tuple[Part, tuple[float, float, float]]]) -> Model:
    """A rigid model from parts and their (unrotated) centres."""
    centres = np.array([centre for _, centre in parts], dtype=np.float64)[None]
    rotations = np.broadcast_to(np.eye(3), (1, len(parts), 3, 3)).copy()
    return Model(tuple(part for part, _ in parts), rotations, centres)


def _wheel_parts(
    length: float, half_width: float, radius: float, axle_xs: tuple[float, ...]
) -> list[tuple[Part, tuple[float, float, float]]]:
    """Dark wheels under a vehicle body, just inside its sides."""
    wheel = Material(_TYRE, Pattern.WHEEL, accent=_HUB, noise_amplitude=0.1, noise_cell=0.2)
    wheels = []
    for index, axle in enumerate(axle_xs):
        for side, sign in (("left", 1.0), ("right", -1.0)):
            part = Part(f"wheel_{index}_{side}", (radius, 0.11, radius), wheel)
            wheels.append((part, (axle * length, sign * (half_width - 0.12), radius)))
    return wheels


def car_model(rng: np.random.Generator) -> tuple[Model, float, float]:
    """A car (body, cabin with windows, four wheels); returns the model, its length and width."""
    length, width = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
    paint = pick(rng, CAR_COLORS)
    glass = pick(rng, GLASS_COLORS, 0.03)
    body = Material(
        paint, Pattern.BODYWORK, accent=_HEADLIGHT, noise_amplitude=0.12, noise_cell=0.6
    )
    cabin = Material(
        paint,
        Pattern.CABIN,
        accent=glass,
        noise_amplitude=0.12,
        noise_cell=0.4,
        period_u=1.0,
        fill_u=0.07,
        fill_v=0.05,
    )
    roof_height = rng.uniform(0.22, 0.28)
    parts = [
        (Part("body", (length / 2, width / 2, 0.33), body), (0.0, 0.0, 0.58)),
        (
            Part("cabin", (0.27 * length, 0.45 * width, roof_height), cabin),
            (-0.06 * length, 0.0, 0.91 + roof_height),
        ),
        *_wheel_parts(length, width / 2, 0.31, (0.32, -0.32)),
    ]
    return _rigid(parts), length, width


def truck_model(rng: np.random.Generator) -> tuple[Model, float, float]:
    """A box truck: cab with windscreen, cargo box with ribs, chassis, six wheels."""
    cargo_length = rng.uniform(4.5, 7.0)
    cab_length, gap = 2.2, 0.15
    length = cab_length + gap + cargo_length
    paint = pick(rng, CAR_COLORS)
    cargo_color = jitter(rng, (0.85, 0.85, 0.82) if rng.random() < 0.6 else paint)
    glass = pick(rng, GLASS_COLORS, 0.03)
    cab = Material(
        paint,
        Pattern.CABIN,
        accent=glass,
        noise_amplitude=0.12,
        noise_cell=0.5,
        fill_u=0.1,
        fill_v=1.35,
    )
    cargo = Material(
        cargo_color,
        Pattern.GRID,
        accent=(0.55, 0.55, 0.55),
        noise_amplitude=0.15,
        noise_cell=0.8,
        period_u=0.6,
        fill_u=0.06,
    )
    chassis = Material((0.12, 0.12, 0.13), noise_amplitude=0.1, noise_cell=0.3)
    front = length / 2
    parts = [
        (Part("cab", (cab_length / 2, 1.2, 1.25), cab), (front - cab_length / 2, 0.0, 1.75)),
        (
            Part("cargo", (cargo_length / 2, 1.25, 1.45), cargo),
            (front - cab_length - gap - cargo_length / 2, 0.0, 2.35),
        ),
        (Part("chassis", (length / 2 - 0.2, 1.0, 0.2), chassis), (0.0, 0.0, 0.7)),
        *_wheel_parts(length, 1.2, 0.5, (0.36, -0.22, -0.36)),
    ]
    return _rigid(parts), length, 2.5


def bus_model(rng: np.random.Generator) -> tuple[Model, float, float]:
    """A city bus: one long body with a window band and windscreen, four wheels."""
    length = rng.uniform(10.0, 12.0)
    paint = pick(rng, ((0.85, 0.15, 0.12), (0.95, 0.80, 0.15), (0.20, 0.45, 0.75), (0.9, 0.9, 0.9)))
    glass = pick(rng, GLASS_COLORS, 0.03)
    body = Material(
        paint,
        Pattern.BUS,
        accent=glass,
        noise_amplitude=0.12,
        noise_cell=0.8,
        period_u=1.4,
        fill_u=0.14,
    )
    parts = [
        (Part("body", (length / 2, 1.25, 1.4), body), (0.0, 0.0, 1.75)),
        *_wheel_parts(length, 1.25, 0.5, (0.33, -0.3)),
    ]
    return _rigid(parts), length, 2.5


@dataclass(frozen=True)
class Figure:
    """Body proportions and clothing of one person (metres; derived from the height)."""

    height: float
    shirt: Material
    trousers: Material
    skin: Material

    @property
    def thigh(self) -> float:
        """Hip-to-knee length."""
        return 0.245 * self.height

    @property
    def shin(self) -> float:
        """Knee-to-sole length (the foot is folded into the shin)."""
        return 0.27 * self.height

    @property
    def torso(self) -> float:
        """Hip-to-shoulder-top length."""
        return 0.30 * self.height

    @property
    def upper_arm(self) -> float:
        """Shoulder-to-elbow length."""
        return 0.17 * self.height

    @property
    def forearm(self) -> float:
        """Elbow-to-fingertip length."""
        return 0.16 * self.height

    @property
    def hip_offset(self) -> float:
        """Lateral distance of each hip joint from the body's mid-plane."""
        return 0.055 * self.height

    @property
    def shoulder_offset(self) -> float:
        """Lateral distance of each shoulder joint from the body's mid-plane."""
        return 0.135 * self.height


def random_figure(rng: np.random.Generator) -> Figure:
    """A person of random height with random clothing colours (stripes on some shirts)."""
    height = rng.uniform(1.55, 1.95)
    shirt_color = pick(rng, SHIRT_COLORS)
    if rng.random() < 0.4:
        shirt = Material(
            shirt_color,
            Pattern.GRID,
            accent=jitter(rng, (0.95, 0.95, 0.92)),
            noise_amplitude=0.2,
            noise_cell=0.15,
            period_v=rng.uniform(0.08, 0.16),
            fill_v=0.03,
        )
    else:
        shirt = Material(shirt_color, noise_amplitude=0.3, noise_cell=0.15)
    trousers = Material(pick(rng, TROUSER_COLORS), noise_amplitude=0.3, noise_cell=0.12)
    skin = Material(pick(rng, SKIN_COLORS, 0.03), noise_amplitude=0.15, noise_cell=0.08)
    return Figure(height, shirt, trousers, skin)


def _stick(
    name: str,
    start: FloatArray,
    end: FloatArray,
    half_thickness: tuple[float, float],
    material: Material,
) -> tuple[Part, FloatArray, FloatArray]:
    """A limb box from ``start`` to ``end`` (per frame), with constant length."""
    length = float(np.linalg.norm(end[0] - start[0]))
    rotation, centre = segment_pose(start, end)
    part = Part(name, (half_thickness[0], half_thickness[1], length / 2), material)
    return part, rotation, centre


def _assemble(pieces: list[tuple[Part, FloatArray, FloatArray]]) -> Model:
    """Stack per-part rotations ``(T, 3, 3)`` and centres ``(T, 3)`` into a :class:`Model`."""
    rotations = np.stack([rotation for _, rotation, _ in pieces], axis=1)
    centres = np.stack([centre for _, _, centre in pieces], axis=1)
    return Model(tuple(part for part, _, _ in pieces), rotations, centres)


def _point(x: FloatArray, y: float, z: FloatArray) -> FloatArray:
    """Stack per-frame x and z (and a constant y) into points ``(T, 3)``."""
    return np.stack(np.broadcast_arrays(x, np.full_like(x, y), z), axis=-1)


def _direction(angle: FloatArray) -> tuple[FloatArray, FloatArray]:
    """x and z components of a unit vector tilted ``angle`` forward from straight down."""
    return np.sin(angle), -np.cos(angle)


def walking_figure(figure: Figure, phases: FloatArray, swing: float) -> Model:
    """Per-frame limb poses of a person walking at gait ``phases`` (radians) with thigh ``swing``.

    Thighs swing ±``swing`` in opposition, knees bend during the forward swing, arms swing
    against the legs; the body is lowered so that the lower foot touches the ground. ``swing`` 0
    and a constant phase give a still, standing person.
    """
    thigh_left = swing * np.sin(phases)
    thigh_right = swing * np.sin(phases + np.pi)
    knee_bend = 1.7 * swing
    shin_left = thigh_left - knee_bend * np.maximum(0.0, np.cos(phases))
    shin_right = thigh_right - knee_bend * np.maximum(0.0, np.cos(phases + np.pi))
    reach_left = figure.thigh * np.cos(thigh_left) + figure.shin * np.cos(shin_left)
    reach_right = figure.thigh * np.cos(thigh_right) + figure.shin * np.cos(shin_right)
    hip_height = np.maximum(reach_left, reach_right)
    zero = np.zeros_like(phases)
    pieces: list[tuple[Part, FloatArray, FloatArray]] = []
    height = figure.height
    torso_half = (0.065 * height, 0.105 * height, figure.torso / 2)
    torso_centre = _point(zero, 0.0, hip_height + figure.torso / 2)
    upright = np.broadcast_to(np.eye(3), (phases.size, 3, 3)).copy()
    pieces.append((Part("torso", torso_half, figure.shirt), upright, torso_centre))
    head_half = (0.06 * height, 0.05 * height, 0.07 * height)
    head_centre = _point(zero, 0.0, hip_height + figure.torso + 0.012 * height + head_half[2])
    pieces.append((Part("head", head_half, figure.skin), upright.copy(), head_centre))
    for side, sign, thigh_angle, shin_angle in (
        ("left", 1.0, thigh_left, shin_left),
        ("right", -1.0, thigh_right, shin_right),
    ):
        lateral = sign * figure.hip_offset
        hip = _point(zero, lateral, hip_height)
        dx, dz = _direction(thigh_angle)
        knee = _point(dx * figure.thigh, lateral, hip_height + dz * figure.thigh)
        dx, dz = _direction(shin_angle)
        ankle = _point(knee[:, 0] + dx * figure.shin, lateral, knee[:, 2] + dz * figure.shin)
        thickness = 0.04 * height
        pieces.append(_stick(f"{side}_thigh", hip, knee, (thickness, thickness), figure.trousers))
        thickness = 0.032 * height
        pieces.append(_stick(f"{side}_shin", knee, ankle, (thickness, thickness), figure.trousers))
    for side, sign, leg_angle in (("left", 1.0, thigh_left), ("right", -1.0, thigh_right)):
        lateral = sign * figure.shoulder_offset
        arm_angle = -0.6 * leg_angle
        shoulder = _point(zero, lateral, hip_height + figure.torso - 0.03 * height)
        dx, dz = _direction(arm_angle)
        elbow = _point(dx * figure.upper_arm, lateral, shoulder[:, 2] + dz * figure.upper_arm)
        dx, dz = _direction(arm_angle + 0.35)
        hand = _point(elbow[:, 0] + dx * figure.forearm, lateral, elbow[:, 2] + dz * figure.forearm)
        thickness = 0.027 * height
        pieces.append(
            _stick(f"{side}_upper_arm", shoulder, elbow, (thickness, thickness), figure.shirt)
        )
        thickness = 0.023 * height
        pieces.append(_stick(f"{side}_forearm", elbow, hand, (thickness, thickness), figure.skin))
    return _assemble(pieces)


def gait(
    distances: FloatArray, height: float, speed: float, phase: float
) -> tuple[FloatArray, float]:
    """Gait phase per frame and thigh swing amplitude for walking ``distances`` at ``speed``."""
    cycle = (1.0 + 0.35 * speed) * height / 1.75
    swing = 0.25 + 0.12 * min(speed, 2.0)
    return phase + 2.0 * np.pi * distances / cycle, swing


def _saddle_height(figure: Figure) -> float:
    """Hip height on the saddle so the legs almost straighten at the lowest pedal position."""
    reach = 0.95 * (figure.thigh + figure.shin) - _CRANK_RADIUS
    return _CRANK_HEIGHT + float(np.sqrt(reach**2 - _SADDLE_X**2))


def _knee_position(
    hip: FloatArray, pedal: FloatArray, thigh: float, shin: float
) -> tuple[FloatArray, FloatArray]:
    """Two-link leg inverse kinematics in the x–z plane: knee (forward) and the shin's far end."""
    delta = pedal - hip
    distance = np.clip(
        np.hypot(delta[:, 0], delta[:, 2]), abs(thigh - shin) + 1e-3, thigh + shin - 1e-3
    )
    towards = np.arctan2(delta[:, 0], -delta[:, 2])
    opening = np.arccos(np.clip((thigh**2 + distance**2 - shin**2) / (2 * thigh * distance), -1, 1))
    dx, dz = _direction(towards + opening)
    knee = hip.copy()
    knee[:, 0] += thigh * dx
    knee[:, 2] += thigh * dz
    towards_pedal = pedal - knee
    towards_pedal /= np.linalg.norm(towards_pedal, axis=1, keepdims=True)
    return knee, knee + shin * towards_pedal


def cycling_figure(figure: Figure, crank_angles: FloatArray) -> Model:
    """Per-frame poses of a pedalling rider: legs follow the pedals, the torso leans to the bars."""
    hip_height = _saddle_height(figure)
    height = figure.height
    frames = crank_angles.size
    zero = np.zeros(frames)
    lean = 0.5
    pieces: list[tuple[Part, FloatArray, FloatArray]] = []
    lean_rotation = np.broadcast_to(rotation_y(lean), (frames, 3, 3)).copy()
    up_x, up_z = np.sin(lean), np.cos(lean)
    torso_centre = _point(
        zero + _SADDLE_X + up_x * figure.torso / 2, 0.0, zero + hip_height + up_z * figure.torso / 2
    )
    torso_half = (0.065 * height, 0.105 * height, figure.torso / 2)
    pieces.append((Part("torso", torso_half, figure.shirt), lean_rotation, torso_centre))
    head_half = (0.06 * height, 0.05 * height, 0.07 * height)
    head_reach = figure.torso + 0.012 * height + head_half[2]
    head_centre = _point(
        zero + _SADDLE_X + up_x * head_reach, 0.0, zero + hip_height + up_z * head_reach
    )
    pieces.append((Part("head", head_half, figure.skin), lean_rotation.copy(), head_centre))
    for side, sign, offset in (("left", 1.0, 0.0), ("right", -1.0, np.pi)):
        lateral = sign * 0.11
        angle = crank_angles + offset
        hip = _point(zero + _SADDLE_X, lateral, zero + hip_height)
        pedal = _point(
            _CRANK_RADIUS * np.cos(angle), lateral, _CRANK_HEIGHT + _CRANK_RADIUS * np.sin(angle)
        )
        knee, foot = _knee_position(hip, pedal, figure.thigh, figure.shin)
        thickness = 0.04 * height
        pieces.append(_stick(f"{side}_thigh", hip, knee, (thickness, thickness), figure.trousers))
        thickness = 0.032 * height
        pieces.append(_stick(f"{side}_shin", knee, foot, (thickness, thickness), figure.trousers))
    shoulder_reach = figure.torso - 0.03 * height
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lateral = sign * figure.shoulder_offset
        shoulder = _point(
            zero + _SADDLE_X + up_x * shoulder_reach,
            lateral,
            zero + hip_height + up_z * shoulder_reach,
        )
        grip = _point(zero + _HANDLEBAR_X, lateral, zero + hip_height + 0.08)
        thickness = 0.026 * height
        pieces.append(_stick(f"{side}_arm", shoulder, grip, (thickness, thickness), figure.shirt))
    return _assemble(pieces)


def bicycle_model(rng: np.random.Generator, figure: Figure, distances: FloatArray) -> Model:
    """Per-frame poses of a bicycle sized for ``figure``: spinning wheels, frame tubes, bars."""
    paint = pick(rng, _FRAME_COLORS)
    tube = Material(paint, noise_amplitude=0.15, noise_cell=0.1)
    dark = Material((0.08, 0.08, 0.09), noise_amplitude=0.1, noise_cell=0.1)
    wheel = Material(_TYRE, Pattern.WHEEL, accent=_HUB, noise_amplitude=0.1, noise_cell=0.1)
    frames = distances.size
    saddle = _saddle_height(figure) - 0.06
    spin = distances / _WHEEL_RADIUS
    zero = np.zeros(frames)
    pieces: list[tuple[Part, FloatArray, FloatArray]] = []
    rear_hub, front_hub = (-0.52, _WHEEL_RADIUS), (0.53, _WHEEL_RADIUS)
    for name, hub in (("rear", rear_hub), ("front", front_hub)):
        for index, offset in enumerate((0.0, np.pi / 4)):
            rotation = rotation_y(spin + offset)
            centre = _point(zero + hub[0], 0.0, zero + hub[1])
            pieces.append(
                (Part(f"{name}_wheel_{index}", (0.25, 0.02, 0.25), wheel), rotation, centre)
            )

    def point(x: float, z: float) -> FloatArray:
        return _point(zero + x, 0.0, zero + z)

    crank = point(0.0, _CRANK_HEIGHT)
    seat = point(_SADDLE_X + 0.02, saddle - 0.04)
    head_top = point(_HANDLEBAR_X - 0.06, saddle - 0.08)
    head_bottom = point(_HANDLEBAR_X - 0.02, 0.62)
    tubes = (
        ("seat_tube", crank, seat),
        ("down_tube", crank, head_bottom),
        ("top_tube", seat, head_top),
        ("fork", head_bottom, point(*front_hub)),
        ("chain_stay", crank, point(*rear_hub)),
        ("stem", head_top, point(_HANDLEBAR_X, saddle + 0.08)),
    )
    for name, start, end in tubes:
        pieces.append(_stick(name, start, end, (0.022, 0.022), tube))
    still = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
    pieces.append(
        (Part("handlebar", (0.025, 0.3, 0.02), dark), still, point(_HANDLEBAR_X, saddle + 0.08))
    )
    pieces.append(
        (Part("saddle", (0.12, 0.07, 0.03), dark), still.copy(), point(_SADDLE_X, saddle))
    )
    return _assemble(pieces)


def crank_angles(distances: FloatArray, phase: float) -> FloatArray:
    """Pedal crank angle per frame (the crank turns once per ``_METRES_PER_CRANK_TURN``)."""
    return phase - 2.0 * np.pi * distances / _METRES_PER_CRANK_TURN
