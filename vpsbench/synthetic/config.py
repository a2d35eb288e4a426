"""What a synthetic dataset is made of (size, seed) and how each video's random stream is seeded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Frames per second of every video (KITTI's 10 Hz): speeds in m/s become metres per frame / 10.
FPS = 10
#: Each split draws its scenes from its own random stream.
SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: Version of the on-disk layout written by :func:`vpsbench.synthetic.write_dataset`.
FORMAT_VERSION = 1
#: Stream index of the per-frame sensor noise, far from any video index.
_SENSOR_NOISE_STREAM = 1_000_003


@dataclass(frozen=True)
class SyntheticConfig:
    """How many videos of how many frames at which image size, and the seed fixing every scene."""

    videos: int = 12
    frames: int = 30
    height: int = 256
    width: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("videos", "frames", "height", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")


def split_code(split: str) -> int:
    """The integer that seeds a split's scenes; ``ValueError`` for an unknown split name."""
    try:
        return SPLIT_CODES[split]
    except KeyError:
        known = ", ".join(sorted(SPLIT_CODES))
        raise ValueError(f"unknown split {split!r} (known: {known})") from None


def scene_rng(config: SyntheticConfig, split: str, video: int) -> np.random.Generator:
    """The generator that draws one video's scene: a pure function of (seed, split, video)."""
    return np.random.default_rng([config.seed, split_code(split), video])


def sensor_noise_rng(
    config: SyntheticConfig, split: str, video: int, frame: int
) -> np.random.Generator:
    """The generator of one frame's sensor noise, independent of the scene's stream."""
    return np.random.default_rng(
        [config.seed, split_code(split), video, _SENSOR_NOISE_STREAM, frame]
    )
