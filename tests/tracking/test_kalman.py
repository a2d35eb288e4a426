"""SORT's constant-velocity box filter (Bewley et al. 2016) on hand-built trajectories."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from vpsbench.tracking.kalman import (
    Box,
    BoxKalmanFilter,
    KalmanNoise,
    box_to_measurement,
    state_to_box,
)


def moving_box(frame: int) -> Box:
    """A 20 × 40 box whose centre moves by (+5, -3) px per frame."""
    return (10.0 + 5 * frame, 20.0 - 3 * frame, 30.0 + 5 * frame, 60.0 - 3 * frame)


def growing_square(frame: int) -> Box:
    """A square whose area grows by 100 px² and whose centre moves +2 px in x per frame."""
    side = math.sqrt(400.0 + 100.0 * frame)
    centre_x = 50.0 + 2 * frame
    return (centre_x - side / 2, 50.0 - side / 2, centre_x + side / 2, 50.0 + side / 2)


def test_box_measurement_round_trip() -> None:
    """A box is observed as centre, area and width / height, and converts back unchanged."""
    measurement = box_to_measurement((10.0, 20.0, 30.0, 60.0))
    np.testing.assert_allclose(measurement, [20.0, 40.0, 800.0, 0.5])
    np.testing.assert_allclose(state_to_box(measurement), (10.0, 20.0, 30.0, 60.0))


def test_box_without_area_is_rejected() -> None:
    """A box with zero width has no aspect ratio, so it cannot start or update a filter."""
    with pytest.raises(ValueError, match="no area"):
        box_to_measurement((5.0, 5.0, 5.0, 9.0))


def test_degenerate_state_gives_a_nan_box() -> None:
    """As in the reference, negative area × ratio gives a NaN box (SORT then drops the track)."""
    assert all(math.isnan(value) for value in state_to_box(np.array([3.0, 4.0, -1.0, 1.0])))
    assert all(math.isnan(value) for value in state_to_box(np.array([3.0, 4.0, 0.0, 1.0]))[1::2])


@pytest.mark.parametrize("trajectory", [moving_box, growing_square])
def test_constant_velocity_is_predicted_after_a_few_updates(
    trajectory: Callable[[int], Box],
) -> None:
    """After three updates the filter predicts the next five frames of a constant motion."""
    motion = BoxKalmanFilter(trajectory(0))
    for frame in range(1, 4):
        motion.predict()
        motion.update(trajectory(frame))
    for frame in range(4, 9):
        np.testing.assert_allclose(motion.predict(), trajectory(frame), atol=0.02)


def test_noise_free_measurements_give_an_exact_prediction() -> None:
    """With exact boxes and no box noise, two boxes determine the velocity exactly."""
    noise = KalmanNoise(
        measurement_centre_variance=1e-12,
        measurement_shape_variance=1e-12,
        initial_box_variance=1e-12,
        process_box_variance=1e-12,
    )
    motion = BoxKalmanFilter(moving_box(0), noise)
    motion.predict()
    motion.update(moving_box(1))
    np.testing.assert_allclose(motion.state[4:6], [5.0, -3.0], atol=1e-6)
    for frame in range(2, 6):
        np.testing.assert_allclose(motion.predict(), moving_box(frame), atol=1e-6)


def test_prediction_without_update_extrapolates_the_velocity() -> None:
    """Missed frames are bridged by the velocity alone, as SORT does for occluded targets."""
    motion = BoxKalmanFilter(moving_box(0))
    for frame in range(1, 6):
        motion.predict()
        motion.update(moving_box(frame))
    motion.predict()
    np.testing.assert_allclose(motion.predict(), moving_box(7), atol=0.05)


def test_aspect_ratio_has_no_velocity() -> None:
    """The state has seven entries: the aspect ratio is modelled as constant."""
    motion = BoxKalmanFilter(moving_box(0))
    assert motion.state.shape == (7,)
    ratio_before = motion.state[3]
    motion.predict()
    assert motion.state[3] == ratio_before


def test_shrinking_box_never_predicts_a_non_positive_area() -> None:
    """A scale velocity that would make the area non-positive is zeroed before predicting."""
    motion = BoxKalmanFilter((0.0, 0.0, 100.0, 100.0))
    for side in (60.0, 20.0, 2.0):
        motion.predict()
        motion.update((0.0, 0.0, side, side))
    for _ in range(5):
        motion.predict()
        assert motion.state[2] > 0


def test_covariance_stays_symmetric_positive_definite() -> None:
    """The Joseph-form update keeps the covariance a valid covariance over many frames."""
    motion = BoxKalmanFilter(growing_square(0))
    for frame in range(1, 40):
        motion.predict()
        motion.update(growing_square(frame))
    covariance = motion.covariance
    np.testing.assert_allclose(covariance, covariance.T, atol=1e-9)
    assert np.all(np.linalg.eigvalsh(covariance) > 0)
