"""Where a synthetic dataset's files live (KITTI-STEP layout plus a ``cues`` tree).

``seq`` names are ``f"{video:04d}"`` and frame names ``f"{t:06d}"``; every function accepts either
the integer or the name.
"""

from __future__ import annotations

from pathlib import Path

IMAGES_DIR = "images"
PANOPTIC_DIR = "panoptic_maps"
CUES_DIR = "cues"
CAMERA_FILE = "camera.json"
MANIFEST_FILE = "synthetic.json"


def sequence_name(video: int | str) -> str:
    """The directory name of a video: four digits."""
    return video if isinstance(video, str) else f"{video:04d}"


def frame_name(frame: int | str) -> str:
    """The file stem of a frame: six digits."""
    return frame if isinstance(frame, str) else f"{frame:06d}"


def image_path(root: Path, split: str, video: int | str, frame: int | str) -> Path:
    """RGB image of one frame."""
    return root / IMAGES_DIR / split / sequence_name(video) / f"{frame_name(frame)}.png"


def panoptic_path(root: Path, split: str, video: int | str, frame: int | str) -> Path:
    """STEP panoptic ground truth of one frame."""
    return root / PANOPTIC_DIR / split / sequence_name(video) / f"{frame_name(frame)}.png"


def cues_path(root: Path, split: str, video: int | str, frame: int | str) -> Path:
    """Depth, flow and motion mask of one frame."""
    return root / CUES_DIR / split / sequence_name(video) / f"{frame_name(frame)}.npz"


def camera_path(root: Path, split: str, video: int | str) -> Path:
    """Camera intrinsics and poses of one video; written last, so it marks a finished video."""
    return root / CUES_DIR / split / sequence_name(video) / CAMERA_FILE


def manifest_path(root: Path) -> Path:
    """The dataset's config and format version, written when :func:`write_dataset` finishes."""
    return root / MANIFEST_FILE
