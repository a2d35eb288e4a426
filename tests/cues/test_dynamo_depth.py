"""Dynamo-Depth networks: shapes, checkpoint layouts and key names, weight errors, provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vpsbench.cues import MissingWeightsError, VideoClip, cue_names, make_cue  # noqa: E402
from vpsbench.cues.dynamo_depth import (  # noqa: E402
    DynamoDepthNet,
    DynamoDepthProvider,
    disparity_to_depth,
    split_combined,
)
from vpsbench.cues.resnet import ResNetEncoder  # noqa: E402
from vpsbench.datasets.base import Dataset  # noqa: E402
from vpsbench.errors import InputError, VpsbenchError  # noqa: E402
from vpsbench.video import FrameRef, SequenceRef  # noqa: E402

HEIGHT, WIDTH = 64, 96  # network input size recorded in the test checkpoints


def make_clip(frames: int = 3, height: int = 50, width: int = 70) -> VideoClip:
    """A clip whose frames are random images held in memory (no dataset on disk)."""
    rng = np.random.default_rng(7)
    images = {t: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for t in range(frames)}
    refs = tuple(FrameRef("seq", f"{t:06d}", t) for t in range(frames))
    return VideoClip(cast(Dataset, None), "val", SequenceRef("seq", refs), _images=images)


def dynamo_files(net: DynamoDepthNet) -> dict[str, dict[str, Any]]:
    """Per-module state dicts as Dynamo-Depth's ``Model.save`` writes them."""
    files: dict[str, dict[str, Any]] = {}
    for module in net.module_names():
        state: dict[str, Any] = dict(net.get_submodule(module).state_dict())
        if module.endswith("_enc"):  # torchvision's classifier and the training size
            state["encoder.fc.weight"] = torch.zeros(1000, 512)
            state["encoder.fc.bias"] = torch.zeros(1000)
            state["height"], state["width"] = HEIGHT, WIDTH
        if module == "pose_dec":  # Dynamo-Depth registers the pose convs twice (as net.0..3)
            for index, name in enumerate(("squeeze", "pose0", "pose1", "pose2")):
                state[f"net.{index}.weight"] = state[f"{name}.weight"]
                state[f"net.{index}.bias"] = state[f"{name}.bias"]
        files[module] = state
    return files


@pytest.fixture(scope="module")
def reference_net() -> DynamoDepthNet:
    torch.manual_seed(0)
    net = DynamoDepthNet(18).eval()
    with torch.no_grad():  # make the motion mask depend on the input (zero-free biases)
        for parameter in net.motion_mask.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return net


@pytest.fixture(scope="module")
def weights_dir(reference_net: DynamoDepthNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("K_Dynamo-Depth_MD2")
    for module, state in dynamo_files(reference_net).items():
        torch.save(state, folder / f"{module}.pth")
    return folder


def test_encoder_feature_shapes() -> None:
    images = torch.rand(2, 6, 64, 96)
    features = ResNetEncoder(18, num_input_images=2)(images)
    assert [tuple(f.shape) for f in features] == [
        (2, 64, 32, 48),
        (2, 64, 16, 24),
        (2, 128, 8, 12),
        (2, 256, 4, 6),
        (2, 512, 2, 3),
    ]
    assert ResNetEncoder(50).num_ch_enc == (64, 256, 512, 1024, 2048)


def test_network_outputs_have_the_input_resolution(reference_net: DynamoDepthNet) -> None:
    frames = [torch.rand(1, 3, 64, 96) for _ in range(3)]
    with torch.no_grad():
        disparity = reference_net.disparity(frames[1])
        ego = reference_net.ego_motion(*frames)
        motion = reference_net.motion_probability(*frames)
    assert disparity.shape == (1, 1, 64, 96)
    assert float(disparity.min()) > 0 and float(disparity.max()) < 1
    assert ego.shape == (1, 6, 1, 1)
    assert motion.shape == (1, 1, 64, 96)
    assert float(motion.min()) >= 0 and float(motion.max()) <= 1


def test_disparity_to_depth_spans_min_and_max_depth() -> None:
    depth = disparity_to_depth(torch.tensor([0.0, 1.0]), min_depth=0.1, max_depth=100.0)
    torch.testing.assert_close(depth, torch.tensor([100.0, 0.1]))


@pytest.fixture(scope="module")
def provider(weights_dir: Path) -> DynamoDepthProvider:
    return DynamoDepthProvider(weights=weights_dir, device="cpu")


def test_provider_reproduces_the_saved_network(
    reference_net: DynamoDepthNet, provider: DynamoDepthProvider
) -> None:
    assert provider.input_size == (HEIGHT, WIDTH)  # read from depth_enc.pth
    clip = make_clip()
    result = provider.depth_motion(clip, 1)
    assert result.depth.shape == result.motion.shape == (50, 70)
    assert result.depth.dtype == result.motion.dtype == np.float32
    frames = [provider._prepare(clip.image(t)) for t in range(3)]
    with torch.no_grad():
        disparity = reference_net.disparity(frames[1])
        motion = reference_net.motion_probability(*frames)
    expected_depth = disparity_to_depth(provider._to_frame(disparity, (50, 70)))[0, 0].numpy()
    expected_motion = provider._to_frame(motion, (50, 70))[0, 0].numpy()
    np.testing.assert_allclose(result.depth, expected_depth, rtol=1e-5)
    np.testing.assert_allclose(result.motion, expected_motion, atol=1e-6)
    assert (result.depth >= 0.1).all() and (result.depth <= 100.0).all()


def test_motion_at_the_clip_ends_uses_the_frame_itself(provider: DynamoDepthProvider) -> None:
    clip = make_clip(frames=1)
    result = provider.depth_motion(clip, 0)
    assert result.motion.shape == (50, 70)


def test_registered_as_depth_provider(weights_dir: Path) -> None:
    assert "dynamo-depth" in cue_names("depth")
    provider = make_cue("depth", "dynamo-depth", {"weights": str(weights_dir), "device": "cpu"})
    assert isinstance(provider, DynamoDepthProvider)


def test_size_option_overrides_and_is_checked(weights_dir: Path) -> None:
    provider = DynamoDepthProvider(weights=weights_dir, device="cpu", size="64x128")
    assert provider.input_size == (64, 128)
    assert provider.depth_motion(make_clip(), 0).depth.shape == (50, 70)
    with pytest.raises(VpsbenchError, match="multiples of 32"):
        DynamoDepthProvider(weights=weights_dir, device="cpu", size="50x64")
    with pytest.raises(VpsbenchError, match="at least 64"):
        DynamoDepthProvider(weights=weights_dir, device="cpu", size="32x64")


def test_one_combined_file_loads(reference_net: DynamoDepthNet, tmp_path: Path) -> None:
    files = dynamo_files(reference_net)
    combined = {
        f"{module}.{key}": value
        for module in ("depth_enc", "depth_dec")
        for key, value in files[module].items()
        if isinstance(value, torch.Tensor)
    }
    torch.save(combined, tmp_path / "dynamo.pth")
    provider = DynamoDepthProvider(weights=tmp_path / "dynamo.pth", device="cpu", motion=False)
    assert provider.input_size == (192, 640)  # no size recorded in the file: the default
    for name, value in provider.net.state_dict().items():
        torch.testing.assert_close(value, reference_net.state_dict()[name])


def test_combined_keys_split_by_module_and_alias() -> None:
    whole_model = {
        "depth_enc.encoder.conv1.weight": 1,
        "motion_mask.refine_motion_redu0.bias": 2,
        "motion_dec._residual_translation.weight": 3,
    }
    assert split_combined(whole_model) == {
        "depth_enc": {"encoder.conv1.weight": 1},
        "motion_mask": {"refine_motion_redu0.bias": 2},
        "motion_dec": {"_residual_translation.weight": 3},
    }
    depth_pair = {"encoder.encoder.conv1.weight": 1, "decoder.upconv_4_0.conv.conv.bias": 2}
    assert split_combined(depth_pair) == {
        "depth_enc": {"encoder.conv1.weight": 1},
        "depth_dec": {"upconv_4_0.conv.conv.bias": 2},
    }


def test_monodepth2_depth_files_load_for_depth_only(
    reference_net: DynamoDepthNet, tmp_path: Path
) -> None:
    files = dynamo_files(reference_net)
    torch.save(files["depth_enc"], tmp_path / "encoder.pth")
    order = [f"upconv_{level}_{j}" for level in range(4, -1, -1) for j in (0, 1)]
    order += [f"dispconv_{scale}" for scale in range(4)]
    renamed = {}
    for key, value in files["depth_dec"].items():
        module, _, rest = key.partition(".")
        renamed[f"decoder.{order.index(module)}.{rest}"] = value
    torch.save(renamed, tmp_path / "depth.pth")
    provider = DynamoDepthProvider(weights=tmp_path, device="cpu", motion=False)
    result = provider.depth_motion(make_clip(), 0)
    assert not result.motion.any()
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(provider.net.disparity(image), reference_net.disparity(image))


def test_missing_weights_name_the_file_and_where_they_are_published(
    weights_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(MissingWeightsError, match=r"github\.com/YihongSun/Dynamo-Depth"):
        DynamoDepthProvider()
    absent = tmp_path / "nowhere"
    with pytest.raises(MissingWeightsError, match=str(absent)):
        DynamoDepthProvider(weights=absent)
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc"):
        (partial / f"{name}.pth").write_bytes((weights_dir / f"{name}.pth").read_bytes())
    with pytest.raises(MissingWeightsError, match=str(partial / "motion_mask.pth")):
        DynamoDepthProvider(weights=partial)


def _checkpoint_copy(weights_dir: Path, target: Path) -> Path:
    target.mkdir()
    for file in weights_dir.iterdir():
        (target / file.name).symlink_to(file)
    return target


def test_a_missing_key_is_named(weights_dir: Path, tmp_path: Path) -> None:
    folder = _checkpoint_copy(weights_dir, tmp_path / "ckpt")
    state = torch.load(folder / "motion_mask.pth", weights_only=True)
    del state["refine_motion_conv3.1.weight"]
    (folder / "motion_mask.pth").unlink()
    torch.save(state, folder / "motion_mask.pth")
    with pytest.raises(InputError, match=r"lacks key 'refine_motion_conv3\.1\.weight'") as error:
        DynamoDepthProvider(weights=folder)
    assert "motion_mask.pth" in str(error.value)


def test_a_misshaped_key_is_named_with_both_shapes(weights_dir: Path, tmp_path: Path) -> None:
    folder = _checkpoint_copy(weights_dir, tmp_path / "ckpt")
    state = torch.load(folder / "depth_enc.pth", weights_only=True)
    state["encoder.conv1.weight"] = torch.zeros(64, 6, 7, 7)
    (folder / "depth_enc.pth").unlink()
    torch.save(state, folder / "depth_enc.pth")
    with pytest.raises(InputError, match=r"'encoder\.conv1\.weight' has shape \(64, 6, 7, 7\)"):
        DynamoDepthProvider(weights=folder, motion=False)


def test_an_unreadable_checkpoint_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint") as error:
        DynamoDepthProvider(weights=broken)
    assert "\n" not in str(error.value)


def test_bad_options_are_clear() -> None:
    with pytest.raises(VpsbenchError, match="unknown device"):
        DynamoDepthProvider(device="tpu9")
    with pytest.raises(VpsbenchError, match="min_depth"):
        DynamoDepthProvider(min_depth=10, max_depth=5)
    with pytest.raises(VpsbenchError, match="motion"):
        DynamoDepthProvider(motion="perhaps")


@pytest.mark.slow
def test_full_size_frame_at_the_kitti_training_size(weights_dir: Path) -> None:
    full_size = DynamoDepthProvider(weights=weights_dir, device="cpu", size="192x640")
    result = full_size.depth_motion(make_clip(frames=3, height=375, width=1242), 1)
    assert result.depth.shape == result.motion.shape == (375, 1242)
    assert np.isfinite(result.depth).all() and np.isfinite(result.motion).all()
