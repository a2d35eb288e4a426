"""Handcrafted features: channels, determinism, colour science, and that they separate regions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar, cast

import numpy as np
import pytest
from scipy.cluster.vq import kmeans2

from vpsbench.cues import DepthMotion, DepthProvider, VideoClip, cue_names, make_cue
from vpsbench.cues.handcrafted import HandcraftedFeatures, cell_means, srgb_to_lab
from vpsbench.datasets import open_dataset
from vpsbench.datasets.base import Dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.errors import VpsbenchError
from vpsbench.video import FrameRef, SequenceRef

APPEARANCE = ("L", "a", "b", "grad@1", "dxx@1", "dyy@1", "dxy@1")
APPEARANCE += ("grad@3", "dxx@3", "dyy@3", "dxy@3")


def clip_of(*images: np.ndarray) -> VideoClip:
    """A clip whose frames are the given images, held in memory (no dataset on disk)."""
    refs = tuple(FrameRef("seq", f"{t:06d}", t) for t in range(len(images)))
    return VideoClip(
        cast(Dataset, None), "val", SequenceRef("seq", refs), _images=dict(enumerate(images))
    )


def two_region_image(height: int = 64, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A smooth grey-blue background with a red, finely striped rectangle; and its mask."""
    rng = np.random.default_rng(0)
    image = np.empty((height, width, 3), dtype=np.float64)
    image[...] = (90, 100, 120)
    mask = np.zeros((height, width), dtype=bool)
    mask[16:48, 24:72] = True
    stripes = np.where((np.arange(width) // 2) % 2 == 0, 60.0, -60.0)
    image[mask] = (170, 40, 40)
    image += np.where(mask[..., None], stripes[None, :, None], 0.0)
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def cluster_agreement(features: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of cells where 2-means labels match ``truth`` (up to swapping the labels)."""
    samples = features.reshape(features.shape[0], -1).T.astype(np.float64)
    _, labels = kmeans2(samples, 2, minit="++", seed=0)
    agreement = float((labels.reshape(truth.shape) == truth).mean())
    return max(agreement, 1.0 - agreement)


def test_registered_and_needs_no_weights() -> None:
    assert "handcrafted" in cue_names("features")
    provider = make_cue("features", "handcrafted", {"stride": "8"})
    assert isinstance(provider, HandcraftedFeatures)
    assert provider.stride == 8 and not provider.needs_weights


def test_channels_and_shape_are_as_documented() -> None:
    image, _ = two_region_image(50, 70)
    result = HandcraftedFeatures().features(clip_of(image), 0)
    assert HandcraftedFeatures().channel_names == (*APPEARANCE, "x", "y")
    assert result.stride == 4
    assert result.features.shape == (13, 13, 18)  # ceil(50 / 4), ceil(70 / 4)
    assert result.features.dtype == np.float32
    assert np.isfinite(result.features).all()


def test_features_are_deterministic() -> None:
    image, _ = two_region_image()
    first = HandcraftedFeatures(stride=2).features(clip_of(image), 0).features
    second = HandcraftedFeatures(stride=2).features(clip_of(image.copy()), 0).features
    assert np.array_equal(first, second)


def test_lab_of_reference_colours() -> None:
    colours = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    lab = srgb_to_lab(colours)[0]
    np.testing.assert_allclose(lab[0], (100.0, 0.0, 0.0), atol=0.01)
    np.testing.assert_allclose(lab[1], (0.0, 0.0, 0.0), atol=0.01)
    np.testing.assert_allclose(lab[2], (53.24, 80.09, 67.20), atol=0.05)
    np.testing.assert_allclose(lab[3], (32.30, 79.19, -107.86), atol=0.05)


def test_position_channels_are_cell_centres() -> None:
    image = np.zeros((8, 16, 3), dtype=np.uint8)
    features = HandcraftedFeatures(stride=4, standardize="fixed", position_weight=1.0)
    result = features.features(clip_of(image), 0).features
    x, y = result[11] / np.sqrt(3.0), result[12] / np.sqrt(3.0)  # undo the unit-variance scale
    np.testing.assert_allclose(x[0], [-0.75, -0.25, 0.25, 0.75], atol=1e-6)
    np.testing.assert_allclose(y[:, 0], [-0.5, 0.5], atol=1e-6)


def test_cell_means_pad_with_the_edge() -> None:
    values = np.arange(5, dtype=np.float64).reshape(1, 5, 1).repeat(2, axis=0)
    np.testing.assert_allclose(cell_means(values, 2)[0, :, 0], [0.5, 2.5, 4.0])


def test_two_coloured_textured_regions_are_recovered_by_two_means() -> None:
    image, mask = two_region_image()
    provider = HandcraftedFeatures(stride=4, position_weight=0.0)
    result = provider.features(clip_of(image), 0)
    truth = cell_means(mask[..., None].astype(np.float64), 4)[..., 0] > 0.5
    assert cluster_agreement(result.features, truth) > 0.95


def test_texture_alone_separates_same_coloured_regions() -> None:
    rng = np.random.default_rng(1)
    image = np.full((64, 96, 3), 128.0)
    mask = np.zeros((64, 96), dtype=bool)
    mask[:, 48:] = True
    checker = np.where((np.add.outer(np.arange(64) // 2, np.arange(96) // 2)) % 2 == 0, 50, -50)
    image += np.where(mask, checker, 0)[..., None] + rng.normal(0, 2, (64, 96, 1))
    image = np.clip(image, 0, 255).astype(np.uint8)
    names = HandcraftedFeatures().channel_names
    texture = [names.index(name) for name in APPEARANCE[3:]]
    features = HandcraftedFeatures(stride=4).features(clip_of(image), 0).features[texture]
    truth = cell_means(mask[..., None].astype(np.float64), 4)[..., 0] > 0.5
    # the cells on the boundary see both regions; all others must be right
    assert cluster_agreement(features, truth) > 0.9


class HalfDepth(DepthProvider):
    """Depth 5 m on the left half and ``inf`` (sky) on the right half."""

    name: ClassVar[str] = "test-half-depth"
    description: ClassVar[str] = "test stub"

    def depth_motion(self, clip: VideoClip, t: int) -> DepthMotion:
        height, width = clip.image(t).shape[:2]
        depth = np.full((height, width), 5.0, dtype=np.float32)
        depth[:, width // 2 :] = np.inf
        return DepthMotion(depth=depth, motion=np.zeros((height, width), dtype=np.float32))


def test_depth_channel_from_a_depth_provider() -> None:
    image = np.full((16, 32, 3), 100, dtype=np.uint8)
    provider = HandcraftedFeatures(stride=4, depth=HalfDepth(), depth_weight=2.0)
    assert provider.channel_names[-1] == "log_depth"
    result = provider.features(clip_of(image), 0).features
    assert result.shape == (14, 4, 8)
    log_depth = result[-1]
    expected_near = 2.0 * (np.log(5.0) - 3.0) / 1.5
    expected_far = 2.0 * (np.log(500.0) - 3.0) / 1.5  # inf is clipped to 500 m
    np.testing.assert_allclose(log_depth[:, :4], expected_near, rtol=1e-5)
    np.testing.assert_allclose(log_depth[:, 4:], expected_far, rtol=1e-5)


def test_depth_by_provider_name_uses_the_registry(tmp_path: Path) -> None:
    root = prepare_synthetic(
        tmp_path / "synthetic",
        videos=1,
        frames=2,
        height=32,
        width=64,
        seed=0,
        splits=["val"],
        workers=1,
    )
    dataset = open_dataset("synthetic", root)
    clip = VideoClip(dataset, "val", dataset.sequences("val")[0])
    result = HandcraftedFeatures(depth="oracle").features(clip, 1)
    assert result.features.shape == (14, 8, 16)
    assert np.isfinite(result.features).all()
    with pytest.raises(VpsbenchError, match="unknown depth provider"):
        HandcraftedFeatures(depth="no-such-depth")


def test_frame_standardisation_gives_zero_mean_unit_variance() -> None:
    image, _ = two_region_image()
    result = HandcraftedFeatures(standardize="frame").features(clip_of(image), 0).features
    flat = result.reshape(result.shape[0], -1)
    np.testing.assert_allclose(flat.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(flat.std(axis=1), 1.0, atol=1e-4)


def test_bad_options_are_clear() -> None:
    with pytest.raises(VpsbenchError, match="stride"):
        HandcraftedFeatures(stride=0)
    with pytest.raises(VpsbenchError, match="stride"):
        HandcraftedFeatures(stride="2.5")
    with pytest.raises(VpsbenchError, match="standardize"):
        HandcraftedFeatures(standardize="global")
    with pytest.raises(VpsbenchError, match="position_weight"):
        HandcraftedFeatures(position_weight="-1")
    with pytest.raises(VpsbenchError, match="depth_weight"):
        HandcraftedFeatures(depth_weight="nan")


def test_module_does_not_import_torch() -> None:
    code = "import sys, vpsbench.cues.handcrafted; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_image_features_are_the_frame_features_of_any_image() -> None:
    image, _ = two_region_image(50, 70)
    provider = HandcraftedFeatures(stride=4)
    result = provider.image_features(image)
    np.testing.assert_array_equal(result.features, provider.features(clip_of(image), 0).features)
    assert result.stride == 4
    crop = provider.image_features(image[10:30, 20:52])  # position is the crop's own
    assert crop.features.shape == (13, 5, 8)
    corner = provider.image_features(image[:20, :32])
    for channel in ("x", "y"):
        index = provider.channel_names.index(channel)
        np.testing.assert_array_equal(crop.features[index], corner.features[index])
    as_float = provider.image_features(image.astype(np.float32))
    np.testing.assert_allclose(as_float.features, result.features, atol=1e-5)


def test_image_features_refuse_a_depth_channel() -> None:
    image, _ = two_region_image(32, 48)
    with pytest.raises(VpsbenchError, match="no depth channel"):
        HandcraftedFeatures(depth=HalfDepth()).image_features(image)
