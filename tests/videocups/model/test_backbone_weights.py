"""DINO ResNet-50 loader (vpsbench_methods.videocups.model.backbone_weights) on small hand-made
files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from vpsbench_methods.videocups.model.backbone_weights import DINO_RESNET50_URL, load_dino_resnet50

from vpsbench.cues.base import MissingWeightsError
from vpsbench.models.backbone import FrozenBatchNorm2d, NormConv2d, NormName, ResNet
from vpsbench.models.checkpoints import CheckpointMismatchError

BN_LEAVES = ("weight", "bias", "running_mean", "running_var")


def _small(norm: NormName = "FrozenBN", stride_in_1x1: bool = False) -> ResNet:
    return ResNet(
        stem_channels=16,
        res2_channels=64,
        blocks_per_stage=(1, 2, 1, 1),
        stride_in_1x1=stride_in_1x1,
        norm=norm,
    )


def _torchvision_names(blocks_per_stage: tuple[int, ...]) -> dict[str, str]:
    """torchvision key → detectron2 key, enumerated independently of the loader's rules."""
    table = {"conv1.weight": "stem.conv1.weight"}
    table.update({f"bn1.{leaf}": f"stem.conv1.norm.{leaf}" for leaf in BN_LEAVES})
    for stage, blocks in enumerate(blocks_per_stage):
        for block in range(blocks):
            tv = f"layer{stage + 1}.{block}"
            d2 = f"res{stage + 2}.{block}"
            for conv in (1, 2, 3):
                table[f"{tv}.conv{conv}.weight"] = f"{d2}.conv{conv}.weight"
                for leaf in BN_LEAVES:
                    table[f"{tv}.bn{conv}.{leaf}"] = f"{d2}.conv{conv}.norm.{leaf}"
            if block == 0:
                table[f"{tv}.downsample.0.weight"] = f"{d2}.shortcut.weight"
                for leaf in BN_LEAVES:
                    table[f"{tv}.downsample.1.{leaf}"] = f"{d2}.shortcut.norm.{leaf}"
    return table


def _randomised_source(seed: int = 0) -> ResNet:
    """A small torchvision-style ResNet with random weights and BN statistics."""
    generator = torch.Generator().manual_seed(seed)
    source = _small()
    with torch.no_grad():
        for name, tensor in source.state_dict().items():
            values = torch.rand(tensor.shape, generator=generator)
            tensor.copy_(values + 0.5 if name.endswith("running_var") else values - 0.5)
    return source


def _torchvision_state(source: ResNet) -> dict[str, Tensor]:
    source_state = source.state_dict()
    table = _torchvision_names((1, 2, 1, 1))
    assert set(table.values()) == set(source_state)  # the table covers the whole backbone
    state = {tv: source_state[d2].clone() for tv, d2 in table.items()}
    state["fc.weight"] = torch.randn(10, 512)  # the classifier: must be ignored
    state["fc.bias"] = torch.randn(10)
    return state


def _assert_same_backbone(source: ResNet, target: ResNet) -> None:
    target_state = target.state_dict()
    for name, tensor in source.state_dict().items():
        assert torch.equal(target_state[name], tensor), name
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = source(image), target(image)
    for name in expected:
        assert torch.allclose(expected[name], got[name], atol=1e-5), name


def test_torchvision_layout_loads_into_detectron2_names(tmp_path: Path) -> None:
    source = _randomised_source()
    path = tmp_path / "dino_resnet50_pretrain.pth"
    torch.save(_torchvision_state(source), path)
    target = _small()
    report = load_dino_resnet50(target, path)
    _assert_same_backbone(source, target)
    assert set(report.loaded) == set(target.state_dict())
    assert {"fc.weight", "fc.bias"} <= set(report.ignored)
    assert report.missing == () and report.unexpected == ()


@pytest.mark.parametrize("wrap", ["teacher", "state_dict", "plain-prefixed"])
def test_wrapped_and_prefixed_checkpoints_load(tmp_path: Path, wrap: str) -> None:
    source = _randomised_source(seed=3)
    state: dict[str, Tensor] = {
        f"module.backbone.{key}": value for key, value in _torchvision_state(source).items()
    }
    state["module.head.mlp.0.weight"] = torch.randn(8, 512)  # DINO's projection head
    state["module.backbone.bn1.num_batches_tracked"] = torch.tensor(7)
    payload: object = state
    if wrap == "teacher":
        payload = {"teacher": state, "student": {"junk": torch.zeros(1)}, "epoch": 100}
    elif wrap == "state_dict":
        payload = {"state_dict": state}
    path = tmp_path / "wrapped.pth"
    torch.save(payload, path)
    target = _small()
    load_dino_resnet50(target, path)
    _assert_same_backbone(source, target)


def test_trainable_batchnorm_backbone_loads(tmp_path: Path) -> None:
    """A backbone whose norms are nn.BatchNorm2d (with num_batches_tracked) loads too."""
    source = _randomised_source(seed=5)
    target = _small()
    for module in list(target.modules()):
        if isinstance(module, NormConv2d) and isinstance(module.norm, FrozenBatchNorm2d):
            module.norm = nn.BatchNorm2d(module.norm.num_features)
    counters = {k: v.clone() for k, v in target.state_dict().items() if "num_batches" in k}
    assert counters
    path = tmp_path / "dino.pth"
    torch.save(_torchvision_state(source), path)
    load_dino_resnet50(target, path)
    target_state = target.state_dict()
    for name, tensor in source.state_dict().items():
        assert torch.equal(target_state[name], tensor), name
    for name, counter in counters.items():
        assert torch.equal(target_state[name], counter)  # left as it was


def test_missing_file_names_path_and_url(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "dino_resnet50_pretrain.pth"
    with pytest.raises(MissingWeightsError) as error:
        load_dino_resnet50(_small(), path)
    assert str(path) in str(error.value)
    assert DINO_RESNET50_URL in str(error.value)
    assert "dino-resnet50" in str(error.value)


def test_wrong_shape_raises_one_line_mismatch(tmp_path: Path) -> None:
    state = _torchvision_state(_randomised_source())
    state["layer2.0.conv2.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    target = _small()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as error:
        load_dino_resnet50(target, path)
    message = str(error.value)
    assert str(path) in message and "res3.0.conv2.weight" in message and "\n" not in message
    for name, tensor in target.state_dict().items():  # nothing was copied
        assert torch.equal(tensor, before[name])


def test_missing_and_unknown_keys_raise(tmp_path: Path) -> None:
    state = _torchvision_state(_randomised_source())
    del state["layer4.0.bn3.running_var"]
    state["layer9.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_dino_resnet50(_small(), path)
    message = str(error.value)
    assert "res5.0.conv3.norm.running_var" in message and "layer9.0.conv1.weight" in message


def test_wider_checkpoint_than_model_is_refused(tmp_path: Path) -> None:
    state = _torchvision_state(_randomised_source())
    path = tmp_path / "wide.pth"
    torch.save(state, path)
    narrower = ResNet(
        stem_channels=8, res2_channels=32, blocks_per_stage=(1, 2, 1, 1), stride_in_1x1=False
    )
    with pytest.raises(CheckpointMismatchError, match="misshaped"):
        load_dino_resnet50(narrower, path)


def test_msra_striding_backbone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dino.pth"
    torch.save(_torchvision_state(_randomised_source()), path)
    with pytest.raises(ValueError, match="stride_in_1x1=False"):
        load_dino_resnet50(_small(stride_in_1x1=True), path)
