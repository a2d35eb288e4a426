"""Training of S's DepthG head: resume, learning, code size, schedule, and S on a synthetic clip."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from vpsbench_methods.videocups.depthg_training import (
    FINAL_CHECKPOINT,
    RESUME_CHECKPOINT,
    DepthGTrainingConfig,
    TrainingSet,
    build_training_set,
    code_extractor,
    five_crops,
    nearest_neighbours,
    train_depthg_head,
)
from vpsbench_methods.videocups.semantics import (
    fit_pseudo_classes,
    low_resolution_features,
    sample_feature_vectors,
    semantic_pseudo_labels,
)

from vpsbench.clustering import normalize_rows
from vpsbench.cues import VideoClip, make_cue
from vpsbench.cues.base import DepthProvider, FeatureProvider
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.errors import VpsbenchError
from vpsbench.models.depthg import depthg_head_from_checkpoint

TINY = DepthGTrainingConfig(
    code_dim=5, num_classes=3, batches=12, batch_size=4, checkpoint_every=4, num_neighbors=2
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blocks(views: int, seed: int) -> TrainingSet:
    """Views (C=6, 12×12) made of three feature prototypes in random vertical bands, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(3, 6, generator=generator) * 2
    features = torch.empty(views, 6, 12, 12)
    for view in range(views):
        cut = int(torch.randint(3, 9, (1,), generator=generator))
        first, second = torch.randperm(3, generator=generator)[:2].tolist()
        features[view, :, :, :cut] = prototypes[first][:, None, None]
        features[view, :, :, cut:] = prototypes[second][:, None, None]
    features += 0.3 * torch.randn(features.shape, generator=generator)
    depth = torch.rand(views, 1, 24, 24, generator=generator) + 0.5
    return TrainingSet(features, depth, nearest_neighbours(features, 3), stride=4)


def test_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = blocks(10, seed=0)
    straight = train_depthg_head(data, TINY, tmp_path / "straight")
    train_depthg_head(data, TINY, tmp_path / "resumed", stop_after=6)
    assert not (tmp_path / "resumed" / FINAL_CHECKPOINT).exists()
    torch.manual_seed(999)  # the caller's RNG state must not matter
    resumed = train_depthg_head(data, TINY, tmp_path / "resumed")
    for (key, value), other in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(value, other), key
    saved = [
        torch.load(tmp_path / name / RESUME_CHECKPOINT, weights_only=True)
        for name in ("straight", "resumed")
    ]
    assert saved[0]["losses"] == saved[1]["losses"] and len(saved[0]["losses"]) == 12
    # the finished head is read back through the public DepthG loader, not retrained
    again = train_depthg_head(data, replace(TINY, seed=5), tmp_path / "straight")
    for (key, value), other in zip(
        straight.state_dict().items(), again.state_dict().values(), strict=True
    ):
        assert torch.equal(value, other), key


def test_other_settings_do_not_resume_silently(tmp_path: Path) -> None:
    data = blocks(10, seed=0)
    train_depthg_head(data, TINY, tmp_path, stop_after=4)
    with pytest.raises(VpsbenchError, match="other DepthG training settings"):
        train_depthg_head(data, replace(TINY, learning_rate=1e-3), tmp_path)


def test_seed_changes_the_run_and_same_seed_repeats_it(tmp_path: Path) -> None:
    data = blocks(10, seed=0)
    first = train_depthg_head(data, TINY, tmp_path / "a").cluster1[0].weight
    second = train_depthg_head(data, TINY, tmp_path / "b").cluster1[0].weight
    other = train_depthg_head(data, replace(TINY, seed=1), tmp_path / "c").cluster1[0].weight
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_loss_decreases_on_a_tiny_problem(tmp_path: Path) -> None:
    config = replace(TINY, batches=80, checkpoint_every=80, batch_size=8, learning_rate=5e-3)
    train_depthg_head(blocks(24, seed=1), config, tmp_path)
    losses = torch.load(tmp_path / RESUME_CHECKPOINT, weights_only=True)["losses"]
    assert np.mean(losses[-15:]) < np.mean(losses[:15]) - 0.05


def test_depth_weight_schedule_follows_lightnings_global_step() -> None:
    """Upstream's rule replayed: global step 3t at batch t, decay after the loss when % 400 == 0."""
    config = DepthGTrainingConfig()
    weight, shift = config.loss.depth_feat_weight, config.loss.depth_feat_shift
    for batch in range(1300):
        assert config.depth_feat_values(batch) == (weight, shift), batch
        global_step = 3 * batch
        if global_step % 400 == 0 and global_step > 0:
            weight, shift = weight * 0.8, shift * 0.8
    assert config.depth_feat_values(1201)[0] < config.depth_feat_values(1200)[0]


def test_five_crops_cover_corners_and_centre() -> None:
    assert five_crops(40, 100, 0.5) == [
        (0, 0, 20),
        (0, 80, 20),
        (20, 0, 20),
        (20, 80, 20),
        (10, 40, 20),
    ]


@pytest.fixture(scope="module")
def synthetic(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[VideoClip, FeatureProvider, DepthProvider]:
    root = tmp_path_factory.mktemp("synthetic")
    prepare_synthetic(
        root, videos=1, frames=4, height=48, width=96, seed=3, splits=["val"], workers=1
    )
    dataset = open_dataset("synthetic", root)
    clip = VideoClip(dataset, "val", dataset.sequences("val")[0])
    features, depth = make_cue("features", "handcrafted"), make_cue("depth", "oracle")
    assert isinstance(features, FeatureProvider) and isinstance(depth, DepthProvider)
    return clip, features, depth


def test_semantic_model_on_a_synthetic_clip(
    synthetic: tuple[VideoClip, FeatureProvider, DepthProvider], tmp_path: Path
) -> None:
    """Head trained on handcrafted features + oracle depth → k-means on codes → Eq. 2 labels."""
    clip, provider, depth_cue = synthetic
    config = replace(DepthGTrainingConfig.synthetic(), batches=10, checkpoint_every=5)
    frames = [(clip.image(t), depth_cue.depth_motion(clip, t).depth) for t in range(len(clip))]
    data = build_training_set(frames, provider.image_features, config)
    assert data.features.shape[0] == 5 * len(clip)
    assert data.depth.shape[1:] == (1, 64, 64)
    head = train_depthg_head(data, config, tmp_path)
    extract = code_extractor(head, provider.image_features)
    code = extract(clip.image(0))
    plain = provider.image_features(clip.image(0))
    assert code.features.shape == (32, *plain.features.shape[1:])  # the configured code size
    assert code.stride == plain.stride

    reread = depthg_head_from_checkpoint(tmp_path / FINAL_CHECKPOINT)
    assert np.array_equal(
        code_extractor(reread, provider.image_features)(clip.image(0)).features, code.features
    )

    maps = (low_resolution_features(extract, clip.image(t), 0.5)[0] for t in range(len(clip)))
    centroids = normalize_rows(fit_pseudo_classes(sample_feature_vectors(maps, 200), 6))
    assert centroids.shape == (6, 32)
    depth = depth_cue.depth_motion(clip, 0).depth
    labels = semantic_pseudo_labels(clip.image(0), extract, centroids, depth, use_crf=False)
    assert labels.shape == clip.image(0).shape[:2]
    assert labels.min() >= 0 and labels.max() < 6 and len(np.unique(labels)) > 1
