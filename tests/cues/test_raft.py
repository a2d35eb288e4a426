"""The pure-PyTorch RAFT: shapes, correlation lookup, upsampling, weights and the provider."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from vpsbench.cues import MissingWeightsError, VideoClip, make_cue
from vpsbench.cues.checkpoints import load_state_checked
from vpsbench.cues.raft import RaftFlow, SmurfFlow
from vpsbench.cues.raft_model import (
    CorrelationPyramid,
    Raft,
    RaftConfig,
    config_for_state_dict,
    convert_smurf_checkpoint,
    pad_to_raft_size,
    smurf_variable_names,
    swap_window_axes,
    upsample_flow_convex,
)
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.errors import VpsbenchError


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny inputs gain nothing from threads, which thrash when ``pytest -n`` shares the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_raft(context_norm: str = "batch", seed: int = 0) -> Raft:
    """A randomly initialised RAFT in eval mode (batch norms get non-trivial statistics)."""
    torch.manual_seed(seed)
    model = Raft(RaftConfig(context_norm=context_norm))  # type: ignore[arg-type]
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def image_pair(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random images in [0, 1], the second the first shifted right by 3 pixels."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, height, width, generator=generator)
    return image, torch.roll(image, shifts=3, dims=-1)


def run(
    model: Raft, images: tuple[torch.Tensor, torch.Tensor], iterations: int = 2
) -> torch.Tensor:
    with torch.inference_mode():
        return model(*images, iterations)


@pytest.fixture(scope="module")
def model() -> Raft:
    return random_raft()


@pytest.mark.parametrize(("height", "width"), [(128, 128), (128, 192), (136, 256)])
def test_forward_gives_full_resolution_flow(model: Raft, height: int, width: int) -> None:
    flow = run(model, image_pair(height, width), iterations=1)
    assert flow.shape == (1, 2, height, width)
    assert torch.isfinite(flow).all()


def test_forward_rejects_sizes_that_are_not_multiples_of_8(model: Raft) -> None:
    with pytest.raises(VpsbenchError, match="multiple of 8"):
        run(model, image_pair(130, 128))


def test_padding_reaches_a_multiple_of_8_and_the_minimum_size() -> None:
    image = torch.rand(1, 3, 50, 201)
    padded, (top, bottom, left, right) = pad_to_raft_size(image, 128)
    assert padded.shape[-2:] == (128, 208)
    assert (top, bottom, left, right) == (39, 39, 3, 4)
    torch.testing.assert_close(padded[..., top : top + 50, left : left + 201], image)


def test_correlation_lookup_uses_raft_channel_order() -> None:
    # fmap2 is fmap1 moved one cell right, so the correlation peaks at dx = +1, dy = 0, which
    # RAFT's order (dx slow, dy fast) puts at channel (r + 1) * (2r + 1) + r = 49 for r = 4.
    torch.manual_seed(0)
    features1 = torch.nn.functional.normalize(torch.randn(1, 64, 16, 16), dim=1) * 8
    features2 = torch.roll(features1, shifts=1, dims=-1)
    pyramid = CorrelationPyramid(features1, features2, levels=4, radius=4)
    coords = torch.stack(
        torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="xy")
    ).unsqueeze(0)
    windows = pyramid.lookup(coords)
    assert windows.shape == (1, 4 * 81, 16, 16)
    assert int(windows[0, :81, 8, 8].argmax()) == 5 * 9 + 4


def test_convex_upsampling_of_constant_flow_with_uniform_weights() -> None:
    flow = torch.tensor([1.5, -0.5]).view(1, 2, 1, 1).expand(1, 2, 4, 5)
    upsampled = upsample_flow_convex(flow, torch.zeros(1, 576, 4, 5))
    assert upsampled.shape == (1, 2, 32, 40)
    interior = upsampled[..., 8:24, 8:32]
    torch.testing.assert_close(interior, (8 * flow[..., :1, :1]).expand_as(interior))


def test_identical_frames_give_finite_flow_through_the_provider(tmp_path: Path) -> None:
    root = prepare_synthetic(
        tmp_path / "synthetic",
        videos=1,
        frames=2,
        height=48,
        width=96,
        seed=0,
        splits=["val"],
        workers=1,
    )
    dataset = open_dataset("synthetic", root)
    clip = VideoClip(dataset, "val", dataset.sequences("val")[0])
    weights = tmp_path / "raft.pt"
    torch.save(random_raft().state_dict(), weights)
    provider = make_cue("flow", "raft", {"weights": str(weights), "iterations": 2, "device": "cpu"})
    assert isinstance(provider, RaftFlow)
    flow = provider.flow(clip, 0, 0)
    assert flow.dtype == np.float32
    assert flow.shape == (48, 96, 2)
    assert np.isfinite(flow).all()
    assert provider.flow(clip, 0, 1).shape == (48, 96, 2)


def test_saved_weights_load_into_a_fresh_model_with_identical_output(
    model: Raft, tmp_path: Path
) -> None:
    images = image_pair(128, 128)
    path = tmp_path / "raft.pth"
    torch.save({f"module.{key}": value for key, value in model.state_dict().items()}, path)
    provider = RaftFlow(weights=path, iterations=2, device="cpu")
    assert provider.model.config.context_norm == "batch"
    torch.testing.assert_close(run(provider.model, images), run(model, images), rtol=0, atol=0)


def test_missing_or_misshaped_keys_are_clear_errors(model: Raft, tmp_path: Path) -> None:
    state = model.state_dict()
    path = tmp_path / "weights.pt"
    torch.save(
        {key: value for key, value in state.items() if key != "update_block.mask.2.bias"}, path
    )
    with pytest.raises(VpsbenchError, match=r"weights\.pt.*update_block\.mask\.2\.bias"):
        RaftFlow(weights=path)
    torch.save(dict(state, **{"fnet.conv2.weight": torch.zeros(128, 128, 1, 1)}), path)
    with pytest.raises(VpsbenchError, match=r"fnet\.conv2\.weight.*\(128, 128, 1, 1\)"):
        RaftFlow(weights=path)


def test_unreadable_weights_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(VpsbenchError, match=r"broken\.pt"):
        RaftFlow(weights=path)


def test_missing_weights_name_the_path_and_where_they_are_published(tmp_path: Path) -> None:
    absent = tmp_path / "raft-things.pth"
    with pytest.raises(MissingWeightsError, match=r"raft-things\.pth.*princeton-vl/RAFT"):
        make_cue("flow", "raft", {"weights": str(absent)})
    with pytest.raises(MissingWeightsError, match=r"no weights file given.*gresearch/smurf"):
        make_cue("flow", "smurf")


def test_smurf_is_an_alias_that_reads_the_context_norm_off_the_weights(tmp_path: Path) -> None:
    smurf_like = random_raft("instance")
    path = tmp_path / "smurf.pt"
    torch.save(smurf_like.state_dict(), path)
    provider = make_cue("flow", "smurf", {"weights": str(path), "device": "cpu"})
    assert isinstance(provider, SmurfFlow)
    assert provider.model.config.context_norm == "instance"
    assert config_for_state_dict(random_raft().state_dict()).context_norm == "batch"


def as_smurf_variables(model: Raft) -> dict[str, npt.NDArray[np.float32]]:
    """The model's weights as SMURF's TF checkpoint holds them (the converter's inverse)."""
    state = model.state_dict()
    state["update_block.encoder.convc1.weight"] = swap_window_axes(
        state["update_block.encoder.convc1.weight"], model.config
    )
    variables = {}
    for tf_name, key in smurf_variable_names().items():
        value = state[key]
        variables[tf_name] = (value.permute(2, 3, 1, 0) if value.ndim == 4 else value).numpy()
    return variables


def test_smurf_variables_convert_to_an_identical_model() -> None:
    smurf_like = random_raft("instance", seed=1)
    variables = as_smurf_variables(smurf_like)
    assert len(variables) == 94  # 47 convolutions, kernel and bias each
    published = "feature_model/cnet/layer2/layer_with_weights-0/downsample/layer_with_weights-0"
    assert f"{published}/kernel/.ATTRIBUTES/VARIABLE_VALUE" in variables
    assert variables[
        "flow_model/update_block/gru/convz1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    ].shape == (
        1,
        5,
        384,
        128,
    )
    converted = Raft(RaftConfig(context_norm="instance"))
    load_state_checked(converted, convert_smurf_checkpoint(variables), "smurf")
    images = image_pair(128, 128)
    torch.testing.assert_close(run(converted.eval(), images), run(smurf_like, images))


def test_smurf_correlation_channels_are_reordered_to_raft_order() -> None:
    # SMURF's window puts dy on the slow axis: its channel for (dx=+1, dy=0) is 4 * 9 + 5 = 41,
    # RAFT's is 5 * 9 + 4 = 49; a kernel reading SMURF's channel 41 must read RAFT's 49.
    variables = as_smurf_variables(random_raft("instance"))
    name = "flow_model/update_block/encoder/convc1/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    kernel = np.zeros_like(variables[name])
    kernel[0, 0, 41, 0] = 1.0
    variables[name] = kernel
    weight = convert_smurf_checkpoint(variables)["update_block.encoder.convc1.weight"]
    assert weight[0, :, 0, 0].nonzero().flatten().tolist() == [49]


def test_smurf_checkpoint_with_missing_variables_is_refused() -> None:
    with pytest.raises(VpsbenchError, match="not a SMURF RAFT checkpoint: 94 of 94"):
        convert_smurf_checkpoint({})


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is not None, reason="tensorflow is installed"
)
def test_tensorflow_checkpoint_without_tensorflow_says_how_to_convert(tmp_path: Path) -> None:
    (tmp_path / "ckpt-1.index").write_bytes(b"")
    with pytest.raises(
        VpsbenchError, match=r"needs tensorflow.*python -m vpsbench\.cues\.raft_model"
    ):
        make_cue("flow", "smurf", {"weights": str(tmp_path / "ckpt-1")})


def test_iterations_must_be_a_positive_integer(model: Raft, tmp_path: Path) -> None:
    path = tmp_path / "raft.pt"
    torch.save(model.state_dict(), path)
    assert RaftFlow(weights=path, iterations="3", device="cpu").iterations == 3  # type: ignore[arg-type]
    with pytest.raises(VpsbenchError, match="iterations=0 must be a positive integer"):
        RaftFlow(weights=path, iterations=0)
