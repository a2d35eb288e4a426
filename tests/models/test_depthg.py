"""DepthG's STEGO head: projection, cosine cluster probe, linear probe, Lightning checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpsbench.cues.base import FeatureMap, MissingWeightsError  # noqa: E402
from vpsbench.models.checkpoints import CheckpointMismatchError  # noqa: E402
from vpsbench.models.depthg import (  # noqa: E402
    DepthGConfig,
    DepthGHead,
    depthg_backbone_arch,
    depthg_head_from_checkpoint,
    load_depthg_checkpoint,
)


class HydraConfigStandIn:
    """An arbitrary pickled object, as the hydra config Lightning keeps in ``hyper_parameters``."""

    def __init__(self) -> None:
        self.dim = 5


def _identity_head(centroids: list[list[float]]) -> DepthGHead:
    """A linear-projection head whose code is the feature itself and whose centroids are given."""
    dim = len(centroids[0])
    head = DepthGHead(
        DepthGConfig(
            feature_dim=dim, code_dim=dim, num_classes=len(centroids), nonlinear_projection=False
        )
    )
    with torch.no_grad():
        head.cluster1[0].weight.copy_(torch.eye(dim).view(dim, dim, 1, 1))
        head.cluster1[0].bias.zero_()
        head.cluster_probe.clusters.copy_(torch.tensor(centroids))
    return head


def _feature_map(vectors: list[list[list[float]]]) -> FeatureMap:
    """(h, w, C) nested lists → FeatureMap (C, h, w)."""
    array = np.asarray(vectors, dtype=np.float32).transpose(2, 0, 1)
    return FeatureMap(features=np.ascontiguousarray(array), stride=8)


def test_cluster_probe_is_argmax_of_cosine_similarity() -> None:
    head = _identity_head([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])
    features = _feature_map(
        [
            [[5, 0, 0, 0], [0, 0.1, 0, 0], [0, 0, 1, 0.9]],
            [[1, 2, 0, 0], [0, 0, 0, 3], [-1, 0, 0, 0.1]],
        ]
    )
    labels = head.predict(features, (2, 3))
    assert labels.dtype == np.int32
    # Magnitudes do not matter, only directions; [-1, 0, 0, .1] is nearest to [0, 0, 1, 1].
    assert labels.tolist() == [[0, 1, 2], [1, 2, 2]]


def test_code_is_upsampled_before_the_probe() -> None:
    head = _identity_head([[1, 0], [0, 1]])
    features = _feature_map([[[1, 0], [0, 1]]])  # left cell class 0, right cell class 1
    labels = head.predict(features, (4, 8))
    assert labels.shape == (4, 8)
    assert (labels[:, :4] == 0).all() and (labels[:, 4:] == 1).all()


def test_nonlinear_projection_adds_both_branches() -> None:
    torch.manual_seed(0)
    head = DepthGHead(DepthGConfig.tiny())
    features = torch.randn(1, 12, 3, 4)
    linear = head.cluster1[0]
    assert head.cluster2 is not None
    first, second = head.cluster2[0], head.cluster2[2]
    expected = linear(features) + second(torch.relu(first(features)))
    assert torch.allclose(head.code(features), expected, atol=1e-6)
    assert head.code(features).shape == (1, 5, 3, 4)


def test_linear_probe_and_flip_averaging() -> None:
    head = _identity_head([[1, 0], [0, 1]])
    with torch.no_grad():
        head.linear_probe.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]).view(2, 2, 1, 1))
        head.linear_probe.bias.zero_()
    features = _feature_map([[[1, 0], [-1, 0.5]]])
    assert head.predict(features, (1, 2), probe="linear").tolist() == [[1, 0]]
    assert head.predict(features, (1, 2)).tolist() == [[0, 1]]
    # The flipped frame's code, flipped back, is averaged in: [0, 1] and [-0.5, 0.75].
    mirrored = _feature_map([[[0, 1], [-1, 2]]])
    assert head.predict(features, (1, 2), flipped_features=mirrored).tolist() == [[1, 1]]
    same = _feature_map([[[-1, 0.5], [1, 0]]])  # the exact mirror image: no change
    assert head.predict(features, (1, 2), flipped_features=same).tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="probe"):
        head.predict(features, (1, 2), probe="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="features must be"):
        head.predict(_feature_map([[[1, 0, 0]]]), (1, 1))


def test_published_defaults_and_key_names() -> None:
    config = DepthGConfig()
    assert (config.feature_dim, config.code_dim, config.num_classes) == (768, 100, 27)
    shapes = {k: tuple(v.shape) for k, v in DepthGHead(config).published_state_dict().items()}
    assert shapes == {
        "net.cluster1.0.weight": (100, 768, 1, 1),
        "net.cluster1.0.bias": (100,),
        "net.cluster2.0.weight": (768, 768, 1, 1),
        "net.cluster2.0.bias": (768,),
        "net.cluster2.2.weight": (100, 768, 1, 1),
        "net.cluster2.2.bias": (100,),
        "cluster_probe.clusters": (27, 100),
        "linear_probe.weight": (27, 100, 1, 1),
        "linear_probe.bias": (27,),
    }


def _lightning_checkpoint(head: DepthGHead) -> dict[str, object]:
    """A DepthG-like Lightning checkpoint: the head plus DINO and training-only entries."""
    state = {
        **head.published_state_dict(),
        "net.model.blocks.0.attn.qkv.weight": torch.zeros(36, 12),
        "train_cluster_probe.clusters": torch.zeros(4, 5),
        "decoder.weight": torch.zeros(12, 5, 1, 1),
    }
    return {
        "state_dict": state,
        "hyper_parameters": {"cfg": HydraConfigStandIn()},
        "epoch": 3,
    }


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = DepthGHead(DepthGConfig.tiny())
    path = tmp_path / "depthg.ckpt"
    torch.save(_lightning_checkpoint(head), path)
    torch.manual_seed(1)
    fresh = DepthGHead(DepthGConfig.tiny())
    load_depthg_checkpoint(fresh, path)
    features = FeatureMap(np.random.default_rng(0).normal(size=(12, 4, 6)).astype(np.float32), 8)
    for probe in ("cluster", "linear"):
        assert np.array_equal(
            fresh.predict(features, (16, 24), probe=probe),
            head.predict(features, (16, 24), probe=probe),
        )
    state = _lightning_checkpoint(head)["state_dict"]
    assert isinstance(state, dict)
    assert DepthGConfig.from_state_dict(state) == DepthGConfig.tiny()
    sized = depthg_head_from_checkpoint(path)
    assert sized.config == DepthGConfig.tiny()
    assert np.array_equal(sized.predict(features, (8, 8)), head.predict(features, (8, 8)))


def test_backbone_arch_is_read_off_the_featurizer(tmp_path: Path) -> None:
    # DepthG's Cityscapes model keeps a frozen ViT-B/8 under net.model: 768 wide, 8 px patches.
    head = DepthGHead(DepthGConfig.tiny())
    checkpoint = _lightning_checkpoint(head)
    path = tmp_path / "depthg.ckpt"
    torch.save(checkpoint, path)
    assert depthg_backbone_arch(path) is None  # no patch embedding stored
    state = checkpoint["state_dict"]
    assert isinstance(state, dict)
    state["net.model.patch_embed.proj.weight"] = torch.zeros(768, 3, 8, 8)
    torch.save(checkpoint, path)
    assert depthg_backbone_arch(path) == "vitb8"
    state["net.model.patch_embed.proj.weight"] = torch.zeros(384, 3, 16, 16)
    torch.save(checkpoint, path)
    assert depthg_backbone_arch(path) == "vits16"


def test_checkpoint_errors(tmp_path: Path) -> None:
    head = DepthGHead(DepthGConfig.tiny())
    with pytest.raises(MissingWeightsError, match="depthg"):
        load_depthg_checkpoint(head, tmp_path / "absent.ckpt")
    checkpoint = _lightning_checkpoint(head)
    state = checkpoint["state_dict"]
    assert isinstance(state, dict)
    del state["net.cluster2.2.bias"]
    state["cluster_probe.clusters"] = torch.zeros(7, 5)
    path = tmp_path / "bad.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_depthg_checkpoint(head, path)
    assert "cluster2.2.bias" in str(error.value) and "cluster_probe.clusters" in str(error.value)
    state["net.cross_attn.in_proj_weight"] = torch.zeros(3)
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointMismatchError, match="dino_depth"):
        load_depthg_checkpoint(head, path)
