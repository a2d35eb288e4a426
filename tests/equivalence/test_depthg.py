"""DepthG's head (``vpsbench.models.depthg``) against cups/external/depthg (DepthG as CUPS uses it).

Upstream's ``src/modules.py`` builds the Lightning module's networks with seeded random weights:
the ``dino`` featurizer (DINO ViT ``net.model`` + projection ``net.cluster1``/``net.cluster2``),
``train_cluster_probe``, ``cluster_probe`` (``ClusterLookup``), ``linear_probe`` and ``decoder``,
created in ``LitUnsupervisedSegmenter.__init__``'s order (``train_segmentation.py``; Lightning,
wandb and hydra are not needed to build them). The weights are written in the container
Lightning's ``ModelCheckpoint`` writes (``epoch``, ``global_step``, ``state_dict``, ``loops``,
``callbacks``, ``optimizer_states``, ``hparams_name`` and ``hyper_parameters`` holding the hydra
``DictConfig``), read back through ``depthg_head_from_checkpoint`` (the baseline's
``depthg_weights`` setting) and compared on the same DINO features: the code, the cluster
probe's inner products, probabilities and log-probabilities (``ClusterLookup.forward`` with
``alpha`` as CUPS calls it, 2) and the argmax maps after the bilinear upsampling, with and without
the horizontal-flip averaging of CUPS' ``DepthG`` wrapper (``cups/semantics/model.py``). Also:
the full-size Cityscapes model (ViT-B/8, code dim 100, 27 classes), a ``linear`` projection, the
refusal of the depth-input featurizer (arch ``dino_depth``), and frame → ``dino`` cue → head
against upstream's featurizer on the same frame, including a frame the cue pads to 16 px.
"""

from __future__ import annotations

import importlib
import math
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

torch = pytest.importorskip("torch")
omegaconf = pytest.importorskip("omegaconf")

import torch.nn.functional as F  # noqa: E402, N812

from tests.equivalence.upstream import (  # noqa: E402
    install_standins,
    isolated_import,
    require,
    require_packages,
)
from vpsbench.cues import VideoClip  # noqa: E402
from vpsbench.cues.base import FeatureMap  # noqa: E402
from vpsbench.cues.dino import DinoProvider  # noqa: E402
from vpsbench.datasets.base import Dataset  # noqa: E402
from vpsbench.models.checkpoints import CheckpointMismatchError, read_checkpoint_safely  # noqa: E402
from vpsbench.models.depthg import (  # noqa: E402
    DepthGConfig,
    DepthGHead,
    depthg_head_from_checkpoint,
    read_depthg_state_dict,
)
from vpsbench.video import FrameRef, SequenceRef  # noqa: E402

TOLERANCE = 1e-4
NEAR_TIE = 1e-5  # cosine margin below which float noise of the inputs may flip an argmax
ALPHA = 2.0  # CUPS' DepthG wrapper: cluster_probe(code, 2, log_probs=True)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# Keys of the Lightning module's state dict that the head does not use, by prefix.
DROPPED = ("net.model.", "train_cluster_probe.", "decoder.")
MEASURED: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def report_measured() -> Iterator[None]:
    yield
    print("\nmeasured max abs differences:", MEASURED)  # shown with -s


class _Metric(torch.nn.Module):
    """Inert ``torchmetrics.Metric``: upstream utils.py subclasses it (UnsupervisedMetrics)."""


class _Normalize:
    """Inert ``torchvision.transforms.Normalize``: utils.py builds one at import time."""

    def __init__(self, mean: object, std: object) -> None:
        self.mean, self.std = mean, std


@pytest.fixture(scope="module")
def modules() -> types.ModuleType:
    """Upstream ``src/modules.py`` (with its ``utils`` and ``dino.vision_transformer``).

    utils.py imports torchmetrics, torchvision.transforms and torch.utils.tensorboard for training
    and logging only; inert stand-ins are put into ``sys.modules`` while it is imported.
    """
    src = require("cups", "external", "depthg", "src")
    require_packages("PIL", "scipy", "matplotlib")
    install_standins()
    import torchvision  # the test-only stand-in

    torchmetrics = types.ModuleType("torchmetrics")
    torchmetrics.Metric = _Metric  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.Normalize = _Normalize  # type: ignore[attr-defined]
    tensorboard = types.ModuleType("torch.utils.tensorboard")
    summary = types.ModuleType("torch.utils.tensorboard.summary")
    summary.hparams = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    stand_ins = {
        "torchmetrics": torchmetrics,
        "torchvision.transforms": transforms,
        "torch.utils.tensorboard": tensorboard,
        "torch.utils.tensorboard.summary": summary,
    }
    # third-party packages utils.py imports: loaded first, so isolated_import keeps them loaded
    for package in ("PIL.Image", "scipy.optimize", "matplotlib.pyplot", "torch.utils.data"):
        importlib.import_module(package)
    with pytest.MonkeyPatch.context() as patch:
        for name, module in stand_ins.items():
            patch.setitem(sys.modules, name, module)
        patch.setattr(torchvision, "transforms", transforms, raising=False)
        with isolated_import(src):
            return importlib.import_module("modules")


def depthg_cfg(model_type: str, patch: int, dim: int, extra_clusters: int, pretrained: Path) -> Any:
    """The hydra config DepthG trains with (train_config_cityscapes.yml's keys that __init__ reads).

    As ``my_app`` leaves it: struct mode off and ``full_name``/``submitting_to_aml`` added.
    """
    cfg = omegaconf.OmegaConf.create(
        {
            "output_root": "/path/to/outputs",
            "data_dir": "/path/to/datasets",
            "pretrained_weights": str(pretrained),
            "experiment_name": "depthg",
            "log_dir": "cityscapes",
            "dataset_name": "cityscapes",
            "arch": "dino",
            "model_type": model_type,
            "dino_patch_size": patch,
            "dino_feat_type": "feat",
            "projection_type": "nonlinear",
            "dropout": True,
            "continuous": True,
            "dim": dim,
            "extra_clusters": extra_clusters,
            "use_depth": True,
            "use_depth_only_intra": False,
            "depth_feat_correlation_loss": True,
            "depth_sampling": "fps",
            "lhp": False,
            "guidance": "none",
            "res": 224,
            "crf_samples": 1000,
            "alpha": 0.5,
            "beta": 0.15,
            "gamma": 0.05,
            "w1": 10.0,
            "w2": 3.0,
            "shift": 0.0,
            "feature_samples": 11,
            "neg_samples": 5,
            "pos_intra_shift": 0.18,
            "pos_inter_shift": 0.11,
            "neg_inter_shift": 0.46,
            "pointwise": True,
            "zero_clamp": True,
            "stabalize": False,
            "use_salience": False,
            "lr": 5e-4,
            "rec_weight": 0.0,
            "batch_size": 32,
            "max_steps": 7000,
        }
    )
    omegaconf.OmegaConf.set_struct(cfg, False)
    cfg.full_name = "cityscapes/cityscapes_depthg"
    cfg.submitting_to_aml = False
    return cfg


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Seeded random values for every parameter: norms near 1, small weights and biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith(("pos_embed", "cls_token")):
                parameter.copy_(0.5 * noise)
            elif "norm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                parameter.copy_(0.1 * noise)
            else:
                parameter.copy_(0.05 * noise)


def write_dino_teacher(modules: types.ModuleType, model_type: str, patch: int, path: Path) -> None:
    """The DINO training checkpoint ``cfg.pretrained_weights`` names (``teacher``, DDP names)."""
    torch.manual_seed(3)
    vit = modules.vits.__dict__[model_type](patch_size=patch, num_classes=0)
    randomise(vit, 4)
    teacher = {f"module.backbone.{key}": value for key, value in vit.state_dict().items()}
    torch.save({"teacher": teacher}, path)


class Segmenter(torch.nn.Module):
    """The networks ``LitUnsupervisedSegmenter.__init__`` creates (arch dino/dino_depth), in order.

    Without the optional LHP module (``cfg.lhp``; it needs CUDA, and CUPS' DepthG wrapper calls
    ``model.net``, which does not use it).

    The metrics (torchmetrics states are not persistent) and the losses own no state-dict
    entries; the module's state dict is therefore the Lightning checkpoint's ``state_dict``.
    """

    def __init__(self, modules: types.ModuleType, n_classes: int, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_classes = n_classes
        dim = cfg.dim if cfg.continuous else n_classes
        if cfg.arch == "dino":
            self.net = modules.DinoFeaturizer(dim, cfg)
        else:  # "dino_depth"
            self.net = modules.DinoFeaturizerWithDepth(dim, cfg, 384, (28, 28))
        self.train_cluster_probe = modules.ClusterLookup(dim, n_classes)
        self.cluster_probe = modules.ClusterLookup(dim, n_classes + cfg.extra_clusters)
        self.linear_probe = torch.nn.Conv2d(dim, n_classes, (1, 1))
        self.decoder = torch.nn.Conv2d(dim, self.net.n_feats, (1, 1))
        self.crf_loss_fn = modules.ContrastiveCRFLoss(
            cfg.crf_samples, cfg.alpha, cfg.beta, cfg.gamma, cfg.w1, cfg.w2, cfg.shift
        )
        self.contrastive_corr_loss_fn = modules.ContrastiveCorrelationLoss(cfg)
        self.linear_probe_loss_fn = torch.nn.CrossEntropyLoss()

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """``configure_optimizers``: net (+ decoder when rec_weight > 0), linear, cluster probe."""
        return [
            torch.optim.Adam(list(self.net.parameters()), lr=self.cfg.lr),
            torch.optim.Adam(list(self.linear_probe.parameters()), lr=5e-3),
            torch.optim.Adam(list(self.cluster_probe.parameters()), lr=5e-3),
        ]


def build_segmenter(
    modules: types.ModuleType,
    folder: Path,
    *,
    model_type: str = "vit_small",
    patch: int = 16,
    dim: int = 8,
    n_classes: int = 5,
    extra_clusters: int = 2,
    arch: str = "dino",
    projection: str = "nonlinear",
) -> Segmenter:
    """The upstream module with seeded random weights (the DINO backbone via pretrained_weights)."""
    teacher = folder / f"dino_{model_type}{patch}_teacher.pth"
    if not teacher.exists():
        write_dino_teacher(modules, model_type, patch, teacher)
    cfg = depthg_cfg(model_type, patch, dim, extra_clusters, teacher)
    cfg.arch = arch
    cfg.projection_type = projection
    torch.manual_seed(5)
    segmenter = Segmenter(modules, n_classes, cfg)
    generator = torch.Generator().manual_seed(6)
    with torch.no_grad():  # trained-looking heads: not the default init of each layer
        for name, parameter in segmenter.named_parameters():
            if not name.startswith("net.model."):
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.copy_((0.2 if "clusters" in name else 0.05) * noise)
    return segmenter.eval()


def write_lightning_checkpoint(segmenter: Segmenter, path: Path) -> None:
    """Write ``segmenter`` as pytorch_lightning's ModelCheckpoint does (trainer.save_checkpoint).

    ``save_hyperparameters()`` in ``__init__(n_classes, cfg)`` keeps both arguments; the hydra
    ``DictConfig`` is pickled with its omegaconf classes.
    """
    optimizers = segmenter.optimizers()
    for optimizer in optimizers:  # one training step, so that Adam has state
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.requires_grad:
                    parameter.grad = torch.zeros_like(parameter)
        optimizer.step()
        optimizer.zero_grad()
    monitor = "test/cluster/mIoU"
    callback = (
        f"ModelCheckpoint{{'monitor': '{monitor}', 'mode': 'max', 'every_n_train_steps': 5, "
        "'every_n_epochs': 0, 'train_time_interval': None}"
    )
    best = "/path/to/outputs/checkpoints/cityscapes/epoch=0-step=5.ckpt"
    progress = {"ready": 5, "started": 5, "processed": 5, "completed": 5}
    checkpoint = {
        "epoch": 0,
        "global_step": 5,
        "pytorch-lightning_version": "2.1.3",
        "state_dict": segmenter.state_dict(),
        "loops": {
            "fit_loop": {
                "state_dict": {},
                "epoch_loop.state_dict": {"_batches_that_stepped": 5},
                "epoch_loop.batch_progress": {
                    "total": dict(progress),
                    "current": dict(progress),
                    "is_last_batch": False,
                },
                "epoch_progress": {"total": {**progress, "completed": 0}, "current": progress},
            },
            "validate_loop": {"state_dict": {}, "batch_progress": {"total": progress}},
            "test_loop": {"state_dict": {}},
            "predict_loop": {"state_dict": {}},
        },
        "callbacks": {
            callback: {
                "monitor": monitor,
                "best_model_score": torch.tensor(12.5),
                "best_model_path": best,
                "current_score": torch.tensor(12.5),
                "dirpath": str(Path(best).parent),
                "best_k_models": {best: torch.tensor(12.5)},
                "kth_best_model_path": best,
                "kth_value": torch.tensor(12.5),
                "last_model_path": str(Path(best).parent / "last.ckpt"),
            }
        },
        "optimizer_states": [optimizer.state_dict() for optimizer in optimizers],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"n_classes": segmenter.n_classes, "cfg": segmenter.cfg},
    }
    torch.save(checkpoint, path)


def load_through_vpsbench(path: Path) -> DepthGHead:
    """The baseline's public path; fails if any pickled config object were built on the way."""

    def refuse(*_args: object) -> None:
        raise AssertionError("the loader unpickled the hydra DictConfig")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(omegaconf.DictConfig, "__setstate__", refuse)
        patch.setattr(omegaconf.DictConfig, "__init__", refuse)
        return depthg_head_from_checkpoint(path)


def image_tensor(height: int, width: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """A random RGB frame and its DINO input (ToTensor, ImageNet Normalize), (1, 3, H, W)."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    return image, (tensor - MEAN) / STD


def upstream_features_and_code(
    segmenter: Segmenter, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.net(img)`` in eval mode: the DINO features and the code (N, dim, h, w)."""
    with torch.no_grad():
        features, code = segmenter.net(images)
    return features, code


def feature_map(features: torch.Tensor, stride: int) -> FeatureMap:
    """The first image's features as the ``dino`` cue returns them."""
    return FeatureMap(np.ascontiguousarray(features[0].numpy(), dtype=np.float32), stride)


def max_difference(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> float:
    """Max abs difference (shapes must agree); recorded for the report and checked."""
    assert ours.shape == theirs.shape, f"{what}: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    difference = float((ours - theirs).abs().max())
    MEASURED[what] = max(difference, MEASURED.get(what, 0.0))
    assert difference <= TOLERANCE, f"{what}: max abs difference {difference:.3g}"
    return difference


def assert_same_labels(labels: np.ndarray, scores: torch.Tensor, what: str) -> None:
    """``labels`` equal upstream's argmax of ``scores`` (1, K, H, W) except at near-ties.

    Used where the inputs themselves differ by float noise (the ``dino`` cue's ViT against
    upstream's, < 1e-5): a pixel whose two best upstream scores are closer than ``NEAR_TIE`` may
    go either way; any other difference fails.
    """
    top = scores[0].topk(2, dim=0).values
    decided = (top[0] - top[1] > NEAR_TIE).numpy()
    expected = scores[0].argmax(0).numpy()
    assert labels.shape == expected.shape, f"{what}: {labels.shape} vs {expected.shape}"
    differing = labels != expected
    assert not (differing & decided).any(), f"{what}: {int((differing & decided).sum())} pixels"
    assert decided.mean() > 0.99, f"{what}: too many near-ties to compare"


@pytest.fixture(scope="module")
def small(
    modules: types.ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Segmenter, Path]:
    """A small real DepthG (ViT-S/16, code dim 8, 5 classes + 2 extra clusters) and its .ckpt."""
    folder = tmp_path_factory.mktemp("depthg")
    segmenter = build_segmenter(modules, folder)
    path = folder / "depthg.ckpt"
    write_lightning_checkpoint(segmenter, path)
    return segmenter, path


def test_lightning_checkpoint_loads_every_head_key(small: tuple[Segmenter, Path]) -> None:
    """No missing/unexpected keys; the DictConfig stays an inert placeholder; sizes read off."""
    segmenter, path = small
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # so the safe fallback reader is exercised
    raw = read_checkpoint_safely(path)
    assert not isinstance(raw["hyper_parameters"]["cfg"], omegaconf.DictConfig)
    upstream = segmenter.state_dict()
    published = read_depthg_state_dict(path)
    kept = {key for key in upstream if not key.startswith(DROPPED)}
    assert set(published) == kept
    assert len(kept) == 9
    for key in kept:
        assert torch.equal(published[key], upstream[key]), key
    head = load_through_vpsbench(path)
    assert head.config == DepthGConfig(
        feature_dim=384, code_dim=8, num_classes=5, extra_clusters=2, nonlinear_projection=True
    )
    assert set(head.published_state_dict()) == kept
    for key, value in head.published_state_dict().items():
        assert torch.equal(value, upstream[key]), key


def test_head_matches_upstream_on_the_same_features(small: tuple[Segmenter, Path]) -> None:
    """Code, inner products, (log-)probabilities and argmax maps, with and without flipping."""
    segmenter, path = small
    head = load_through_vpsbench(path)
    _, images = image_tensor(64, 112, seed=1)
    features, code = upstream_features_and_code(segmenter, images)
    flipped_features, flipped_code = upstream_features_and_code(segmenter, images.flip(dims=[3]))
    ours = head.code(features)
    max_difference(ours, code, "code (1, 8, 4, 7)")

    size = (64, 112)
    upsampled = F.interpolate(code, size, mode="bilinear", align_corners=False)
    probe = segmenter.cluster_probe
    with torch.no_grad():
        log_probs = probe(upsampled, ALPHA, log_probs=True)
        _, probabilities = probe(upsampled, ALPHA)
        loss, one_hot = probe(upsampled, None)  # the cluster loss: -mean of the best inner product
        linear = segmenter.linear_probe(upsampled)
        inner = head.logits(head.pixel_code(ours, 16, size))
    max_difference(F.log_softmax(inner * ALPHA, dim=1), log_probs, "log-probs alpha=2 (64x112)")
    max_difference(F.softmax(inner * ALPHA, dim=1), probabilities, "probs alpha=2 (64x112)")
    max_difference(-inner.max(dim=1).values.mean(), loss, "cluster loss alpha=None")
    assert inner.shape[1] == 7  # 5 classes + 2 extra clusters
    assert torch.equal(inner.argmax(1), one_hot.argmax(1))

    cue = feature_map(features, stride=16)
    labels = head.predict(cue, size)
    assert labels.dtype == np.int32
    assert np.array_equal(labels, one_hot.argmax(1)[0].numpy())
    assert np.array_equal(labels, log_probs.argmax(1)[0].numpy())
    assert np.array_equal(head.predict(cue, size, probe="linear"), linear.argmax(1)[0].numpy())
    assert len(np.unique(labels)) > 2  # the comparison is not between two constant maps

    # CUPS' DepthG: code averaged with the flipped image's code flipped back, then upsampled
    averaged = (code + flipped_code.flip(dims=[3])) / 2
    averaged = F.interpolate(averaged, size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        flipped_log_probs = probe(averaged, ALPHA, log_probs=True)
    flipped_labels = head.predict(cue, size, flipped_features=feature_map(flipped_features, 16))
    assert np.array_equal(flipped_labels, flipped_log_probs.argmax(1)[0].numpy())
    assert not np.array_equal(flipped_labels, labels)  # the flip averaging changed something


def test_full_size_checkpoint_is_read_with_the_published_sizes(
    modules: types.ModuleType, tmp_path: Path
) -> None:
    """Cityscapes DepthG: ViT-B/8, code dim 100, 27 classes, compared on a 40×72 frame."""
    segmenter = build_segmenter(
        modules, tmp_path, model_type="vit_base", patch=8, dim=100, n_classes=27, extra_clusters=0
    )
    path = tmp_path / "depthg_cityscapes.ckpt"
    write_lightning_checkpoint(segmenter, path)
    head = load_through_vpsbench(path)
    assert head.config == DepthGConfig()
    upstream = segmenter.state_dict()
    kept = {key for key in upstream if not key.startswith(DROPPED)}
    assert set(head.published_state_dict()) == kept
    size = (40, 72)
    features, code = upstream_features_and_code(segmenter, image_tensor(*size, seed=3)[1])
    with torch.no_grad():
        upsampled = F.interpolate(code, size, mode="bilinear", align_corners=False)
        scores = segmenter.cluster_probe(upsampled, ALPHA, log_probs=True)
        ours = head.code(features)
    max_difference(ours, code, "code full size (1, 100, 5, 9)")
    labels = head.predict(feature_map(features, 8), size)
    assert np.array_equal(labels, scores.argmax(1)[0].numpy())
    assert len(np.unique(labels)) > 2


def test_linear_projection_checkpoint(modules: types.ModuleType, tmp_path: Path) -> None:
    """``projection_type: linear`` (no ``net.cluster2``): read as such, same code and map."""
    segmenter = build_segmenter(modules, tmp_path, projection="linear", extra_clusters=0)
    path = tmp_path / "depthg_linear.ckpt"
    write_lightning_checkpoint(segmenter, path)
    head = load_through_vpsbench(path)
    assert head.config == DepthGConfig(
        feature_dim=384, code_dim=8, num_classes=5, nonlinear_projection=False
    )
    size = (48, 80)
    features, code = upstream_features_and_code(segmenter, image_tensor(*size, seed=4)[1])
    max_difference(head.code(features), code, "code linear projection (1, 8, 3, 5)")
    with torch.no_grad():
        upsampled = F.interpolate(code, size, mode="bilinear", align_corners=False)
        _, one_hot = segmenter.cluster_probe(upsampled, None)
    labels = head.predict(feature_map(features, 16), size)
    assert np.array_equal(labels, one_hot.argmax(1)[0].numpy())


def test_depth_featurizer_checkpoint_is_refused(modules: types.ModuleType, tmp_path: Path) -> None:
    """Arch ``dino_depth`` (DinoFeaturizerWithDepth) changes the features: a clear error."""
    segmenter = build_segmenter(modules, tmp_path, arch="dino_depth")
    path = tmp_path / "depthg_dino_depth.ckpt"
    write_lightning_checkpoint(segmenter, path)
    assert any(key.startswith("net.cross_attn.") for key in segmenter.state_dict())
    with pytest.raises(CheckpointMismatchError, match="dino_depth") as error:
        depthg_head_from_checkpoint(path)
    assert str(path) in str(error.value)


def frame_clip(image: np.ndarray) -> VideoClip:
    """A one-frame clip held in memory."""
    refs = (FrameRef("seq", "000000", 0),)
    return VideoClip(cast(Dataset, None), "val", SequenceRef("seq", refs), _images={0: image})


def padded_frame_code(
    segmenter: Segmenter, image: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upstream on the frame the ``dino`` cue's network sees (padded with edge pixels to 16 px).

    Returns the features, the code and the code upsampled to the padded frame, cropped to the
    frame (the pixels each cell's features came from).
    """
    height, width = image.shape[:2]
    padded = np.pad(image, ((0, -height % 16), (0, -width % 16), (0, 0)), mode="edge")
    tensor = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255.0
    features, code = upstream_features_and_code(segmenter, (tensor - MEAN) / STD)
    upsampled = F.interpolate(code, padded.shape[:2], mode="bilinear", align_corners=False)
    return features, code, upsampled[..., :height, :width]


@pytest.mark.parametrize(("height", "width"), [(64, 112), (58, 100)])
def test_frame_through_dino_cue_and_head(
    small: tuple[Segmenter, Path], tmp_path: Path, height: int, width: int
) -> None:
    """The baseline's semantic path: ``dino`` cue (native resolution) → head.predict.

    Upstream runs on the frame the network sees: 58×100 is padded (edge pixels) to 64×112 by
    the cue; upstream's code is upsampled to that frame and cropped to the 58×100 of the output
    (DepthG itself resizes the frame to a multiple of the patch size instead: the cue's choice).
    """
    segmenter, path = small
    backbone = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(segmenter.net.model.state_dict(), backbone)
    head = depthg_head_from_checkpoint(path)
    provider = DinoProvider(weights=backbone, device="cpu", resolution="native")

    image, _ = image_tensor(height, width, seed=2)
    features, code, pixels = padded_frame_code(segmenter, image)
    cue = provider.features(frame_clip(image), 0)
    assert cue.stride == 16
    assert code.shape[-2:] == (math.ceil(height / 16), math.ceil(width / 16))
    max_difference(torch.from_numpy(cue.features)[None], features, "dino cue features (384, 4, 7)")
    with torch.no_grad():  # alpha 1: score margins are the inner products' margins
        scores = segmenter.cluster_probe(pixels, 1.0, log_probs=True)
    labels = head.predict(cue, (height, width))
    assert_same_labels(labels, scores, f"cluster map {height}x{width}")

    # the flipped frame is padded on its own right: its cells, flipped back, are averaged per pixel
    mirror = np.ascontiguousarray(image[:, ::-1])
    _, _, mirror_pixels = padded_frame_code(segmenter, mirror)
    averaged = (pixels + mirror_pixels.flip(dims=[3])) / 2
    with torch.no_grad():
        scores = segmenter.cluster_probe(averaged, 1.0, log_probs=True)
    flipped = head.predict(
        cue, (height, width), flipped_features=provider.features(frame_clip(mirror), 0)
    )
    assert_same_labels(flipped, scores, f"flip-averaged cluster map {height}x{width}")
    assert not np.array_equal(flipped, labels)
