"""VideoMask2Former (VideoCutLER's network): shapes, masked attention, deformable attention, I/O."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import Tensor  # noqa: E402

from vpsbench.cues.base import MissingWeightsError  # noqa: E402
from vpsbench.models.checkpoints import CheckpointMismatchError  # noqa: E402
from vpsbench.models.msdeform_attn import (  # noqa: E402
    MSDeformAttn,
    multi_scale_deformable_attention,
)
from vpsbench.models.video_mask2former import (  # noqa: E402
    VideoMask2Former,
    VideoMask2FormerConfig,
    instance_id_maps,
    load_checkpoint,
    masked_attention_mask,
    sine_position_embedding_2d,
    sine_position_embedding_3d,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight parallel test workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_model(seed: int = 0) -> VideoMask2Former:
    torch.manual_seed(seed)
    return VideoMask2Former(VideoMask2FormerConfig.tiny())


def _bilinear_zero_padded(image: Tensor, x: float, y: float) -> Tensor:
    """Bilinear sample (C,) of image (C, H, W) at normalised (x, y), zeros outside: by hand."""
    _, height, width = image.shape
    px = x * width - 0.5  # pixel i's centre sits at (i + 0.5) / size
    py = y * height - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    value = torch.zeros(image.shape[0], dtype=image.dtype)
    for yi, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xi, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yi < height and 0 <= xi < width:
                value += wy * wx * image[:, yi, xi]
    return value


def test_tiny_forward_shapes() -> None:
    model = _tiny_model()
    config = model.config
    with torch.no_grad():
        class_logits, mask_logits = model(torch.rand(3, 3, 64, 96) * 255)
        _, odd_masks = model(torch.rand(2, 3, 50, 70) * 255)
    assert class_logits.shape == (config.num_queries, config.num_classes + 1)
    assert mask_logits.shape == (config.num_queries, 3, 16, 24)
    assert odd_masks.shape == (config.num_queries, 2, 13, 18)  # padded to 64×96, cropped
    assert torch.isfinite(mask_logits).all()


def test_decoder_layers_cycle_over_the_three_scales_low_to_high() -> None:
    model = _tiny_model()
    memory_lengths: list[int] = []
    for layer in model.sem_seg_head.predictor.transformer_cross_attention_layers:
        layer.register_forward_hook(
            lambda _module, args, _output: memory_lengths.append(int(args[1].shape[0]))
        )
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 96) * 255)
    # Memory of a layer = T·h·w of its scale: 1/32 (2×3), 1/16 (4×6), 1/8 (8×12), T = 2.
    assert memory_lengths == [2 * 6, 2 * 24, 2 * 96]


def test_published_defaults_and_key_names() -> None:
    config = VideoMask2FormerConfig()
    assert (config.num_queries, config.hidden_dim, config.num_heads) == (100, 256, 8)
    assert (config.dim_feedforward, config.decoder_layers, config.num_classes) == (2048, 9, 1)
    assert (config.encoder_layers, config.encoder_dim_feedforward) == (6, 1024)
    shapes = {key: tuple(value.shape) for key, value in VideoMask2Former().state_dict().items()}
    pixel_decoder = "sem_seg_head.pixel_decoder."
    encoder = pixel_decoder + "transformer.encoder.layers."
    predictor = "sem_seg_head.predictor."
    expected = {
        "backbone.stem.conv1.weight": (64, 3, 7, 7),
        "backbone.res2.0.shortcut.norm.running_var": (256,),
        "backbone.res3.0.conv2.weight": (128, 128, 3, 3),
        "backbone.res5.2.conv3.weight": (2048, 512, 1, 1),
        pixel_decoder + "input_proj.0.0.weight": (256, 2048, 1, 1),
        pixel_decoder + "input_proj.2.1.bias": (256,),
        pixel_decoder + "transformer.level_embed": (3, 256),
        encoder + "5.self_attn.sampling_offsets.weight": (192, 256),
        encoder + "5.self_attn.attention_weights.weight": (96, 256),
        encoder + "5.linear1.weight": (1024, 256),
        pixel_decoder + "mask_features.weight": (256, 256, 1, 1),
        pixel_decoder + "adapter_1.weight": (256, 256, 1, 1),
        pixel_decoder + "layer_1.norm.bias": (256,),
        predictor + "transformer_self_attention_layers.8.self_attn.in_proj_weight": (768, 256),
        predictor + "transformer_cross_attention_layers.0.multihead_attn.out_proj.bias": (256,),
        predictor + "transformer_ffn_layers.4.linear1.weight": (2048, 256),
        predictor + "decoder_norm.weight": (256,),
        predictor + "query_feat.weight": (100, 256),
        predictor + "query_embed.weight": (100, 256),
        predictor + "level_embed.weight": (3, 256),
        predictor + "class_embed.weight": (2, 256),
        predictor + "mask_embed.layers.2.weight": (256, 256),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    assert "backbone.res2.0.conv1.bias" not in shapes  # detectron2 convs with a norm: no bias
    assert not any("transformer_cross_attention_layers.9" in key for key in shapes)
    assert not any(key.startswith("sem_seg_head.predictor.input_proj") for key in shapes)


def test_masked_attention_mask_blocks_background_and_frees_empty_queries() -> None:
    logits = torch.full((3, 2, 4, 4), -5.0)  # (Q, T, H, W)
    logits[0, 0, :2, :2] = 5.0  # query 0: top-left corner in frame 0 only
    logits[2, 1] = 5.0  # query 2: all of frame 1
    mask = masked_attention_mask(logits, (4, 4), num_heads=2)
    assert mask.shape == (2, 3, 2 * 16) and mask.dtype == torch.bool
    assert torch.equal(mask[0], mask[1])  # same mask for every head
    allowed_0 = ~mask[0, 0].view(2, 4, 4)  # time-major layout, like the memory
    assert allowed_0[0, :2, :2].all() and allowed_0.sum() == 4
    assert not mask[0, 1].any()  # query 1's mask is empty in every frame: it attends everywhere
    assert mask[0, 2].view(2, 16)[0].all() and not mask[0, 2].view(2, 16)[1].any()


def test_masked_attention_mask_resizes_bilinearly() -> None:
    logits = torch.full((1, 1, 8, 8), -5.0)
    logits[0, 0, :, :4] = 5.0  # left half
    mask = masked_attention_mask(logits, (2, 2), num_heads=1)
    assert mask[0, 0].tolist() == [False, True, False, True]


def test_deformable_attention_functional_matches_brute_force_bilinear() -> None:
    torch.manual_seed(1)
    shapes = [(5, 7), (3, 4)]
    heads, head_dim, queries = 2, 3, 6
    value = torch.randn(1, sum(h * w for h, w in shapes), heads, head_dim)
    locations = torch.rand(1, queries, heads, len(shapes), 1, 2) * 1.4 - 0.2  # some outside
    weights = torch.rand(1, queries, heads, len(shapes), 1)
    output = multi_scale_deformable_attention(value, shapes, locations, weights)
    assert output.shape == (1, queries, heads * head_dim)
    per_level = torch.split(value[0], [h * w for h, w in shapes])
    for q in range(queries):
        for head in range(heads):
            expected = torch.zeros(head_dim)
            for level, (height, width) in enumerate(shapes):
                image = per_level[level][:, head].T.reshape(head_dim, height, width)
                x, y = locations[0, q, head, level, 0].tolist()
                expected += weights[0, q, head, level, 0] * _bilinear_zero_padded(image, x, y)
            got = output[0, q, head * head_dim : (head + 1) * head_dim]
            assert torch.allclose(got, expected, atol=1e-5)


def test_deformable_attention_with_zero_offsets_samples_the_reference_points() -> None:
    torch.manual_seed(2)
    d_model, height, width = 8, 4, 6
    attention = MSDeformAttn(d_model=d_model, n_levels=1, n_heads=2, n_points=1)
    with torch.no_grad():
        attention.sampling_offsets.weight.zero_()
        attention.sampling_offsets.bias.zero_()
    features = torch.randn(1, height * width, d_model)
    queries = torch.randn(1, 5, d_model)
    reference = torch.rand(1, 5, 1, 2)
    with torch.no_grad():
        output = attention(queries, reference, features, [(height, width)])
        values = attention.value_proj(features)[0].T.reshape(d_model, height, width)
        for q in range(5):
            x, y = reference[0, q, 0].tolist()
            expected = attention.output_proj(_bilinear_zero_padded(values, x, y))
            assert torch.allclose(output[0, q], expected, atol=1e-5)


def test_position_embeddings_sine_layout() -> None:
    pos2d = sine_position_embedding_2d(3, 5, num_feats=4)
    assert pos2d.shape == (8, 3, 5)
    assert torch.allclose(pos2d[:4], pos2d[:4, :, :1].expand(4, 3, 5))  # y channels: rows only
    assert torch.allclose(pos2d[4:], pos2d[4:, :1, :].expand(4, 3, 5))  # x channels: columns only
    y_last = 2 * math.pi * 3 / (3 + 1e-6)
    assert pos2d[0, 2, 0].item() == pytest.approx(math.sin(y_last), abs=1e-5)
    assert pos2d[1, 2, 0].item() == pytest.approx(math.cos(y_last), abs=1e-5)
    pos3d = sine_position_embedding_3d(2, 3, 5, num_feats=4)
    assert pos3d.shape == (2, 8, 3, 5)
    temporal = pos3d - pos2d[None]
    assert torch.allclose(temporal, temporal[:, :, :1, :1].expand_as(temporal), atol=1e-6)
    assert not torch.allclose(temporal[0], temporal[1])


def test_checkpoint_round_trip_pth_and_pkl(tmp_path: Path) -> None:
    model = _tiny_model(seed=0)
    clip = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        expected = model(clip)
    state = model.state_dict()
    pth = tmp_path / "model.pth"
    torch.save({"model": {**state, "criterion.empty_weight": torch.ones(2)}, "iteration": 7}, pth)
    pkl = tmp_path / "model.pkl"
    with pkl.open("wb") as handle:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "t"}, handle)
    for path in (pth, pkl):
        fresh = _tiny_model(seed=1)
        load_checkpoint(fresh, path)
        with torch.no_grad():
            got = fresh(clip)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_checkpoint_mismatch_is_one_clear_error(tmp_path: Path) -> None:
    state = _tiny_model().state_dict()
    del state["sem_seg_head.predictor.query_feat.weight"]
    state["sem_seg_head.predictor.class_embed.bias"] = torch.zeros(5)
    state["sem_seg_head.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(_tiny_model(), path)
    message = str(error.value)
    assert "bad.pth" in message
    assert "sem_seg_head.predictor.query_feat.weight" in message  # missing
    assert "sem_seg_head.extra.weight" in message  # unexpected
    assert "class_embed.bias" in message and "(5,)" in message  # misshaped, with both shapes


def test_absent_checkpoint_names_published_weights(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="CutLER"):
        load_checkpoint(_tiny_model(), tmp_path / "videocutler_m2f_rn50.pth")


def test_instance_ids_follow_queries_and_scores() -> None:
    # 3 queries, 2 frames, 2×4 mask grid (stride 4 → 8×16 frames); logits ±10 ≈ hard masks.
    class_logits = torch.tensor([[3.0, 0.0], [1.0, 0.0], [-3.0, 0.0]])  # scores .95, .73, .05
    masks = torch.full((3, 2, 2, 4), -10.0)
    masks[0, :, :, :2] = 10.0  # query 0: left half in both frames
    masks[1, 0, :, 2:] = 10.0  # query 1: right half in frame 0 ...
    masks[1, 1] = 10.0  # ... and everything in frame 1 (overlaps query 0)
    masks[2] = 10.0  # query 2: everything, but its score is below the threshold
    maps = instance_id_maps(class_logits, masks, (8, 16), (8, 16), 0.5, top_k=10)
    assert len(maps) == 2 and all(m.dtype == np.int32 and m.shape == (8, 16) for m in maps)
    for frame in maps:
        assert (frame[:, :7] == 1).all()  # the higher score wins the overlap
        assert (frame[:, 9:] == 2).all()
    only_best = instance_id_maps(class_logits, masks, (8, 16), (8, 16), 0.0, top_k=1)
    assert set(np.unique(only_best[0])) == {0, 1}
    none = instance_id_maps(class_logits, masks, (8, 16), (8, 16), 0.99, top_k=10)
    assert all(not frame.any() for frame in none)


def test_instance_ids_crop_padding_and_resize() -> None:
    class_logits = torch.tensor([[3.0, 0.0]])
    masks = torch.full((1, 1, 4, 4), -10.0)  # padded canvas 16×16, valid input 12×12
    masks[0, 0, :3, :3] = 10.0  # covers the valid area
    maps = instance_id_maps(class_logits, masks, (12, 12), (24, 30), 0.5, top_k=1)
    assert maps[0].shape == (24, 30)
    assert (maps[0][2:-2, 2:-2] == 1).all()


def test_segment_clip_returns_clip_consistent_id_maps() -> None:
    model = _tiny_model()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    maps = model.segment_clip(frames, score_threshold=0.0, top_k=model.config.num_queries)
    assert len(maps) == 3
    assert all(m.shape == (40, 56) and m.dtype == np.int32 for m in maps)
    ids = set(np.unique(np.stack(maps)).tolist())
    assert ids <= set(range(model.config.num_queries + 1)) and ids - {0}
    clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        class_logits, mask_logits = model.padded_forward(clip)
    queries = model.config.num_queries
    expected = instance_id_maps(class_logits, mask_logits, (40, 56), (40, 56), 0.0, queries)
    for got, want in zip(maps, expected, strict=True):
        assert np.array_equal(got, want)
    assert model.segment_clip([]) == []


def test_segment_clip_resizes_to_the_test_size() -> None:
    torch.manual_seed(0)
    model = VideoMask2Former(
        VideoMask2FormerConfig(**{**VideoMask2FormerConfig.tiny().__dict__, "min_size_test": 32})
    )
    assert model.config.test_size(48, 80) == (32, 53)
    frames = [np.full((48, 80, 3), 100, dtype=np.uint8)] * 2
    maps = model.segment_clip(frames, score_threshold=0.0)
    assert [m.shape for m in maps] == [(48, 80), (48, 80)]
    with pytest.raises(ValueError, match="shape"):
        model.segment_clip([frames[0], np.zeros((10, 10, 3), dtype=np.uint8)])


@pytest.mark.slow
def test_full_size_model_segments_a_clip_at_the_test_size() -> None:
    torch.manual_seed(0)
    model = VideoMask2Former()
    frames = [np.full((90, 160, 3), value, dtype=np.uint8) for value in (40, 200)]
    maps = model.segment_clip(frames, score_threshold=0.0, top_k=100)  # runs at 360×640
    assert [m.shape for m in maps] == [(90, 160), (90, 160)]
    assert int(np.stack(maps).max()) <= 100
