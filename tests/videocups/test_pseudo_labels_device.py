"""``PseudoLabelSettings.device`` runs the CRF and region growing in torch: same pseudo-labels."""

from __future__ import annotations

from typing import ClassVar, cast

import numpy as np
import pytest

pytest.importorskip("torch")

from vpsbench_methods.videocups.pseudo_labels import CueSet, PseudoLabelSettings, clip_pseudo_labels
from vpsbench_methods.videocups.semantics import (
    fit_pseudo_classes,
    low_resolution_features,
    sample_feature_vectors,
)

from tests.videocups.test_pseudo_labels import NoFlow, street_image
from vpsbench.cues import DepthMotion, DepthProvider, VideoClip, make_cue
from vpsbench.cues.base import FeatureProvider
from vpsbench.datasets.base import Dataset
from vpsbench.video import FrameRef, SequenceRef


class MovingBlobs(DepthProvider):
    """Two moving blobs at different depths in front of a far background."""

    name: ClassVar[str] = "test-moving-blobs"
    description: ClassVar[str] = "test stub"

    def depth_motion(self, clip: VideoClip, t: int) -> DepthMotion:
        height, width = clip.image(t).shape[:2]
        depth = np.full((height, width), 50.0, np.float32)
        motion = np.zeros((height, width), np.float32)
        depth[10:25, 5 + t : 30 + t], motion[10:25, 5 + t : 30 + t] = 8.0, 0.9
        depth[28:40, 50:80], motion[28:40, 50:80] = 20.0, 0.8
        return DepthMotion(depth, motion)


def test_torch_device_gives_the_numpy_pseudo_labels() -> None:
    images = {t: np.roll(street_image(), t, axis=1) for t in range(2)}
    frames = tuple(FrameRef("seq", str(t), t) for t in range(2))
    clip = VideoClip(cast(Dataset, None), "val", SequenceRef("seq", frames), _images=images)
    features = make_cue("features", "handcrafted", {})
    assert isinstance(features, FeatureProvider)
    samples = sample_feature_vectors(
        [low_resolution_features(features.image_features, images[0])[0]], 500
    )
    centroids = fit_pseudo_classes(samples, num_classes=5, seed=0)
    cues = CueSet(NoFlow(), MovingBlobs(), features)
    results = [
        clip_pseudo_labels(clip, cues, centroids, PseudoLabelSettings(device=device, radius=2))
        for device in (None, "cpu")
    ]
    for numpy_frame, torch_frame in zip(*results, strict=True):
        np.testing.assert_array_equal(torch_frame.semantic, numpy_frame.semantic)
        np.testing.assert_array_equal(torch_frame.instance, numpy_frame.instance)
    assert results[0][0].instance.max() >= 2  # both blobs became instances
