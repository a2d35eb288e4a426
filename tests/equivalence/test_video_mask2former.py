"""VideoMask2Former (``depthg-videocutler``'s VideoCutLER network) equals VideoCutLER's own code.

Upstream's ``VideoMaskFormer`` is built by detectron2's ``build_model`` from VideoCutLER's
``configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml`` (the R50 model the baseline
follows), given seeded random weights (frozen-BN statistics, norms and the zero-initialised
deformable-attention projections included) and saved by detectron2's ``DetectionCheckpointer``
(``{"model": state_dict, "iteration": …}`` in ``model_final.pth``). That file goes through
:func:`vpsbench.models.video_mask2former.load_checkpoint`, the loader the baseline's ``weights``
setting reaches, and both networks run on the same clip:

* a reduced but real configuration (narrow R50, 2 encoder / 6 decoder layers, 12 queries, hidden
  32; the deformable encoder keeps upstream's fixed FFN 1024 and 4 points) for the forward pass:
  class and mask logits on the padded canvas, then VideoCutLER's test-time pipeline (its demo
  predictor's ``ResizeShortestEdge`` on uint8 frames, ``VideoMaskFormer.inference_video``'s
  top-10 queries and masks, the demo's score threshold) against ``segment_clip``;
* the full-size configuration for the checkpoint's keys and shapes (loaded strictly).

Upstream runs its MSDeformAttn through the pure-PyTorch ``ms_deform_attn_core_pytorch`` (the
compiled ``MultiScaleDeformableAttention`` extension is absent, so its ``try`` falls back).
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

torch = pytest.importorskip("torch")

from tests.equivalence.upstream import (  # noqa: E402
    REFERENCE_CODE,
    install_standins,
    require,
    require_packages,
)
from vpsbench.models.video_mask2former import (  # noqa: E402
    VideoMask2Former,
    VideoMask2FormerConfig,
    load_checkpoint,
    resize_frame,
)

TOLERANCE = 1e-4
VIDEOCUTLER = ("videocutler", "videocutler")
CONFIG = "configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml"
#: VideoMaskFormer.inference_video keeps ``scores.topk(10)`` ("keep top-10 predictions").
UPSTREAM_TOP_K = 10
#: Reduced configuration, as detectron2 config overrides and as vpsbench's config.
REDUCED_OPTS: list[Any] = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 16,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
    "MODEL.SEM_SEG_HEAD.MASK_DIM", 32,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", 2,
    "MODEL.MASK_FORMER.HIDDEN_DIM", 32,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", 12,
    "MODEL.MASK_FORMER.NHEADS", 4,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD", 64,
    "MODEL.MASK_FORMER.DEC_LAYERS", 7,
    "INPUT.MIN_SIZE_TEST", 48,
]  # fmt: skip
REDUCED = VideoMask2FormerConfig(
    stem_channels=16,
    res2_channels=64,
    conv_dim=32,
    mask_dim=32,
    encoder_layers=2,
    hidden_dim=32,
    num_queries=12,
    num_heads=4,
    dim_feedforward=64,
    decoder_layers=6,
    min_size_test=48,
)
FRAMES, HEIGHT, WIDTH = 2, 60, 90  # resized to 48×72, padded to 64×96
#: Noise for zero-initialised tensors (biases, deformable offset / attention-weight projections):
#: sampling offsets of a fraction of a pixel, attention logits of order 0.1–1.
ZERO_INIT_NOISE = 0.05
#: Random frozen-BN statistics with unit scales blow R50's activations up (|res5| ≈ 2000) and
#: float32 rounding with them; scaled norms keep them of order 1, as trained weights do.
BACKBONE_NORM_SCALE = 0.5

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.cuda.amp.autocast:FutureWarning"),
    pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
]


def _bare_package(name: str, folder: Path) -> None:
    """Register ``name`` as a package of ``folder`` without running its ``__init__``."""
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module


@functools.cache
def _import_upstream() -> types.SimpleNamespace:
    """detectron2 + VideoCutLER's modelling modules, imported once per process.

    detectron2's registries refuse a second registration of a name, so nothing here is ever
    forgotten. ``mask2former`` / ``mask2former_video`` become bare packages: their ``__init__``
    pull in dataset registration, COCO/YTVIS evaluation and the copy-paste trainer, which the
    model does not use. The training-only PointRend sampling helpers the criterion imports are
    absent from the reference tree; inert names stand in (inference never calls them).
    """
    install_standins()
    root = REFERENCE_CODE.joinpath(*VIDEOCUTLER)
    for folder in (REFERENCE_CODE / "detectron2", root):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    # The compiled deformable-attention extension: absent, so upstream takes its PyTorch path.
    sys.modules.setdefault(
        "MultiScaleDeformableAttention", types.ModuleType("MultiScaleDeformableAttention")
    )
    importlib.import_module("detectron2.projects")
    if "detectron2.projects.point_rend.point_features" not in sys.modules:
        point_rend = types.ModuleType("detectron2.projects.point_rend")
        point_features = types.ModuleType("detectron2.projects.point_rend.point_features")

        def training_only(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("PointRend point sampling is only used by the training loss")

        point_features.point_sample = training_only  # type: ignore[attr-defined]
        point_features.get_uncertain_point_coords_with_randomness = training_only  # type: ignore[attr-defined]
        point_rend.point_features = point_features  # type: ignore[attr-defined]
        sys.modules["detectron2.projects.point_rend"] = point_rend
        sys.modules["detectron2.projects.point_rend.point_features"] = point_features
    _bare_package("mask2former", root / "mask2former")
    _bare_package("mask2former.modeling", root / "mask2former" / "modeling")
    _bare_package("mask2former_video", root / "mask2former_video")
    for name in (
        "mask2former.modeling.pixel_decoder.msdeformattn",
        "mask2former.modeling.meta_arch.mask_former_head",
        "mask2former_video.modeling.transformer_decoder.video_mask2former_transformer_decoder",
        "mask2former_video.video_maskformer_model",
    ):
        importlib.import_module(name)
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.data import transforms
    from detectron2.modeling import build_model
    from detectron2.structures import ImageList
    from mask2former.config import add_maskformer2_config
    from mask2former_video.config import add_maskformer2_video_config

    def make_cfg(opts: list[Any]) -> Any:
        cfg = get_cfg()
        add_maskformer2_config(cfg)
        add_maskformer2_video_config(cfg)
        # Keys of detectron2's DeepLab project config (absent here), which VideoCutLER's demo
        # adds; the base config sets them and marks them "not used".
        cfg.MODEL.RESNETS.STEM_TYPE = "basic"
        cfg.MODEL.RESNETS.RES5_MULTI_GRID = [1, 1, 1]
        cfg.merge_from_file(str(root / CONFIG))
        cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
        cfg.freeze()
        return cfg

    return types.SimpleNamespace(
        make_cfg=make_cfg,
        build_model=build_model,
        checkpointer=DetectionCheckpointer,
        image_list=ImageList,
        resize_shortest_edge=transforms.ResizeShortestEdge,
    )


@pytest.fixture(scope="module")
def upstream() -> types.SimpleNamespace:
    """The upstream importer's namespace, or a skip saying what is missing."""
    require(*VIDEOCUTLER, CONFIG)
    require("detectron2", "detectron2")
    require_packages("fvcore", "iopath", "yacs", "omegaconf", "termcolor", "tabulate", "scipy")
    return _import_upstream()


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Seeded perturbation of every float tensor so that no parameter keeps a trivial init.

    Frozen-BN variances are drawn in [0.5, 1.5); 1-D norm parameters and statistics move by
    N(0, 0.1) (backbone norm scales then shrink by ``BACKBONE_NORM_SCALE``); everything else by
    30% of its own spread, zero-initialised tensors by N(0, ``ZERO_INIT_NOISE``²), so masks,
    sampling offsets and attention masks all depend on the weights.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.ndim == 1 and ("norm" in name or name.endswith("running_mean")):
                tensor.add_(0.1 * noise)
            else:
                spread = float(tensor.std()) if tensor.numel() > 1 else 0.0
                tensor.add_(noise * (0.3 * spread if spread > 0 else ZERO_INIT_NOISE))
            if name.startswith("backbone.") and name.endswith("norm.weight"):
                tensor.mul_(BACKBONE_NORM_SCALE)


def _save_upstream(upstream: types.SimpleNamespace, model: Any, folder: Path) -> Path:
    """Save as VideoCutLER's trainer does: ``DetectionCheckpointer.save`` → ``<name>.pth``."""
    upstream.checkpointer(model, save_dir=str(folder)).save("model_final", iteration=7)
    return folder / "model_final.pth"


def _clip(seed: int) -> list[npt.NDArray[np.uint8]]:
    """Smooth random RGB frames (coarse noise upsampled, plus fine noise), uint8."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(FRAMES):
        coarse = rng.uniform(0, 255, (3, 5, 8)).astype(np.float32)
        smooth = torch.nn.functional.interpolate(
            torch.from_numpy(coarse)[None], size=(HEIGHT, WIDTH), mode="bicubic"
        )[0].numpy()
        noisy = smooth.transpose(1, 2, 0) + rng.normal(0, 12, (HEIGHT, WIDTH, 3))
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


def _padded_logits(
    upstream: types.SimpleNamespace, theirs: Any, ours: VideoMask2Former, clip: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Upstream's head outputs and vpsbench's (class, mask) logits on a (T, 3, H, W) 0–255 clip.

    Upstream's side is ``VideoMaskFormer.forward`` up to its head: per-frame normalisation,
    ``ImageList.from_tensors(…, SIZE_DIVISIBILITY)`` padding, backbone, ``sem_seg_head``.
    """
    with torch.no_grad():
        images = [(frame - theirs.pixel_mean) / theirs.pixel_std for frame in clip]
        padded = upstream.image_list.from_tensors(images, theirs.size_divisibility)
        outputs = theirs.sem_seg_head(theirs.backbone(padded.tensor))
        class_logits, mask_logits = ours.padded_forward(clip)
    return outputs, class_logits, mask_logits


def _clip_tensor(frames: list[npt.NDArray[np.uint8]]) -> torch.Tensor:
    """(T, 3, H, W) float 0–255 from RGB uint8 frames."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module")
def reduced(
    upstream: types.SimpleNamespace, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, VideoMask2Former, Path]:
    """(upstream model, vpsbench model loaded from upstream's checkpoint, checkpoint path)."""
    torch.manual_seed(0)
    theirs = upstream.build_model(upstream.make_cfg(REDUCED_OPTS)).eval()
    _randomize(theirs, seed=1)
    path = _save_upstream(upstream, theirs, tmp_path_factory.mktemp("videocutler_reduced"))
    ours = VideoMask2Former(REDUCED)
    load_checkpoint(ours, path)
    return theirs, ours.eval(), path


def test_checkpoint_is_a_plain_weights_container(reduced: tuple[Any, Any, Path]) -> None:
    """Upstream's file holds only tensors and plain values: weights-only loading reads it."""
    _, ours, path = reduced
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"model", "iteration"}
    loaded = ours.state_dict()
    stored = {k: v for k, v in raw["model"].items() if k in loaded}
    assert set(raw["model"]) - set(stored) == {"criterion.empty_weight"}
    assert set(stored) == set(loaded)
    for key, value in stored.items():
        assert torch.equal(loaded[key], value), key


def test_padded_logits_match(
    upstream: types.SimpleNamespace, reduced: tuple[Any, Any, Path]
) -> None:
    """Class and mask logits on the normalised, padded clip (backbone → pixel decoder → decoder)."""
    theirs, ours, _ = reduced
    attention_masks: list[torch.Tensor] = []

    def record(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        attention_masks.append(kwargs["attn_mask"])

    hooks = [
        layer.multihead_attn.register_forward_pre_hook(record, with_kwargs=True)
        for layer in theirs.sem_seg_head.predictor.transformer_cross_attention_layers
    ]
    try:
        outputs, class_logits, mask_logits = _padded_logits(
            upstream, theirs, ours, _clip_tensor(_clip(seed=2))
        )
    finally:
        for hook in hooks:
            hook.remove()
    expected_masks = outputs["pred_masks"][0]
    assert class_logits.shape == outputs["pred_logits"][0].shape
    assert mask_logits.shape == expected_masks.shape == (12, FRAMES, 16, 24)
    assert (class_logits - outputs["pred_logits"][0]).abs().max() <= TOLERANCE
    assert (mask_logits - expected_masks).abs().max() <= TOLERANCE
    # The comparison exercised masked attention: some positions blocked, not all.
    blocked = torch.stack([mask.float().mean() for mask in attention_masks])
    assert len(attention_masks) == 6
    assert ((blocked > 0.05) & (blocked < 0.95)).all(), blocked
    assert 0.05 < float((expected_masks > 0).float().mean()) < 0.95


def test_clip_instances_match_videocutler_inference(
    upstream: types.SimpleNamespace, reduced: tuple[Any, Any, Path]
) -> None:
    """VideoCutLER's test-time pipeline against ``segment_clip`` on the same uint8 frames.

    Upstream, as its demo predictor runs it: ``ResizeShortestEdge`` (MIN_SIZE_TEST, 1333) on each
    uint8 frame, ``VideoMaskFormer`` inference (top-10 queries by score, masks upsampled, cropped,
    resized to the frame size, logit > 0), then the demo's ``score >= threshold`` selection.
    vpsbench writes the kept queries into one id map per frame; where kept masks overlap it
    picks one of them, so each id must lie inside that query's upstream mask and the union of
    ids must equal the union of the upstream masks.
    """
    theirs, ours, _ = reduced
    frames = _clip(seed=3)
    cfg = upstream.make_cfg(REDUCED_OPTS)  # the demo predictor's augmentation, from the config
    resize = upstream.resize_shortest_edge(
        [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
    )
    resized = [resize.get_transform(frame).apply_image(frame) for frame in frames]
    for frame, expected in zip(frames, resized, strict=True):
        assert np.array_equal(resize_frame(frame, REDUCED.test_size(HEIGHT, WIDTH)), expected)
    inputs = {
        "image": [torch.as_tensor(frame.astype("float32").transpose(2, 0, 1)) for frame in resized],
        "height": HEIGHT,
        "width": WIDTH,
    }
    with torch.no_grad():
        result = theirs([inputs])
        class_logits, _ = ours.padded_forward(_clip_tensor(resized))
    scores = class_logits.softmax(-1)[:, 0]
    upstream_scores = torch.tensor(result["pred_scores"])
    assert result["pred_labels"] == [0] * UPSTREAM_TOP_K
    # Identify upstream's kept queries by score (they come unsorted and without indices).
    distance = (upstream_scores[:, None] - scores[None]).abs()
    queries = distance.argmin(dim=1)
    assert distance.min(dim=1).values.max() <= TOLERANCE
    assert len(set(queries.tolist())) == UPSTREAM_TOP_K
    assert set(queries.tolist()) == set(torch.argsort(scores, descending=True)[:10].tolist())
    masks = {int(q): mask for q, mask in zip(queries, result["pred_masks"], strict=True)}
    assert all(mask.shape == (FRAMES, HEIGHT, WIDTH) for mask in masks.values())

    ordered = sorted(upstream_scores.tolist(), reverse=True)
    for threshold in (0.0, (ordered[3] + ordered[4]) / 2):
        kept = {
            query
            for query, score in zip(queries.tolist(), upstream_scores.tolist(), strict=True)
            if score >= threshold
        }
        maps = ours.segment_clip(frames, score_threshold=threshold, top_k=UPSTREAM_TOP_K)
        assert len(maps) == FRAMES
        for t, ids in enumerate(maps):
            assert ids.shape == (HEIGHT, WIDTH)
            union = np.zeros((HEIGHT, WIDTH), dtype=bool)
            for q in kept:
                union |= masks[q][t].numpy()
            assert np.array_equal(ids > 0, union)
            for value in np.unique(ids[ids > 0]):
                assert int(value) - 1 in kept
                assert masks[int(value) - 1][t].numpy()[ids == value].all()
        written = {int(v) - 1 for m in maps for v in np.unique(m[m > 0])}
        assert written <= kept
        assert len(written) >= 2  # not a vacuous comparison


def test_test_size_and_resize_match_resize_shortest_edge(upstream: types.SimpleNamespace) -> None:
    """``test_size`` is ResizeShortestEdge's output shape; ``resize_frame`` its uint8 pixels."""
    config = VideoMask2FormerConfig()  # MIN_SIZE_TEST 360, MAX_SIZE_TEST 1333
    for height in range(20, 1400, 37):
        for width in range(20, 4200, 91):
            expected = upstream.resize_shortest_edge.get_output_shape(height, width, 360, 1333)
            assert config.test_size(height, width) == expected, (height, width)
    rng = np.random.default_rng(4)
    for height, width in ((480, 854), (375, 1242), (90, 61)):
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        transform = upstream.resize_shortest_edge(360, 1333).get_transform(frame)
        expected = transform.apply_image(frame)
        assert np.array_equal(resize_frame(frame, config.test_size(height, width)), expected)


def test_full_size_checkpoint_loads_strictly(
    upstream: types.SimpleNamespace, tmp_path: Path
) -> None:
    """The full VideoCutLER R50 config: the baseline's model takes every key, every shape.

    A short forward on a small clip (2 frames of 60×90, padded to 64×96) checks the full-width
    layers too (100 queries, 8 heads, 6 encoder and 9 decoder layers).
    """
    torch.manual_seed(0)
    theirs = upstream.build_model(upstream.make_cfg([])).eval()
    _randomize(theirs, seed=5)
    path = _save_upstream(upstream, theirs, tmp_path)
    ours = VideoMask2Former(
        VideoMask2FormerConfig()
    )  # as baselines/vpsbench_baselines/depthg_videocutler.py builds
    load_checkpoint(ours, path)
    expected = {k: v for k, v in theirs.state_dict().items() if not k.startswith("criterion.")}
    loaded = ours.state_dict()
    assert set(loaded) == set(expected)
    assert len(loaded) == 557
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    outputs, class_logits, mask_logits = _padded_logits(
        upstream, theirs, ours.eval(), _clip_tensor(_clip(seed=6))
    )
    assert mask_logits.shape == (100, FRAMES, 16, 24)
    assert (class_logits - outputs["pred_logits"][0]).abs().max() <= TOLERANCE
    assert (mask_logits - outputs["pred_masks"][0]).abs().max() <= TOLERANCE
