"""DepthG's training loss (``vpsbench_methods.videocups.depthg_training``) against
cups/external/depthg.

Upstream's ``ContrastiveCorrelationLoss`` (``src/modules.py``, with the depth-feature correlation
of ``depth_feat_correlation_loss``) and its ``ClusterLookup`` run on the same batch as ours —
features, codes, the nearest-neighbour positives' features and codes, depth — with torch's
global generator seeded identically before each, so both draw the same sample grids and negative
permutations (uniform sampling), or both sample by farthest points of the depth point cloud
(``depth_sampling: fps``). Each term (``pos_intra``, ``pos_inter``, ``neg_inter``, ``depth_feat``,
the cluster probe's loss), the weighted total of ``LitUnsupervisedSegmenter.training_step`` and
the gradients of the total with respect to both codes must agree within 1e-5. Configurations:
DepthG's published Cityscapes run (``paper_reproduction.sh``: pointwise off, uniform sampling),
its Potsdam run (pointwise on, farthest-point sampling) and the other clamp settings.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
omegaconf = pytest.importorskip("omegaconf")

import numpy as np  # noqa: E402
from vpsbench_methods.videocups.depthg_training import (  # noqa: E402
    RESUME_CHECKPOINT,
    DepthGLossConfig,
    DepthGTrainingConfig,
    TrainingSet,
    cluster_probe_loss,
    depthg_loss,
    farthest_point_grid,
    train_depthg_head,
)

from tests.equivalence.test_depthg import (  # noqa: E402
    build_segmenter,
    image_tensor,
    modules,  # noqa: F401  (the fixture: upstream modules.py)
    write_lightning_checkpoint,
)
from vpsbench.models.depthg import (  # noqa: E402
    DepthGConfig,
    DepthGHead,
    depthg_head_from_checkpoint,
)

TOLERANCE = 1e-5
MEASURED: dict[str, float] = {}
CITYSCAPES = DepthGLossConfig()
POTSDAM = DepthGLossConfig(  # paper_reproduction.sh, "Potsdam ViT-S"
    pos_intra_weight=0.61,
    pos_intra_shift=0.2,
    pos_inter_weight=0.34,
    pos_inter_shift=0.09,
    neg_inter_weight=0.72,
    neg_inter_shift=0.63,
    depth_feat_weight=0.13,
    depth_feat_shift=0.14,
    pointwise=True,
    depth_sampling="fps",
)
CLAMPS = replace(CITYSCAPES, zero_clamp=False, stabilize=True, pointwise=True, neg_samples=2)


@pytest.fixture(scope="module", autouse=True)
def report_measured() -> Iterator[None]:
    yield
    print("\nmeasured max abs differences:", MEASURED)  # shown with -s


def upstream_cfg(config: DepthGLossConfig) -> object:
    """The hydra keys upstream's loss reads, with our values (``stabalize`` as upstream spells)."""
    values = asdict(config)
    values["stabalize"] = values.pop("stabilize")
    values.update(use_salience=False, depth_feat_correlation_loss=True, fps_gpu=False)
    return omegaconf.OmegaConf.create(values)


def batch(seed: int, size: int) -> dict[str, torch.Tensor]:
    """Features (4, 16, s, s), codes (4, 6, s, s) with gradients, depth (4, 1, 4s, 4s)."""
    generator = torch.Generator().manual_seed(seed)
    depth = torch.rand(4, 1, 4 * size, 4 * size, generator=generator) * 50 + 1
    depth[:, :, : size // 2] = 0.0  # a band without depth: the depth correlation is 0 there
    depth_pos = torch.rand(4, 1, 4 * size, 4 * size, generator=generator) * 50 + 1
    tensors = {
        "features": torch.randn(4, 16, size, size, generator=generator),
        "features_pos": torch.randn(4, 16, size, size, generator=generator),
        "code": torch.randn(4, 6, size, size, generator=generator),
        "code_pos": torch.randn(4, 6, size, size, generator=generator),
        "depth": depth,
        "depth_pos": depth_pos,
    }
    tensors["code"].requires_grad_(True)
    tensors["code_pos"].requires_grad_(True)
    return tensors


def record(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    """Max abs difference, recorded for the report and checked against the tolerance."""
    assert ours.shape == theirs.shape, f"{what}: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    difference = float((ours.detach() - theirs.detach()).abs().max())
    MEASURED[what] = max(difference, MEASURED.get(what, 0.0))
    assert difference <= TOLERANCE, f"{what}: max abs difference {difference:.3g}"


def upstream_total(cfg: object, terms: tuple[torch.Tensor, ...], cluster: torch.Tensor) -> object:
    """``training_step``'s sum with ``depth_feat_correlation_loss`` (lhp off) + cluster loss."""
    pos_intra, pos_inter, neg_inter, depth_feat = terms
    weighted = (
        cfg.pos_inter_weight * pos_inter  # type: ignore[attr-defined]
        + cfg.pos_intra_weight * pos_intra  # type: ignore[attr-defined]
        + cfg.neg_inter_weight * neg_inter  # type: ignore[attr-defined]
        + cfg.depth_feat_weight * depth_feat  # type: ignore[attr-defined]
    ) * (cfg.correspondence_weight - 0.0)  # type: ignore[attr-defined]
    return weighted + cluster


@pytest.mark.parametrize(
    ("name", "config", "size"),
    [("cityscapes", CITYSCAPES, 7), ("potsdam-fps", POTSDAM, 12), ("clamps", CLAMPS, 5)],
)
def test_loss_terms_total_and_gradients_equal_upstream(
    modules: types.ModuleType,  # noqa: F811
    name: str,
    config: DepthGLossConfig,
    size: int,
) -> None:
    cfg = upstream_cfg(config)
    data = batch(seed=len(name), size=size)
    torch.manual_seed(11)
    head = DepthGHead(DepthGConfig(feature_dim=16, code_dim=6, num_classes=5))
    probe = modules.ClusterLookup(6, 5)
    with torch.no_grad():
        probe.clusters.copy_(head.cluster_probe.clusters)

    torch.manual_seed(123)
    upstream = modules.ContrastiveCorrelationLoss(cfg)(
        data["features"],
        data["features_pos"],
        None,
        None,
        data["code"],
        data["code_pos"],
        depth=data["depth"],
        depth_pos=data["depth_pos"],
    )
    pos_intra, _, pos_inter, _, neg_inter, _, depth_feat, _ = upstream
    theirs_terms = (pos_intra.mean(), pos_inter.mean(), neg_inter.mean(), depth_feat.mean())
    their_cluster, _ = probe(data["code"].detach().clone(), None)
    theirs = upstream_total(cfg, theirs_terms, their_cluster)
    their_grads = torch.autograd.grad(theirs, [data["code"], data["code_pos"]])  # type: ignore[arg-type]

    torch.manual_seed(123)
    ours = depthg_loss(
        data["features"],
        data["features_pos"],
        data["code"],
        data["code_pos"],
        data["depth"],
        config,
        depth_pos=data["depth_pos"],
        cluster=cluster_probe_loss(head, data["code"].detach().clone()),
    )
    our_grads = torch.autograd.grad(ours.total, [data["code"], data["code_pos"]])

    for label, mine, reference in zip(
        ("pos_intra", "pos_inter", "neg_inter", "depth_feat"),
        (ours.pos_intra, ours.pos_inter, ours.neg_inter, ours.depth_feat),
        theirs_terms,
        strict=True,
    ):
        record(mine, reference, f"{name} {label}")
    record(ours.cluster, their_cluster, f"{name} cluster")
    record(ours.total, theirs, f"{name} total")  # type: ignore[arg-type]
    record(our_grads[0], their_grads[0], f"{name} d total / d code")
    record(our_grads[1], their_grads[1], f"{name} d total / d code_pos")
    assert float(ours.total.abs()) > 1e-3  # not a comparison of zeros
    assert float(our_grads[1].abs().max()) > 0  # the positives' codes are trained


def test_farthest_point_grid_equals_upstream(modules: types.ModuleType) -> None:  # noqa: F811
    """The sampled grid itself, on depth with ties (a flat band) and structure."""
    generator = torch.Generator().manual_seed(5)
    depth = torch.rand(2, 1, 48, 56, generator=generator) * 20 + 0.5
    depth[:, :, 30:] = 3.0
    features = torch.zeros(2, 4, 12, 14)
    theirs = modules.farthest_point_sampling_depth(features, depth, n_samples=11) * 2 - 1
    ours = farthest_point_grid(features, depth, 11)
    assert torch.equal(ours, theirs)


def test_published_config_is_the_cityscapes_run() -> None:
    """Spot check of the defaults against paper_reproduction.sh (Cityscapes ViT-B)."""
    config = DepthGTrainingConfig()
    assert (config.code_dim, config.batch_size, config.decay_every) == (100, 32, 400)
    assert config.loss.depth_sampling == "none" and not config.loss.pointwise
    assert (config.loss.depth_feat_weight, config.loss.depth_feat_shift) == (0.09, 0.03)


def test_training_step_equals_upstream(
    modules: types.ModuleType,  # noqa: F811
    tmp_path: Path,
) -> None:
    """One batch of our trainer = one ``training_step`` of upstream's featurizer and losses.

    Upstream: ``DinoFeaturizer`` in train mode (its three channel-dropout draws), the loss, the
    cluster probe on detached codes, Adam on ``net`` (lr 5e-4) and on the cluster probe (5e-3),
    all after ``torch.manual_seed(seed)``. Ours: the same weights read from the Lightning .ckpt
    through ``depthg_head_from_checkpoint``, trained one batch by ``train_depthg_head`` on the
    DINO features of the same images. Compared: the loss and every parameter after the step.
    """
    segmenter = build_segmenter(modules, tmp_path)  # ViT-S/16, code dim 8, 5 + 2 clusters
    path = tmp_path / "depthg.ckpt"
    write_lightning_checkpoint(segmenter, path)
    initial = depthg_head_from_checkpoint(path)
    images = torch.cat([image_tensor(64, 96, seed=20 + index)[1] for index in range(4)])
    depth = torch.rand(4, 1, 64, 96, generator=torch.Generator().manual_seed(2)) * 30 + 1
    with torch.no_grad():
        features, _ = segmenter.net.eval()(images)  # the frozen ViT's features, no dropout
    neighbours = np.array([[0, 2], [1, 3], [2, 0], [3, 1]], dtype=np.int64)
    data = TrainingSet(features, depth, neighbours, stride=16)
    config = DepthGTrainingConfig(
        code_dim=8, num_classes=7, batches=1, batch_size=2, checkpoint_every=1, seed=7
    )
    ours = train_depthg_head(data, config, tmp_path / "ours", initial=initial)
    chosen = np.random.default_rng(7).permutation(4)[:2]  # the trainer's first batch
    positives = neighbours[chosen, 1]

    net, probe = segmenter.net.train(), segmenter.cluster_probe
    net_optim = torch.optim.Adam(list(net.parameters()), lr=5e-4)
    probe_optim = torch.optim.Adam(list(probe.parameters()), lr=5e-3)
    cfg = upstream_cfg(config.loss)
    torch.manual_seed(7)
    feats, code, _ = net(images[chosen])
    feats_pos, code_pos, _ = net(images[positives])
    upstream = modules.ContrastiveCorrelationLoss(cfg)(
        feats,
        feats_pos,
        None,
        None,
        code,
        code_pos,
        depth=depth[chosen],
        depth_pos=depth[positives],
    )
    terms = (upstream[0].mean(), upstream[2].mean(), upstream[4].mean(), upstream[6].mean())
    cluster, _ = probe(code.detach().clone(), None)
    total = upstream_total(cfg, terms, cluster)
    net_optim.zero_grad()
    probe_optim.zero_grad()
    total.backward()  # type: ignore[attr-defined]
    net_optim.step()
    probe_optim.step()

    losses = torch.load(tmp_path / "ours" / RESUME_CHECKPOINT, weights_only=True)["losses"]
    record(torch.tensor(losses[0]), total.detach(), "training step loss")  # type: ignore[attr-defined]
    upstream_state = segmenter.state_dict()
    for key, value in ours.published_state_dict().items():
        if key.startswith("linear_probe."):
            assert torch.equal(value, upstream_state[key]), key  # not trained (needs labels)
        else:
            record(value, upstream_state[key], f"after one step: {key}")
            assert not torch.equal(value, initial.published_state_dict()[key]), key
