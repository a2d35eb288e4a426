"""vpsbench's ``dynamo-depth`` cue provider equals YihongSun/Dynamo-Depth's published networks.

The upstream ``networks.Model`` (monodepthv2 variant, ResNet-18, the upstream ``networks/`` code
unmodified) gets seeded random weights with BatchNorm running statistics set by a forward pass in
training mode; its own ``Model.save`` writes the checkpoint folder (one ``{module}.pth`` per
module, encoders with ``height``/``width``). vpsbench loads that folder through the provider's
``weights=`` option and both run on the same 64×192 frames: disparity, pose, ego-motion and
motion-mask logits/probabilities must agree to 1e-4. Also: every file's keys map one-to-one onto
vpsbench's modules, ResNet-50 depth files load and agree, a Lite-Mono folder (Dynamo-Depth's
non-MD2 checkpoints, not implemented) and a pickled-code file are refused with a clear error.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.equivalence.upstream import install_standins, load_module, require  # noqa: E402
from vpsbench.cues import VideoClip, make_cue  # noqa: E402
from vpsbench.cues.dynamo_depth import (  # noqa: E402
    DynamoDepthNet,
    DynamoDepthProvider,
    canonical_state,
    load_dynamo_depth,
)
from vpsbench.datasets.base import Dataset  # noqa: E402
from vpsbench.errors import InputError  # noqa: E402
from vpsbench.video import FrameRef, SequenceRef  # noqa: E402

HEIGHT, WIDTH = 64, 192  # training size recorded in the encoder files and used as input size
TOLERANCE = 1e-4
MIN_DEPTH, MAX_DEPTH = 0.1, 100.0  # Monodepth2's disp_to_depth range (the provider's default)
# Entries of upstream files that vpsbench deliberately does not load (see the loader's docstring):
# torchvision's classifier (never used by the encoders) and PoseDecoder's ``net`` ModuleList,
# which registers the same four convolutions a second time.
FC_KEYS = {"encoder.fc.weight", "encoder.fc.bias"}
POSE_DUPLICATES = {f"net.{index}.{kind}" for index in range(4) for kind in ("weight", "bias")}


@pytest.fixture(scope="module")
def networks() -> ModuleType:
    """Upstream ``networks`` package (torchvision's ResNet and timm from the test stand-ins)."""
    folder = require("dynamo-depth", "networks")
    install_standins()
    return load_module(folder.parent, "networks")


def options() -> SimpleNamespace:
    """The training options ``networks.Model`` reads (monodepthv2, ResNet-18, small size)."""
    return SimpleNamespace(
        depth_model="monodepthv2",
        encoder_num_layers=18,
        weights_init="scratch",
        scales=[0, 1, 2, 3],
        frame_ids=[0, -1, 1],
        height=HEIGHT,
        width=WIDTH,
    )


def randomise_batchnorm(model: torch.nn.Module, run: Any) -> None:
    """Random BN affine parameters, running statistics from ``run()`` in training mode."""
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in batchnorms:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.1)
            bn.momentum = None  # cumulative average: the statistics of the calibration pass
            bn.reset_running_stats()
        model.train()
        run()
        model.eval()
    assert all(float(bn.running_var.std()) > 0 for bn in batchnorms)


def amplify(conv: torch.nn.Module, gain: float) -> None:
    """Multiply a convolution's weight and bias by ``gain``."""
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.mul_(gain)


def frames_uint8(seed: int, count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(count)]


def as_tensor(frame: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1], as Dynamo-Depth's data loader gives ``color_aug`` at eval time."""
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0


def model_inputs(frames: list[np.ndarray]) -> dict[tuple[str, int, int], torch.Tensor]:
    """Upstream ``inputs`` for target frame 1 with neighbours 0 (id -1) and 2 (id +1)."""
    return {("color_aug", offset, 0): as_tensor(frames[1 + offset]) for offset in (0, -1, 1)}


def make_clip(frames: list[np.ndarray]) -> VideoClip:
    refs = tuple(FrameRef("seq", f"{t:06d}", t) for t in range(len(frames)))
    images = dict(enumerate(frames))
    return VideoClip(cast(Dataset, None), "val", SequenceRef("seq", refs), _images=images)


def max_abs(ours: torch.Tensor | np.ndarray, theirs: torch.Tensor) -> float:
    ours_tensor = torch.as_tensor(ours, dtype=torch.float32)
    assert ours_tensor.shape == theirs.shape, (ours_tensor.shape, theirs.shape)
    return float((ours_tensor - theirs.float()).abs().max())


@pytest.fixture(scope="module")
def upstream(networks: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Seeded upstream ResNet-18 ``Model``; its own ``save`` writes the checkpoint folder."""
    torch.manual_seed(0)
    model = networks.Model(options())
    calibration = model_inputs(frames_uint8(seed=11))
    randomise_batchnorm(model, lambda: model(calibration))
    # Output heads scaled so that the compared values have a trained model's spread (the default
    # init gives poses of ~1e-4, near-constant disparity and motion logits of ~1e-2).
    amplify(model.pose_dec.pose2, 300.0)
    amplify(model.depth_dec.dispconv_0, 20.0)
    for level in range(6):
        amplify(model.motion_mask.get_submodule(f"refine_motion_redu{level}"), 10.0)
    folder = tmp_path_factory.mktemp("K_Dynamo-Depth_MD2")
    model.save(str(folder))
    model.folder = folder
    return model


@pytest.fixture(scope="module")
def provider(upstream: Any) -> DynamoDepthProvider:
    """Loaded the way ``--set weights=PATH`` does it: the registry with string options."""
    cue = make_cue("depth", "dynamo-depth", {"weights": str(upstream.folder), "device": "cpu"})
    assert isinstance(cue, DynamoDepthProvider)
    return cue


def test_upstream_writes_seven_files_and_each_maps_onto_vpsbench(upstream: Any) -> None:
    names = sorted(path.name for path in upstream.folder.iterdir())
    modules = ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec")
    assert names == sorted(f"{module}.pth" for module in (*modules, "motion_mask"))
    net = DynamoDepthNet(18)
    for module in net.module_names():
        # weights_only=True: these files hold nothing but tensors and ints (no pickled code).
        entries = torch.load(upstream.folder / f"{module}.pth", weights_only=True)
        ours = canonical_state(module, entries)
        expected = net.get_submodule(module).state_dict()
        assert set(ours) == set(expected), module  # no missing, no unexpected key
        saved = upstream.get_submodule(module).state_dict()
        for key, value in ours.items():
            assert torch.equal(value, saved[key]), key
        dropped = set(entries) - set(ours)
        if module.endswith("_enc"):
            assert dropped == FC_KEYS | {"height", "width"}
            assert (entries["height"], entries["width"]) == (HEIGHT, WIDTH)
        elif module == "pose_dec":
            assert dropped == POSE_DUPLICATES
        else:
            assert not dropped, module


def test_loaded_weights_are_the_upstream_weights(upstream: Any, provider: Any) -> None:
    assert provider.input_size == (HEIGHT, WIDTH)  # read from depth_enc.pth
    for module in provider.net.module_names():
        theirs = upstream.get_submodule(module).state_dict()
        for key, value in provider.net.get_submodule(module).state_dict().items():
            assert torch.equal(value, theirs[key]), f"{module}.{key}"


@pytest.fixture(scope="module")
def compared(upstream: Any, provider: DynamoDepthProvider) -> dict[str, Any]:
    """Upstream ``Model.forward`` and vpsbench on the same frames (target = frame 1)."""
    frames = frames_uint8(seed=5)
    inputs = model_inputs(frames)
    with torch.no_grad():
        theirs = upstream(inputs)
    result = provider.depth_motion(make_clip(frames), 1)
    previous, current, following = (as_tensor(frame) for frame in frames)
    net = provider.net
    with torch.no_grad():
        poses = {
            offset: net.pose_dec(net.pose_enc(torch.cat([source, current], 1))[-1])
            for offset, source in ((-1, previous), (1, following))
        }
        stacked = torch.cat([previous, current, following], 1)
        ego = net.ego_motion(previous, current, following)
        ours = {
            "disparity": net.disparity(current),
            "ego": ego,
            "logits": net.motion_mask([stacked, *net.motion_enc(stacked)], ego),
            "probability": net.motion_probability(previous, current, following),
        }
    return {"theirs": theirs, "ours": ours, "poses": poses, "result": result}


def test_whole_model_state_dict_in_one_file_loads_the_same(
    upstream: Any, provider: DynamoDepthProvider, tmp_path: Path
) -> None:
    torch.save(upstream.state_dict(), tmp_path / "model.pth")  # keys depth_enc.encoder.conv1…
    net, size = load_dynamo_depth(tmp_path / "model.pth")
    assert size is None  # the training size is only recorded in the per-module files
    reference = provider.net.state_dict()
    assert set(net.state_dict()) == set(reference)
    for key, value in net.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_disparity_and_depth_match(compared: dict[str, Any]) -> None:
    theirs = compared["theirs"][("disp", 0, 0)]
    assert max_abs(compared["ours"]["disparity"], theirs) <= TOLERANCE
    assert float(theirs.std()) > 0.01  # the comparison is not between two constant maps
    # The provider's depth is Monodepth2's disp_to_depth of the (same-size) disparity map.
    low, high = 1 / MAX_DEPTH, 1 / MIN_DEPTH
    depth = 1 / (low + (high - low) * theirs[0, 0].double())
    np.testing.assert_allclose(compared["result"].depth, depth.numpy(), rtol=1e-4)


def test_pose_and_ego_motion_match(compared: dict[str, Any]) -> None:
    theirs = compared["theirs"]
    for offset, (axis_angle, translation) in compared["poses"].items():
        assert max_abs(axis_angle[:, 0], theirs[("axisangle", 0, offset)]) <= TOLERANCE
        assert max_abs(translation[:, 0], theirs[("translation", 0, offset)]) <= TOLERANCE
    # Dynamo-Depth's Model.predict_motions: mean of (t-1 → t) and the inverse of (t+1 → t).
    translation = (theirs[("translation", 0, -1)] - theirs[("translation", 0, 1)]) / 2
    axis_angle = (theirs[("axisangle", 0, -1)] - theirs[("axisangle", 0, 1)]) / 2
    ego = torch.cat((translation, axis_angle), -1).permute(0, 2, 1).unsqueeze(3)
    assert max_abs(compared["ours"]["ego"], ego) <= TOLERANCE
    assert float(ego.abs().max()) > 1e-3  # a real ego-motion reaches the motion decoder


def test_motion_mask_matches(compared: dict[str, Any]) -> None:
    theirs, ours = compared["theirs"], compared["ours"]
    for offset in (-1, 1):  # upstream duplicates the mask for both neighbours
        assert max_abs(ours["logits"], theirs[("motion_prob", offset, 0)]) <= TOLERANCE
        assert max_abs(ours["probability"], theirs[("motion_mask", offset, 0)]) <= TOLERANCE
    probability = theirs[("motion_mask", 1, 0)]
    assert max_abs(compared["result"].motion, probability[0, 0]) <= TOLERANCE
    assert float(theirs[("motion_prob", 1, 0)].std()) > 1e-3  # not a constant field


def _save_modules(networks: ModuleType, folder: Path, **modules: torch.nn.Module) -> None:
    """Upstream ``Model.save`` for just these modules (no need to build the whole model)."""
    owner = SimpleNamespace(module_names=list(modules), opt=options(), **modules)
    networks.Model.save(owner, str(folder))


def test_resnet50_depth_network_matches(networks: ModuleType, tmp_path: Path) -> None:
    torch.manual_seed(1)
    encoder = networks.resnet_encoder.ResnetEncoder(50, False)
    decoder = networks.depth_decoder.DepthDecoder(encoder.num_ch_enc, range(4))
    image = as_tensor(frames_uint8(seed=3, count=1)[0])
    calibration = as_tensor(frames_uint8(seed=4, count=1)[0])
    both = torch.nn.Sequential(encoder, decoder)
    randomise_batchnorm(both, lambda: decoder(encoder(calibration)))
    amplify(decoder.dispconv_0, 20.0)  # a disparity map with spread (see ``upstream``)
    _save_modules(networks, tmp_path, depth_enc=encoder, depth_dec=decoder)
    provider = make_cue(
        "depth",
        "dynamo-depth",
        {"weights": str(tmp_path), "device": "cpu", "layers": "50", "motion": "false"},
    )
    assert isinstance(provider, DynamoDepthProvider)
    with torch.no_grad():
        theirs = decoder(encoder(image))[("disp", 0)]
        ours = provider.net.disparity(image)
    assert max_abs(ours, theirs) <= TOLERANCE
    assert float(theirs.std()) > 0.01


def test_lite_mono_checkpoints_are_refused_clearly(networks: ModuleType, tmp_path: Path) -> None:
    torch.manual_seed(2)
    encoder = networks.depth_encoder.LiteMono(model="lite-mono-8m", pretrained=False)
    decoder = networks.depth_decoder.LiteDepthDecoder(encoder.num_ch_enc, range(3))
    _save_modules(networks, tmp_path, depth_enc=encoder, depth_dec=decoder)
    with pytest.raises(InputError, match=r"Lite-Mono.*_MD2") as error:
        load_dynamo_depth(tmp_path, with_motion=False)
    assert "depth_enc.pth" in str(error.value)


_CALLS: list[str] = []


def _record_call(text: str) -> str:
    _CALLS.append(text)
    return text


class _Payload:
    """Unpickling this runs ``_record_call``: the loader must refuse, not execute it."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _record_call, ("unpickled",)


def test_a_checkpoint_with_pickled_code_is_refused(upstream: Any, tmp_path: Path) -> None:
    for file in upstream.folder.iterdir():
        (tmp_path / file.name).symlink_to(file)
    state = torch.load(upstream.folder / "pose_dec.pth", weights_only=True)
    state["extra"] = _Payload()
    (tmp_path / "pose_dec.pth").unlink()
    torch.save(state, tmp_path / "pose_dec.pth")
    with pytest.raises(InputError, match="cannot read checkpoint") as error:
        load_dynamo_depth(tmp_path)
    assert "pose_dec.pth" in str(error.value)
    assert not _CALLS
