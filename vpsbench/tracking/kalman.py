"""SORT's motion model: a constant-velocity Kalman filter on a box (Bewley et al. 2016, Sec. 3.2).

The state is ``[x, y, s, r, ẋ, ẏ, ṡ]``: box centre, scale (area) and aspect ratio (width / height)
with velocities for all but the aspect ratio, which the paper models as constant. A detection is
observed directly as ``[x, y, s, r]``. The paper gives no noise covariances; the defaults of
:class:`KalmanNoise` are the values the authors' reference implementation uses (large initial
velocity uncertainty, measured scale and ratio ten times noisier than the centre, small process
noise on velocities), and the filter runs the same equations (filterpy's ``KalmanFilter``:
``K = P Hᵀ S⁻¹``, Joseph-form covariance update), so a track's boxes match the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]
FloatArray = npt.NDArray[np.float64]

STATE_SIZE = 7
MEASUREMENT_SIZE = 4
_SCALE, _SCALE_VELOCITY = 2, 6


@dataclass(frozen=True)
class KalmanNoise:
    """Covariances of SORT's box filter (diagonal); defaults are the reference SORT's values."""

    measurement_centre_variance: float = 1.0
    measurement_shape_variance: float = 10.0
    initial_box_variance: float = 10.0
    initial_velocity_variance: float = 10_000.0
    process_box_variance: float = 1.0
    process_centre_velocity_variance: float = 0.01
    process_scale_velocity_variance: float = 0.0001

    def measurement_covariance(self) -> FloatArray:
        """R: noise of an observed ``[x, y, s, r]``."""
        centre, shape = self.measurement_centre_variance, self.measurement_shape_variance
        return np.diag([centre, centre, shape, shape]).astype(np.float64)

    def initial_covariance(self) -> FloatArray:
        """P₀: a new track knows its box roughly and its velocity not at all."""
        box, velocity = self.initial_box_variance, self.initial_velocity_variance
        return np.diag([box] * MEASUREMENT_SIZE + [velocity] * 3).astype(np.float64)

    def process_covariance(self) -> FloatArray:
        """Q: how far the constant-velocity model may drift per frame."""
        centre_velocity = self.process_centre_velocity_variance
        variances = [self.process_box_variance] * MEASUREMENT_SIZE
        variances += [centre_velocity, centre_velocity, self.process_scale_velocity_variance]
        return np.diag(variances).astype(np.float64)


def _transition_matrix() -> FloatArray:
    """F: position, scale += velocity each frame; aspect ratio and velocities unchanged."""
    transition = np.eye(STATE_SIZE, dtype=np.float64)
    for component in range(3):
        transition[component, MEASUREMENT_SIZE + component] = 1.0
    return transition


TRANSITION = _transition_matrix()
OBSERVATION = np.eye(MEASUREMENT_SIZE, STATE_SIZE, dtype=np.float64)


def box_to_measurement(box: Box) -> FloatArray:
    """``(x1, y1, x2, y2)`` → ``[centre x, centre y, area, width / height]`` as SORT observes it."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    if not (width > 0 and height > 0):
        raise ValueError(f"box {box} has no area")
    return np.array([x1 + width / 2, y1 + height / 2, width * height, width / height])


def state_to_box(state: FloatArray) -> Box:
    """``[x, y, s, r, …]`` → ``(x1, y1, x2, y2)`` with ``w = √(s·r)``, ``h = s / w``.

    As in the reference, a state with ``s·r < 0`` or ``w = 0`` gives a NaN or infinite box
    (SORT deletes a track whose prediction is not finite), never a silently clipped one.
    """
    centre_x, centre_y, scale, ratio = (float(value) for value in state[:MEASUREMENT_SIZE])
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(np.float64(scale) * np.float64(ratio))
        width, height = float(root), float(np.float64(scale) / root)
    return (
        centre_x - width / 2,
        centre_y - height / 2,
        centre_x + width / 2,
        centre_y + height / 2,
    )


class BoxKalmanFilter:
    """A track's constant-velocity filter on ``[x, y, s, r, ẋ, ẏ, ṡ]`` (Bewley et al. 2016)."""

    def __init__(self, box: Box, noise: KalmanNoise | None = None) -> None:
        """Start at the detected box with zero velocity and the noise's initial uncertainty."""
        self.noise = noise if noise is not None else KalmanNoise()
        self._measurement_covariance = self.noise.measurement_covariance()
        self._process_covariance = self.noise.process_covariance()
        self._state = np.zeros(STATE_SIZE, dtype=np.float64)
        self._state[:MEASUREMENT_SIZE] = box_to_measurement(box)
        self._covariance = self.noise.initial_covariance()

    @property
    def state(self) -> FloatArray:
        """A copy of the current mean ``[x, y, s, r, ẋ, ẏ, ṡ]``."""
        return self._state.copy()

    @property
    def covariance(self) -> FloatArray:
        """A copy of the current 7 × 7 state covariance."""
        return self._covariance.copy()

    @property
    def box(self) -> Box:
        """The current mean as ``(x1, y1, x2, y2)``."""
        return state_to_box(self._state)

    def predict(self) -> Box:
        """Advance one frame; a scale velocity that would make the area non-positive is zeroed."""
        if self._state[_SCALE] + self._state[_SCALE_VELOCITY] <= 0:
            self._state[_SCALE_VELOCITY] *= 0.0
        self._state = TRANSITION @ self._state
        self._covariance = TRANSITION @ self._covariance @ TRANSITION.T + self._process_covariance
        return self.box

    def update(self, box: Box) -> Box:
        """Correct the state with an observed box (Joseph form keeps the covariance symmetric)."""
        covariance_observed = self._covariance @ OBSERVATION.T
        innovation_covariance = OBSERVATION @ covariance_observed + self._measurement_covariance
        gain = covariance_observed @ np.linalg.inv(innovation_covariance)
        residual = box_to_measurement(box) - OBSERVATION @ self._state
        self._state = self._state + gain @ residual
        correction = np.eye(STATE_SIZE) - gain @ OBSERVATION
        self._covariance = (correction @ self._covariance) @ correction.T + (
            gain @ self._measurement_covariance
        ) @ gain.T
        return self.box
