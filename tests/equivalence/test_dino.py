"""DINO ViT-S/8, ViT-B/8, ViT-S/16 (``dino`` cue provider) against facebookresearch/dino.

The upstream ``vision_transformer.py`` builds each backbone with seeded random weights (position
embedding, class token and norms included); the weights are saved in the two containers DINO
publishes (the plain backbone ``*_pretrain.pth`` and the full training ``checkpoint.pth`` with
``teacher``/``student``/``optimizer``/``args``), read back through the provider's ``weights=``
option, and the provider's output is compared with upstream on the same frame: the last-layer
patch tokens after the final norm (``get_intermediate_layers``), the last block's keys
(``facet=keys``; upstream: its ``attn.qkv`` output) and the last-layer attention
(``get_last_selfattention``). Frames of 48×80 make a non-square grid that is not the 224-pixel
pre-training one, so the bicubic position-embedding interpolation is exercised.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.equivalence.upstream import load_module, require, require_packages  # noqa: E402
from vpsbench.cues import VideoClip  # noqa: E402
from vpsbench.cues.dino import DinoProvider  # noqa: E402
from vpsbench.cues.vit import VIT_CONFIGS  # noqa: E402
from vpsbench.datasets.base import Dataset  # noqa: E402
from vpsbench.errors import InputError  # noqa: E402
from vpsbench.video import FrameRef, SequenceRef  # noqa: E402

TOLERANCE = 1e-4
# DINO's eval transforms: ToTensor() then Normalize(ImageNet mean, std).
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# (vpsbench arch, upstream builder, patch size)
ARCHS = [("vits8", "vit_small", 8), ("vitb8", "vit_base", 8), ("vits16", "vit_small", 16)]


@pytest.fixture(scope="module")
def upstream() -> tuple[ModuleType, ModuleType]:
    """Upstream ``vision_transformer`` and ``utils`` (MultiCropWrapper, load_pretrained_weights)."""
    folder = require("dino")
    require_packages("PIL")  # upstream utils.py imports PIL.ImageFilter
    return load_module(folder, "vision_transformer"), load_module(folder, "utils")


def randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Seeded random values for every parameter: norms near 1, small weights and biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name in ("pos_embed", "cls_token") or name.endswith((".pos_embed", ".cls_token")):
                parameter.normal_(0.0, 0.5, generator=generator)
            elif "norm" in name and name.endswith("weight"):
                parameter.normal_(1.0, 0.2, generator=generator)
            elif name.endswith("bias"):
                parameter.normal_(0.0, 0.1, generator=generator)
            else:
                parameter.normal_(0.0, 0.05, generator=generator)
    return module.eval()


def build(vit: ModuleType, builder: str, patch: int, seed: int) -> torch.nn.Module:
    """Upstream ``vit_small``/``vit_base`` with seeded random weights."""
    torch.manual_seed(seed)
    return randomise(getattr(vit, builder)(patch_size=patch), seed)


def frame_clip(height: int, width: int, seed: int = 0) -> VideoClip:
    """A one-frame clip of a random RGB frame held in memory."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    refs = (FrameRef("seq", "000000", 0),)
    return VideoClip(cast(Dataset, None), "val", SequenceRef("seq", refs), _images={0: image})


def dino_input(clip: VideoClip) -> torch.Tensor:
    """The frame as DINO's eval transform gives it to the network (1, 3, H, W)."""
    image = torch.from_numpy(np.ascontiguousarray(clip.image(0))).permute(2, 0, 1)[None]
    return (image.float() / 255.0 - MEAN) / STD


def upstream_outputs(model: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Upstream patch tokens and last-block keys as (D, h, w), and the last-layer attention."""
    batch, _, height, width = images.shape
    patch = model.patch_embed.patch_size
    grid = (height // patch, width // patch)
    captured: list[torch.Tensor] = []
    hook = model.blocks[-1].attn.qkv.register_forward_hook(
        lambda _module, _inputs, output: captured.append(output)
    )
    with torch.no_grad():
        tokens = model.get_intermediate_layers(images, n=1)[0]
        attention = model.get_last_selfattention(images)
    hook.remove()
    qkv = captured[0]
    dim = qkv.shape[-1] // 3
    keys = qkv.reshape(batch, -1, 3, dim)[:, :, 1]  # heads concatenated, as upstream lays them

    def dense(sequence: torch.Tensor) -> torch.Tensor:
        return sequence[0, 1:].transpose(0, 1).reshape(dim, *grid)

    return {"tokens": dense(tokens), "keys": dense(keys), "attention": attention}


def vpsbench_outputs(weights: Path, clip: VideoClip, arch: str) -> dict[str, torch.Tensor]:
    """What the ``dino`` provider outputs (native resolution) and its network's attention."""
    out: dict[str, torch.Tensor] = {}
    for facet in ("tokens", "keys"):
        provider = DinoProvider(weights=weights, device="cpu", resolution="native", facet=facet)
        assert provider.model.config == VIT_CONFIGS[arch]  # architecture read off the file
        result = provider.features(clip, 0)
        assert result.stride == provider.patch_size
        out[facet] = torch.from_numpy(result.features)
    with torch.no_grad():
        out["attention"] = provider.model.last_self_attention(dino_input(clip))
    return out


def assert_equal_outputs(
    ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], what: str
) -> None:
    for name, expected in theirs.items():
        got = ours[name]
        assert got.shape == expected.shape, f"{what} {name}: {got.shape} vs {expected.shape}"
        difference = float((got - expected).abs().max())
        assert difference <= TOLERANCE, f"{what} {name}: max abs difference {difference:.3g}"
    # the discrete read-out DINO's attention maps are used for: the most attended patch per head
    assert torch.equal(
        ours["attention"][0, :, 0, 1:].argmax(-1), theirs["attention"][0, :, 0, 1:].argmax(-1)
    )


@pytest.mark.parametrize(("arch", "builder", "patch"), ARCHS)
def test_pretrain_backbone_file_gives_upstream_outputs(
    upstream: tuple[ModuleType, ModuleType],
    arch: str,
    builder: str,
    patch: int,
    tmp_path: Path,
) -> None:
    """``dino_*_pretrain.pth`` (``torch.save(model.state_dict())``) on a 48×80 frame."""
    vit, _ = upstream
    model = build(vit, builder, patch, seed=11)
    path = tmp_path / "dino_pretrain.pth"
    torch.save(model.state_dict(), path)
    clip = frame_clip(48, 80)
    assert_equal_outputs(
        vpsbench_outputs(path, clip, arch), upstream_outputs(model, dino_input(clip)), arch
    )


def test_pretraining_grid_and_square_grids_match(
    upstream: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    """ViT-S/16 at 224×224 (stored embedding used as is) and 64×64 (interpolated, square)."""
    vit, _ = upstream
    model = build(vit, "vit_small", 16, seed=12)
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(model.state_dict(), path)
    for size in (224, 64):
        clip = frame_clip(size, size, seed=size)
        theirs = upstream_outputs(model, dino_input(clip))
        assert_equal_outputs(vpsbench_outputs(path, clip, "vits16"), theirs, f"{size}x{size}")


def dino_args() -> argparse.Namespace:
    """The ``args`` entry of DINO's checkpoint: main_dino.py's argparse result."""
    return argparse.Namespace(
        arch="vit_small",
        patch_size=16,
        out_dim=1024,
        norm_last_layer=True,
        momentum_teacher=0.996,
        use_bn_in_head=False,
        warmup_teacher_temp=0.04,
        teacher_temp=0.04,
        use_fp16=True,
        weight_decay=0.04,
        lr=0.0005,
        optimizer="adamw",
        global_crops_scale=(0.4, 1.0),
        local_crops_number=8,
        local_crops_scale=(0.05, 0.4),
        data_path="/path/to/imagenet/train",
        output_dir=".",
        dist_url="env://",
        gpu=0,
        rank=0,
        world_size=1,
    )


def full_checkpoint(upstream: tuple[ModuleType, ModuleType], path: Path) -> torch.nn.Module:
    """Write DINO's ``checkpoint.pth`` (as main_dino.py saves it); return the teacher backbone."""
    vit, utils = upstream
    out_dim = 1024  # small but real DINOHead (the paper uses 65536)
    student = utils.MultiCropWrapper(
        build(vit, "vit_small", 16, seed=21), vit.DINOHead(384, out_dim, norm_last_layer=True)
    )
    teacher = utils.MultiCropWrapper(
        build(vit, "vit_small", 16, seed=22), vit.DINOHead(384, out_dim)
    )
    randomise(student.head, 23)
    randomise(teacher.head, 24)
    # the student is DistributedDataParallel-wrapped in training: its keys gain "module."
    student_state = {f"module.{key}": value for key, value in student.state_dict().items()}
    optimizer = torch.optim.AdamW(utils.get_params_groups(student), lr=0.0005)
    student.train()
    student(torch.rand(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    student.eval()
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(torch.ones((), requires_grad=True))  # creates the scale, as one fp16 step would
    torch.save(
        {
            "student": student_state,
            "teacher": teacher.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": 100,
            "args": dino_args(),
            "dino_loss": {"center": torch.randn(1, out_dim)},  # DINOLoss's only buffer
            "fp16_scaler": scaler.state_dict(),
        },
        path,
    )
    backbone: torch.nn.Module = teacher.backbone
    return backbone


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")  # DINOHead
def test_full_training_checkpoint_loads_the_teacher_like_upstream(
    upstream: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    """``checkpoint.pth``: the teacher backbone is used, as upstream's checkpoint_key=teacher."""
    _, utils = upstream
    path = tmp_path / "checkpoint.pth"
    teacher = full_checkpoint(upstream, path)
    clip = frame_clip(48, 80, seed=5)
    theirs = upstream_outputs(teacher, dino_input(clip))
    assert_equal_outputs(vpsbench_outputs(path, clip, "vits16"), theirs, "checkpoint.pth")
    # upstream's own loader (eval_*.py: load_pretrained_weights(..., "teacher", ...)) agrees;
    # its torch.load needs argparse.Namespace allowed under torch >= 2.6's weights_only default
    vit, _ = upstream
    reloaded = vit.vit_small(patch_size=16).eval()  # upstream's own initialisation
    with torch.serialization.safe_globals([argparse.Namespace]):
        utils.load_pretrained_weights(reloaded, str(path), "teacher", "vit_small", 16)
    assert_equal_outputs(
        upstream_outputs(reloaded, dino_input(clip)), theirs, "upstream load_pretrained_weights"
    )


@pytest.fixture(scope="module")
def vits16_state(upstream: tuple[ModuleType, ModuleType]) -> dict[str, Any]:
    """A ViT-S/16 backbone state dict as upstream writes it (random weights)."""
    vit, _ = upstream
    return dict(build(vit, "vit_small", 16, seed=31).state_dict())


CALLS: list[str] = []


def record_call(text: str) -> None:
    """What a malicious pickle would run on load; the test checks it never runs."""
    CALLS.append(text)


class Payload:
    """Unpickles by calling :func:`record_call`."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return record_call, ("ran",)


def test_checkpoint_with_code_is_refused_without_running_it(
    vits16_state: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "checkpoint.pth"
    torch.save({"teacher": vits16_state, "args": Payload()}, path)
    with pytest.raises(InputError, match="cannot read checkpoint") as error:
        DinoProvider(weights=path, device="cpu")
    assert CALLS == []
    assert "\n" not in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("rename", r"lacks key 'norm\.weight'"),
        ("extra", r"unexpected key 'fc_norm\.weight'"),
        ("student_only", r"lacks key 'cls_token' and 149 more"),
        ("misshaped", r"'pos_embed' has shape \(1, 50, 384\)"),
    ],
)
def test_wrong_keys_are_refused_with_a_clear_error(
    vits16_state: dict[str, Any], change: str, message: str, tmp_path: Path
) -> None:
    state = dict(vits16_state)
    if change == "rename":
        state["fc_norm.weight"] = state.pop("norm.weight")
    elif change == "extra":
        state["fc_norm.weight"] = state["norm.weight"].clone()
    elif change == "student_only":  # no teacher: nothing of the backbone at the top level
        state = {"student": {f"module.backbone.{key}": value for key, value in state.items()}}
    else:  # a ViT trained at 112 pixels: its stored grid is 7×7, not 14×14
        state["pos_embed"] = state["pos_embed"][:, :50].clone()
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match=message) as error:
        DinoProvider(arch="vits16", weights=path, device="cpu")
    assert "\n" not in str(error.value)
    assert str(path) in str(error.value)
