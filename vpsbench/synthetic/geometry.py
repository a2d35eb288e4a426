"""Camera model, rotations and ray–box intersection: the geometry shared by scene, renderer, tests.

Conventions (also written to every ``camera.json``):

* **World**: right-handed, metres; ``x`` forward along the street, ``y`` to the left, ``z`` up; the
  ground is the plane ``z = 0``.
* **Camera**: OpenCV axes, ``x`` right, ``y`` down, ``z`` along the optical axis; the pose
  ``camera_to_world`` maps camera coordinates to world coordinates.
* **Pixels**: the centre of the pixel in row ``i``, column ``j`` has image coordinates
  ``(u, v) = (j, i)``; ``K @ X`` projects a camera-frame point ``X``. Flow ``(du, dv)`` is the
  displacement of that centre in pixels.
* **Depth** is the ``z`` coordinate in the camera frame (not the distance along the ray).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

#: Focal length / image width, as KITTI's 721 px at 1242 px width: horizontal FOV ≈ 81°.
FOCAL_PER_WIDTH = 0.58
#: Principal point row / image height, as KITTI's (the horizon a little above the middle).
PRINCIPAL_ROW_PER_HEIGHT = 0.46
#: Closest depth (metres) at which a surface is seen; nearer hits are clipped.
NEAR_PLANE = 0.05

#: Camera axes (OpenCV: right, down, forward) in world coordinates (forward, left, up), as columns.
CAMERA_AXES_IN_WORLD: FloatArray = np.array(
    [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=np.float64
)

CONVENTION = (
    "world: right-handed metres, x forward along the street, y left, z up, ground z=0; "
    "camera: OpenCV (x right, y down, z forward), camera_to_world maps camera to world "
    "coordinates; pixel (row i, col j) centre is at (u, v) = (j, i); depth = camera z (inf = sky); "
    "flow_forward(t) = position at t+1 minus at t of the surface point seen at t, in pixels (u, v)"
)


def intrinsics_for(height: int, width: int) -> FloatArray:
    """KITTI-like pinhole intrinsics scaled to the image width (square pixels, no skew)."""
    focal = FOCAL_PER_WIDTH * width
    return np.array(
        [
            [focal, 0.0, (width - 1) / 2.0],
            [0.0, focal, PRINCIPAL_ROW_PER_HEIGHT * (height - 1)],
            [0.0, 0.0, 1.0],
        ],
        dtype=np.float64,
    )


def rotation_x(angle: npt.ArrayLike) -> FloatArray:
    """Right-handed rotation(s) about the x axis by ``angle`` radians, shape ``(..., 3, 3)``."""
    return _axis_rotation(angle, 0)


def rotation_y(angle: npt.ArrayLike) -> FloatArray:
    """Right-handed rotation(s) about the y axis by ``angle`` radians, shape ``(..., 3, 3)``."""
    return _axis_rotation(angle, 1)


def rotation_z(angle: npt.ArrayLike) -> FloatArray:
    """Right-handed rotation(s) about the z axis by ``angle`` radians, shape ``(..., 3, 3)``."""
    return _axis_rotation(angle, 2)


def _axis_rotation(angle: npt.ArrayLike, axis: int) -> FloatArray:
    """Rotation matrices about one coordinate axis, broadcast over the shape of ``angle``."""
    angles = np.asarray(angle, dtype=np.float64)
    cosine, sine = np.cos(angles), np.sin(angles)
    matrix = np.zeros((*angles.shape, 3, 3), dtype=np.float64)
    first, second = [(1, 2), (2, 0), (0, 1)][axis]
    matrix[..., axis, axis] = 1.0
    matrix[..., first, first] = cosine
    matrix[..., second, second] = cosine
    matrix[..., first, second] = -sine
    matrix[..., second, first] = sine
    return matrix


def camera_rotation(yaw: npt.ArrayLike, pitch: npt.ArrayLike) -> FloatArray:
    """Camera-to-world rotation of a camera turned left by ``yaw`` and up by ``pitch`` (radians)."""
    return rotation_z(yaw) @ CAMERA_AXES_IN_WORLD @ rotation_x(pitch)


def pixel_rays(intrinsics: FloatArray, height: int, width: int) -> FloatArray:
    """Camera-frame ray directions ``K^-1 (u, v, 1)`` of all pixel centres, ``(H, W, 3)``, z = 1."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.empty((height, width, 3), dtype=np.float64)
    rays[..., 0] = (cols - intrinsics[0, 2]) / intrinsics[0, 0]
    rays[..., 1] = (rows - intrinsics[1, 2]) / intrinsics[1, 1]
    rays[..., 2] = 1.0
    return rays


def project(intrinsics: FloatArray, points: FloatArray) -> FloatArray:
    """Image coordinates ``(u, v)`` of camera-frame points ``(..., 3)`` (z must be positive)."""
    inverse_depth = 1.0 / points[..., 2]
    projected = np.empty((*points.shape[:-1], 2), dtype=np.float64)
    projected[..., 0] = intrinsics[0, 0] * points[..., 0] * inverse_depth + intrinsics[0, 2]
    projected[..., 1] = intrinsics[1, 1] * points[..., 1] * inverse_depth + intrinsics[1, 2]
    return projected


def pose_matrix(rotation: FloatArray, translation: FloatArray) -> FloatArray:
    """The 4×4 homogeneous matrix(es) ``[[R, t], [0, 1]]`` of rotation(s) and translation(s)."""
    matrix = np.zeros((*rotation.shape[:-2], 4, 4), dtype=np.float64)
    matrix[..., :3, :3] = rotation
    matrix[..., :3, 3] = translation
    matrix[..., 3, 3] = 1.0
    return matrix


def transform_points(
    rotation: FloatArray, translation: FloatArray, points: FloatArray
) -> FloatArray:
    """``R @ p + t`` for matching stacks of rotations ``(..., 3, 3)`` and points ``(..., 3)``.

    Written as explicit products (no BLAS) so the result is bit-identical in every process.
    """
    return (
        rotation[..., :, 0] * points[..., 0:1]
        + rotation[..., :, 1] * points[..., 1:2]
        + rotation[..., :, 2] * points[..., 2:3]
        + translation
    )


def inverse_transform_points(
    rotation: FloatArray, translation: FloatArray, points: FloatArray
) -> FloatArray:
    """``R^T @ (p - t)``: points from the parent frame into the frame posed by ``(R, t)``."""
    offset = points - translation
    return (
        rotation[..., 0, :] * offset[..., 0:1]
        + rotation[..., 1, :] * offset[..., 1:2]
        + rotation[..., 2, :] * offset[..., 2:3]
    )


def box_corners(half_extents: FloatArray) -> FloatArray:
    """The 8 corners ``(..., 8, 3)`` of boxes centred at the origin with these half extents."""
    signs = np.array(
        [[sx, sy, sz] for sx in (-1.0, 1.0) for sy in (-1.0, 1.0) for sz in (-1.0, 1.0)],
        dtype=np.float64,
    )
    corners: FloatArray = half_extents[..., None, :] * signs
    return corners


def intersect_box(
    origin: Float32Array,
    rotation: Float32Array,
    half_extents: Float32Array,
    rays_x: Float32Array,
    rays_y: Float32Array,
) -> Float32Array:
    """Depth at which camera rays ``(rays_x, rays_y, 1)`` enter a box (slab test); ``inf`` if not.

    The box has camera-frame rotation ``rotation`` (box → camera) and its frame sees the camera
    centre at ``origin``. A ray counts only if it enters the box in front of ``NEAR_PLANE``.
    Written per axis with elementwise operations (no small-axis reductions, no BLAS).
    """
    entry: Float32Array | None = None
    leave: Float32Array | None = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(3):
            direction = rotation[0, axis] * rays_x + rotation[1, axis] * rays_y + rotation[2, axis]
            inverse = np.float32(1.0) / direction
            low = (-half_extents[axis] - origin[axis]) * inverse
            high = (half_extents[axis] - origin[axis]) * inverse
            near, far = np.minimum(low, high), np.maximum(low, high)
            entry = near if entry is None else np.maximum(entry, near, out=entry)
            leave = far if leave is None else np.minimum(leave, far, out=leave)
    assert entry is not None and leave is not None
    missed = (entry > leave) | ~(entry > NEAR_PLANE)
    entry[missed] = np.inf
    return entry


def segment_pose(start: FloatArray, end: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Pose of a box whose local −z axis runs from ``start`` to ``end`` (points in an x–z plane).

    Returns rotations ``(..., 3, 3)`` (about y only: the segment must keep y constant) and the
    centres ``(..., 3)``; used for limbs, bicycle tubes and other sticks.
    """
    delta = end - start
    angle = np.arctan2(delta[..., 0], -delta[..., 2])
    return rotation_y(-angle), (start + end) / 2.0
