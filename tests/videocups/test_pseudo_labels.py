"""VideoCUPS stage 1 settings and the frame semantics: one composition of Eq. 2's inference."""

from __future__ import annotations

from typing import ClassVar, cast

import numpy as np
import pytest
from vpsbench_methods.videocups.plugin import VideoCupsConfig
from vpsbench_methods.videocups.pseudo_labels import CueSet, PseudoLabelSettings, frame_semantics
from vpsbench_methods.videocups.semantics import (
    fit_pseudo_classes,
    low_resolution_features,
    low_resolution_log_probabilities,
    sample_feature_vectors,
    sliding_window_log_probabilities,
)

from vpsbench.cues import DepthMotion, DepthProvider, FlowProvider, VideoClip, make_cue
from vpsbench.cues.base import FeatureProvider, Flow
from vpsbench.datasets.base import Dataset
from vpsbench.errors import VpsbenchError
from vpsbench.methods.base import build_config
from vpsbench.video import FrameRef, SequenceRef


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["window=abc"], "window='abc': expected auto or a positive integer"),
        (["window_stride=0"], "window_stride='0'"),
        (["window=100", "window_stride=200"], "must not exceed window=100"),
        (["low_scale=0"], "low_scale=0.0: expected a number in"),
        (["low_scale=1.5"], "low_scale=1.5"),
        (["low_stride=8"], "expected KEY=VALUE"),  # the two-stride settings are gone
        (["high_stride=2"], "expected KEY=VALUE"),
    ],
)
def test_a_bad_inference_setting_is_one_clear_error_when_the_config_is_built(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(VpsbenchError, match=message):
        build_config(VideoCupsConfig, overrides=overrides)


def test_inference_settings_reach_the_pseudo_label_stage() -> None:
    default = build_config(VideoCupsConfig).settings()
    assert (default.window, default.window_stride, default.low_scale) == (None, None, 0.5)
    chosen = build_config(
        VideoCupsConfig, {"window": 320}, ["window_stride=160", "low_scale=0.25"]
    ).settings()
    assert (chosen.window, chosen.window_stride, chosen.low_scale) == (320, 160, 0.25)


class ConstantDepth(DepthProvider):
    """The same depth everywhere (no motion)."""

    name: ClassVar[str] = "test-constant-depth"
    description: ClassVar[str] = "test stub"

    def __init__(self, value: float) -> None:
        self.value = value

    def depth_motion(self, clip: VideoClip, t: int) -> DepthMotion:
        shape = clip.image(t).shape[:2]
        return DepthMotion(np.full(shape, self.value, np.float32), np.zeros(shape, np.float32))


class NoFlow(FlowProvider):
    name: ClassVar[str] = "test-no-flow"
    description: ClassVar[str] = "test stub"

    def flow(self, clip: VideoClip, source: int, target: int) -> Flow:
        return np.zeros((*clip.image(source).shape[:2], 2), np.float32)


def street_image(height: int = 48, width: int = 96) -> np.ndarray:
    """Sky, a textured building band, a road: regions the handcrafted features separate."""
    rng = np.random.default_rng(0)
    image = np.empty((height, width, 3))
    image[: height // 3] = (120, 160, 230)
    image[height // 3 : 2 * height // 3] = (150, 90, 60)
    image[height // 3 : 2 * height // 3, ::4] = (60, 40, 30)
    image[2 * height // 3 :] = (90, 90, 95)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_frame_semantics_fuses_the_two_predictions_by_depth() -> None:
    image = street_image()
    clip = VideoClip(
        cast(Dataset, None),
        "val",
        SequenceRef("seq", (FrameRef("seq", "0", 0),)),
        _images={0: image},
    )
    features = make_cue("features", "handcrafted", {})
    assert isinstance(features, FeatureProvider)
    samples = sample_feature_vectors(
        [low_resolution_features(features.image_features, image)[0]], 500
    )
    centroids = fit_pseudo_classes(samples, num_classes=5, seed=0)
    low = np.argmax(low_resolution_log_probabilities(features.image_features, image, centroids), 0)
    high = np.argmax(sliding_window_log_probabilities(features.image_features, image, centroids), 0)
    assert np.mean(low != high) > 0.01  # two predictions, so the depth weight matters

    def labels(depth: float, **settings: bool) -> np.ndarray:
        cues = CueSet(NoFlow(), ConstantDepth(depth), features)
        depth_map = cues.depth.depth_motion(clip, 0).depth
        return frame_semantics(clip, 0, cues, centroids, depth_map, PseudoLabelSettings(**settings))

    np.testing.assert_array_equal(labels(0.0, crf=False), low)  # α = 1: P_low
    np.testing.assert_array_equal(labels(np.inf, crf=False), high)  # α = 0: P_high
    np.testing.assert_array_equal(labels(np.inf, crf=False, depth_guided=False), low)  # vanilla
    refined = labels(3.0)
    assert refined.shape == image.shape[:2] and refined.dtype == np.int32
