"""Eq. 2 as CUPS runs it: VideoCUPS' semantic inference against ``cups/semantics/model.py``.

Upstream's ``DepthG`` wrapper (unmodified; its Lightning checkpoint loader replaced by a stand-in
that hands over the networks) runs ``slide_segment`` (``F.unfold`` windows of H // 2 px every
H // 4 px with zero padding, ``cluster_probe(code, 2, log_probs=True)`` per window, ``F.fold``
average) and ``depth_guided_sliding_window`` (half-resolution pass and its flip, codes averaged,
upsampled, fused with the depth weight 1/(d + 1) in log space). Its ``net`` is upstream DINO
(``dino/vision_transformer.py``, seeded random ViT-S/8) giving patch tokens as the code, its
``cluster_probe`` upstream DepthG's ``ClusterLookup``. vpsbench runs
``vpsbench_methods.videocups.semantics`` with the ``dino`` provider loaded from the same weights
saved in
DINO's release container (``weights=PATH``) and the probe's clusters as centroids. Compared:
log P_high, log P_low, and the fused scores' softmax and argmax, on a frame that needs CUPS'
padding (176 = 7·24 + 8 columns).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpsbench_methods.videocups.semantics import (  # noqa: E402
    low_resolution_log_probabilities,
    semantic_probabilities,
    sliding_window_log_probabilities,
)

from tests.equivalence.upstream import (  # noqa: E402
    install_standins,
    isolated_import,
    load_module,
    require,
    require_packages,
)
from vpsbench.cues.dino import DinoProvider  # noqa: E402

TOLERANCE = 1e-4
HEIGHT, WIDTH = 96, 176  # windows 48 px every 24 px; 176 % 24 = 8: CUPS pads 16 columns
PATCH = 8
CLASSES = 6
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
MEASURED: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def report_measured() -> Iterator[None]:
    yield
    print("\nmeasured max abs differences:", MEASURED)  # shown with -s


class _Inert(torch.nn.Module):
    """Inert base class for the training-only names DepthG's utils.py imports."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()


@pytest.fixture(scope="module")
def cluster_lookup() -> Any:
    """Upstream DepthG ``ClusterLookup`` (``src/modules.py``; training-only imports inert)."""
    src = require("cups", "external", "depthg", "src")
    require_packages("PIL", "scipy", "matplotlib")
    install_standins()
    import torchvision  # the test-only stand-in

    torchmetrics = types.ModuleType("torchmetrics")
    torchmetrics.Metric = _Inert  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.Normalize = _Inert  # type: ignore[attr-defined]
    tensorboard = types.ModuleType("torch.utils.tensorboard")
    summary = types.ModuleType("torch.utils.tensorboard.summary")
    summary.hparams = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    for package in ("PIL.Image", "scipy.optimize", "matplotlib.pyplot", "torch.utils.data"):
        importlib.import_module(package)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "torchmetrics", torchmetrics)
        patch.setitem(sys.modules, "torchvision.transforms", transforms)
        patch.setitem(sys.modules, "torch.utils.tensorboard", tensorboard)
        patch.setitem(sys.modules, "torch.utils.tensorboard.summary", summary)
        patch.setattr(torchvision, "transforms", transforms, raising=False)
        with isolated_import(src):
            return importlib.import_module("modules").ClusterLookup


class DinoCode(torch.nn.Module):
    """DepthG's ``net`` interface, ``(features, code)``, with upstream DINO's patch tokens."""

    def __init__(self, vit: Any) -> None:
        super().__init__()
        self.vit = vit

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.vit.get_intermediate_layers(images, n=1)[0][:, 1:]
        rows, cols = images.shape[-2] // PATCH, images.shape[-1] // PATCH
        code = tokens.transpose(1, 2).reshape(images.shape[0], -1, rows, cols)
        return code, code


class Segmenter(torch.nn.Module):
    """What ``LitUnsupervisedSegmenter.load_from_checkpoint`` returns, as far as DepthG uses it."""

    def __init__(self, net: torch.nn.Module, cluster_probe: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.cluster_probe = cluster_probe


@pytest.fixture(scope="module")
def setup(
    cluster_lookup: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, DinoProvider, np.ndarray]:
    """Upstream ``DepthG`` (CUPS' crop/stride rule for this frame), our provider, the centroids."""
    model_file = require("cups", "cups", "semantics", "model.py")
    require_packages("einops")
    vit_module = load_module(require("dino"), "vision_transformer")
    torch.manual_seed(0)
    vit = vit_module.vit_small(patch_size=PATCH).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # seeded random weights with LayerNorms near 1 and a real position term
        for name, parameter in vit.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name in ("pos_embed", "cls_token"):
                parameter.copy_(0.5 * noise)
            elif "norm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.2 * noise)
            else:
                parameter.copy_(0.05 * noise)
    probe = cluster_lookup(vit.embed_dim, CLASSES)
    with torch.no_grad():
        probe.clusters.copy_(torch.randn(probe.clusters.shape, generator=generator))
    segmenter = Segmenter(DinoCode(vit), probe).eval()

    lightning = types.ModuleType("external.depthg.src.train_segmentation")
    lightning.LitUnsupervisedSegmenter = types.SimpleNamespace(  # type: ignore[attr-defined]
        load_from_checkpoint=lambda path: segmenter
    )
    packages = {
        "external": types.ModuleType("external"),
        "external.depthg": types.ModuleType("external.depthg"),
        "external.depthg.src": types.ModuleType("external.depthg.src"),
        "external.depthg.src.train_segmentation": lightning,
    }
    path_before = list(sys.path)
    with pytest.MonkeyPatch.context() as patch:
        for name, module in packages.items():
            patch.setitem(sys.modules, name, module)
        spec = importlib.util.spec_from_file_location("cups_semantics_model", model_file)
        assert spec is not None and spec.loader is not None
        cups_model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cups_model)
    sys.path[:] = path_before  # model.py appends the working directory to sys.path
    depthg = cups_model.DepthG(
        device="cpu",
        checkpoint_root="depthg.ckpt",
        img_shape=(HEIGHT, WIDTH),
        stride=(HEIGHT // 4, HEIGHT // 4),  # CUPS' generation script: img_shape[0] // 4
        crop=(HEIGHT // 2, HEIGHT // 2),  # and img_shape[0] // 2
    )
    weights = tmp_path_factory.mktemp("dino") / "dino_deitsmall8_pretrain.pth"
    torch.save(vit.state_dict(), weights)  # the DINO release container: the backbone state dict
    provider = DinoProvider(weights=weights, device="cpu")
    return depthg, provider, probe.clusters.detach().double().numpy()


def frame() -> tuple[np.ndarray, torch.Tensor]:
    """A random RGB frame, and CUPS' input: the ImageNet-normalised image (1, 3, H, W)."""
    image = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32))[None] / 255.0
    return image, (tensor - MEAN) / STD


def compare(name: str, ours: np.ndarray, upstream: torch.Tensor) -> None:
    """Max abs difference within tolerance and identical argmax maps; records the difference."""
    reference = upstream[0].numpy()
    assert ours.shape == reference.shape
    difference = float(np.abs(ours - reference).max())
    MEASURED[name] = difference
    assert difference <= TOLERANCE, f"{name}: max abs difference {difference}"
    np.testing.assert_array_equal(np.argmax(ours, axis=0), np.argmax(reference, axis=0))


def test_sliding_window_equals_cups_slide_segment(setup: tuple[Any, DinoProvider, Any]) -> None:
    depthg, provider, centroids = setup
    image, normalised = frame()
    assert (depthg.bottom_pad, depthg.right_pad) == (0, 16)  # the frame needs CUPS' padding
    with torch.no_grad():
        upstream = depthg.slide_segment(normalised)
    ours = sliding_window_log_probabilities(provider.image_features, image, centroids)
    compare("log P_high", ours, upstream)


def test_low_resolution_pass_equals_cups_flip_averaged_half_frame(
    setup: tuple[Any, DinoProvider, Any],
) -> None:
    depthg, provider, centroids = setup
    image, normalised = frame()
    with torch.no_grad():  # depth weight 1 everywhere: the output is CUPS' out_singleimg
        upstream = depthg.depth_guided_sliding_window(normalised, torch.ones(1, 1, HEIGHT, WIDTH))
    ours = low_resolution_log_probabilities(provider.image_features, image, centroids)
    compare("log P_low", ours, upstream)


def test_depth_guided_fusion_equals_cups(setup: tuple[Any, DinoProvider, Any]) -> None:
    depthg, provider, centroids = setup
    image, normalised = frame()
    depth = np.random.default_rng(3).uniform(0.0, 4.0, (HEIGHT, WIDTH)).astype(np.float32)
    weight = torch.from_numpy(1.0 / (depth + 1.0))[None, None]  # CUPS: 1 / (depth + 1)
    with torch.no_grad():
        upstream = depthg.depth_guided_sliding_window(normalised, weight)
    ours = semantic_probabilities(image, provider.image_features, centroids, depth, use_crf=False)
    # CUPS' dense_crf takes F.softmax of this output; without the CRF, its argmax is the label.
    compare("softmax(Eq. 2 scores)", ours, torch.softmax(upstream, dim=1))
    low = low_resolution_log_probabilities(provider.image_features, image, centroids)
    high = sliding_window_log_probabilities(provider.image_features, image, centroids)
    assert np.mean(np.argmax(low, axis=0) != np.argmax(high, axis=0)) > 0.05  # Eq. 2 fuses two
