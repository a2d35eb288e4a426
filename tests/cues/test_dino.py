"""DINO ViT: shapes of the four architectures, position embeddings, weight loading, the provider."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpsbench.cues import MissingWeightsError, VideoClip, cue_names, make_cue  # noqa: E402
from vpsbench.cues.dino import DinoProvider, load_dino  # noqa: E402
from vpsbench.cues.vit import VIT_CONFIGS, VisionTransformer, canonical_arch  # noqa: E402
from vpsbench.datasets.base import Dataset  # noqa: E402
from vpsbench.errors import InputError, VpsbenchError  # noqa: E402
from vpsbench.video import FrameRef, SequenceRef  # noqa: E402


def make_clip(height: int = 50, width: int = 70) -> VideoClip:
    """A one-frame clip whose image is held in memory (no dataset on disk)."""
    image = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    refs = (FrameRef("seq", "000000", 0),)
    return VideoClip(cast(Dataset, None), "val", SequenceRef("seq", refs), _images={0: image})


@pytest.fixture(scope="module")
def small_vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(VIT_CONFIGS["vits16"]).eval()


@pytest.fixture(scope="module")
def weights_file(small_vit: VisionTransformer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dino") / "dino_deitsmall16_pretrain.pth"
    torch.save(small_vit.state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("arch", "dim", "patch"),
    [("vits8", 384, 8), ("vits16", 384, 16), ("vitb8", 768, 8), ("vitb16", 768, 16)],
)
def test_each_architecture_gives_one_feature_per_patch(arch: str, dim: int, patch: int) -> None:
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = VisionTransformer(VIT_CONFIGS[arch])
        tokens = model(torch.empty(2, 3, 3 * patch, 5 * patch))
        keys = model(torch.empty(2, 3, 3 * patch, 5 * patch), facet="keys")
    assert model.pos_embed.shape == (1, 1 + (224 // patch) ** 2, dim)
    assert sum(p.numel() for p in model.parameters()) // 1_000_000 == (21 if dim == 384 else 85)
    assert tokens.shape == keys.shape == (2, dim, 3, 5)


def test_tokens_and_keys_are_different_facets(small_vit: VisionTransformer) -> None:
    images = torch.rand(1, 3, 48, 80)
    with torch.no_grad():
        tokens, keys = small_vit(images), small_vit(images, facet="keys")
    assert tokens.shape == keys.shape == (1, 384, 3, 5)
    assert not torch.allclose(tokens, keys)
    # the final LayerNorm (weight 1, bias 0 here) leaves every token with zero mean
    torch.testing.assert_close(tokens.mean(dim=1), torch.zeros(1, 3, 5), atol=1e-5, rtol=0)


def test_arch_names_accept_timm_and_hub_spellings() -> None:
    assert canonical_arch("vit_small_patch8_224.dino") == "vits8"
    assert canonical_arch("dino_vitb16") == "vitb16"
    with pytest.raises(VpsbenchError, match="unknown ViT architecture"):
        canonical_arch("vitl14")


def test_position_embedding_is_kept_on_the_pretraining_grid(small_vit: VisionTransformer) -> None:
    assert small_vit.position_embedding(14, 14) is small_vit.pos_embed


def test_position_embedding_resizes_to_a_non_square_grid(small_vit: VisionTransformer) -> None:
    model = VisionTransformer(VIT_CONFIGS["vits16"])
    rows = torch.arange(14, dtype=torch.float32).view(14, 1, 1).expand(14, 14, 384)
    with torch.no_grad():
        model.pos_embed[0, 1:] = rows.reshape(196, 384)  # depends on the row only
        model.pos_embed[0, 0] = -7.0
    resized = model.position_embedding(3, 9)
    assert resized.shape == (1, 1 + 27, 384)
    assert torch.equal(resized[0, 0], model.pos_embed[0, 0])  # the cls position is kept
    grid = resized[0, 1:, 0].reshape(3, 9)
    torch.testing.assert_close(grid, grid[:, :1].expand(3, 9))  # constant along each row
    assert bool((grid[1:, 0] > grid[:-1, 0]).all())  # increasing down the rows
    with torch.no_grad():
        assert small_vit(torch.rand(1, 3, 48, 144)).shape == (1, 384, 3, 9)


def test_input_must_be_a_multiple_of_the_patch(small_vit: VisionTransformer) -> None:
    with pytest.raises(VpsbenchError, match="multiple of the patch"):
        small_vit(torch.rand(1, 3, 50, 64))


def test_saved_state_dict_loads_into_a_fresh_model(
    small_vit: VisionTransformer, weights_file: Path
) -> None:
    loaded = load_dino(weights=weights_file)  # architecture read off the file (ViT-S/16)
    assert loaded.config == VIT_CONFIGS["vits16"]
    images = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), small_vit(images), rtol=0, atol=0)


def test_full_dino_checkpoint_and_safetensors_load(
    small_vit: VisionTransformer, tmp_path: Path
) -> None:
    state = small_vit.state_dict()
    full = {
        "teacher": {f"backbone.{key}": value for key, value in state.items()}
        | {"head.last_layer.weight_g": torch.ones(1, 1)},
        "student": {f"module.backbone.{key}": value for key, value in state.items()},
        "epoch": 100,
    }
    torch.save(full, tmp_path / "checkpoint.pth")
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = small_vit(images)
        assert torch.equal(load_dino("vits16", tmp_path / "checkpoint.pth")(images), expected)
        safetensors_torch = pytest.importorskip("safetensors.torch")
        safetensors_torch.save_file(dict(state), str(tmp_path / "model.safetensors"))
        assert torch.equal(load_dino("vits16", tmp_path / "model.safetensors")(images), expected)


def test_a_missing_key_is_named(small_vit: VisionTransformer, tmp_path: Path) -> None:
    state = small_vit.state_dict()
    del state["blocks.3.attn.qkv.weight"]
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(InputError, match=r"lacks key 'blocks\.3\.attn\.qkv\.weight'") as error:
        load_dino("vits16", tmp_path / "w.pth")
    assert str(tmp_path / "w.pth") in str(error.value)


def test_a_misshaped_key_is_named(small_vit: VisionTransformer, tmp_path: Path) -> None:
    state = small_vit.state_dict()
    state["blocks.0.mlp.fc1.weight"] = torch.zeros(1536, 100)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(InputError, match=r"'blocks\.0\.mlp\.fc1\.weight' has shape \(1536, 100\)"):
        load_dino("vits16", tmp_path / "w.pth")


def test_wrong_architecture_is_named(weights_file: Path) -> None:
    with pytest.raises(InputError, match="holds DINO vits16 weights, not vits8"):
        load_dino("vits8", weights_file)


def test_missing_weights_file_names_the_path(tmp_path: Path) -> None:
    absent = tmp_path / "dino_deitsmall8_pretrain.pth"
    with pytest.raises(MissingWeightsError, match="dino_deitsmall8_pretrain") as error:
        DinoProvider(weights=absent, device="cpu")
    assert str(absent) in str(error.value)


def test_hub_offline_fails_with_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VpsbenchError) as error:
        DinoProvider(arch="vits8", device="cpu", cache_dir=tmp_path / "hub-cache")
    message = str(error.value)
    assert "\n" not in message
    assert "timm/vit_small_patch8_224.dino" in message
    assert "HF_HUB_OFFLINE" in message
    assert "weights=PATH" in message


def test_hub_without_huggingface_hub_names_where_weights_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(MissingWeightsError, match=r"dl\.fbaipublicfiles\.com/dino"):
        DinoProvider(arch="vitb16", device="cpu")


def test_provider_at_native_resolution_has_the_patch_stride(weights_file: Path) -> None:
    provider = DinoProvider(weights=weights_file, device="cpu", resolution="native")
    result = provider.features(make_clip(50, 70), 0)
    assert result.stride == 16
    assert result.features.shape == (384, 4, 5)  # ceil(50 / 16), ceil(70 / 16)
    assert result.features.dtype == np.float32


def test_image_features_run_at_the_patch_size_on_the_given_pixels(weights_file: Path) -> None:
    # Sliding windows and the half-resolution pass feed images of any size: no resizing.
    provider = DinoProvider(weights=weights_file, device="cpu")  # resolution 320 for frames
    clip = make_clip(50, 70)
    native = DinoProvider(weights=weights_file, device="cpu", resolution="native")
    result = provider.image_features(clip.image(0))
    assert result.stride == 16 and result.features.shape == (384, 4, 5)
    np.testing.assert_array_equal(result.features, native.features(clip, 0).features)
    as_float = provider.image_features(clip.image(0).astype(np.float32))  # a resampled image
    np.testing.assert_allclose(as_float.features, result.features, atol=1e-6)


def test_provider_resolution_sets_the_stride_in_frame_pixels(
    small_vit: VisionTransformer, weights_file: Path
) -> None:
    provider = make_cue(
        "features", "dino", {"weights": str(weights_file), "device": "cpu", "resolution": "32"}
    )
    assert isinstance(provider, DinoProvider)
    clip = make_clip(50, 70)
    result = provider.features(clip, 0)
    assert result.stride == 25  # round(50 · 16 / 32): the short side becomes 2 patches
    assert result.features.shape == (384, 2, 3)
    with torch.no_grad():
        expected = small_vit(provider._network_input(clip.image(0), 25))[0].numpy()
    np.testing.assert_allclose(result.features, expected, rtol=1e-5, atol=1e-5)
    keys = DinoProvider(weights=weights_file, device="cpu", resolution=32, facet="keys")
    assert keys.features(clip, 0).features.shape == (384, 2, 3)


def test_registered_and_options_checked(weights_file: Path) -> None:
    assert "dino" in cue_names("features")
    with pytest.raises(VpsbenchError, match="facet"):
        DinoProvider(weights=weights_file, facet="values")
    with pytest.raises(VpsbenchError, match="resolution"):
        DinoProvider(weights=weights_file, resolution="-3")


@pytest.mark.slow
def test_default_resolution_on_a_kitti_sized_frame(weights_file: Path) -> None:
    provider = DinoProvider(weights=weights_file, device="cpu")  # ViT-S/16, resolution 320
    result = provider.features(make_clip(375, 1242), 0)
    assert result.stride == 19  # round(375 · 16 / 320)
    assert result.features.shape == (384, 20, 66)
    assert np.isfinite(result.features).all()
