"""RAFT-large (``raft`` flow provider) equals princeton-vl/RAFT, loaded from its own container.

Upstream's ``RAFT(args)`` (large: small=False, no mixed precision, no alternate correlation,
dropout 0) is built with seeded random weights, its batch norms given non-trivial affine
parameters and statistics, and saved as RAFT's train.py saves it: ``torch.save`` of the
``nn.DataParallel`` wrapper's state dict (every key ``module.``-prefixed). That file goes through
vpsbench's public path (``make_cue("flow", "raft", {"weights": PATH})``, which ``--set
weights=PATH`` reaches), and both networks run on the same frames: upstream's
``model(image1, image2, iters=12, test_mode=True)`` on 0..255 frames padded by its ``InputPadder``
against the provider's flow.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

torch = pytest.importorskip("torch")

from tests.equivalence.upstream import isolated_import, require  # noqa: E402
from vpsbench.cues import VideoClip, make_cue  # noqa: E402
from vpsbench.cues.raft import RaftFlow, read_raft_weights  # noqa: E402
from vpsbench.datasets.base import Dataset  # noqa: E402
from vpsbench.errors import InputError, VpsbenchError  # noqa: E402
from vpsbench.video import FrameRef, SequenceRef  # noqa: E402

ITERATIONS = 12
TOLERANCE = 1e-4
#: Keys of RAFT-large's state dict: 47 convolutions (weight, bias) and the context encoder's
#: 17 batch norms (weight, bias, running_mean, running_var, num_batches_tracked; a strided block's
#: projection norm appears twice, as ``norm3`` and ``downsample.1``).
RAFT_LARGE_KEYS = 179

# Upstream (2020) uses torch.cuda.amp.autocast and torch.meshgrid without ``indexing``.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.cuda.amp.autocast:FutureWarning"),
    pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning"),
]


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    """Upstream's ``RAFT`` class and ``InputPadder`` (raft/core imports its modules top-level)."""
    core = require("raft", "core")
    # Imported first so that isolated_import forgets only RAFT's own modules (raft, update,
    # extractor, corr, utils): scipy's and numpy's extension modules cannot be imported twice.
    import scipy.interpolate  # noqa: F401

    with isolated_import(core):
        import raft  # type: ignore[import-not-found]
        from utils.utils import InputPadder  # type: ignore[import-not-found]
    return {"RAFT": raft.RAFT, "InputPadder": InputPadder}


def upstream_args(*, small: bool = False) -> argparse.Namespace:
    """The arguments RAFT's evaluate.py / demo.py pass for the published models."""
    return argparse.Namespace(small=small, mixed_precision=False, alternate_corr=False, dropout=0)


@pytest.fixture(scope="module")
def upstream_raft(upstream: dict[str, Any]) -> Any:
    """Upstream RAFT-large, seeded, with batch norms that are not the identity, in eval mode."""
    torch.manual_seed(0)
    model = upstream["RAFT"](upstream_args())
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor, low, high in (
                (module.weight.data, 0.5, 1.5),
                (module.bias.data, -0.2, 0.2),
                (module.running_mean, -0.2, 0.2),
                (module.running_var, 0.5, 2.0),
            ):
                tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))
            module.num_batches_tracked.fill_(1000)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(upstream_raft: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights as RAFT's train.py writes them: the DataParallel wrapper's state dict."""
    path = tmp_path_factory.mktemp("raft") / "raft-things.pth"
    torch.save(torch.nn.DataParallel(upstream_raft).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def provider(checkpoint: Path) -> RaftFlow:
    """vpsbench's ``raft`` provider, built from the checkpoint as ``--set weights=PATH`` does."""
    built = make_cue(
        "flow", "raft", {"weights": str(checkpoint), "iterations": ITERATIONS, "device": "cpu"}
    )
    assert isinstance(built, RaftFlow)
    return built


def frame_pair(height: int, width: int, seed: int = 0) -> tuple[npt.NDArray[np.uint8], ...]:
    """Two RGB uint8 frames: smoothed noise, the second moved 3 px right and 2 px down."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height + 8, width + 8, 3))
    smooth = sum(np.roll(noise, (dy, dx), axis=(0, 1)) for dy in range(4) for dx in range(4)) / 16
    first = (255 * smooth[4 : 4 + height, 4 : 4 + width]).astype(np.uint8)
    second = (255 * smooth[2 : 2 + height, 1 : 1 + width]).astype(np.uint8)
    return first, second


def in_memory_clip(frames: tuple[npt.NDArray[np.uint8], ...]) -> VideoClip:
    """A clip whose frames are held in memory (the provider reads them via ``clip.image``)."""
    refs = tuple(FrameRef("seq", f"{t:06d}", t) for t in range(len(frames)))
    images = dict(enumerate(frames))
    return VideoClip(cast(Dataset, None), "val", SequenceRef("seq", refs), _images=images)


def as_upstream_input(frame: npt.NDArray[np.uint8]) -> torch.Tensor:
    """A frame as RAFT's demo.py feeds it: (1, 3, H, W) float in 0..255."""
    return torch.from_numpy(frame).permute(2, 0, 1).float()[None]


def upstream_flow(
    upstream: dict[str, Any], model: Any, frames: tuple[npt.NDArray[np.uint8], ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's (low-res, full-res) flow for frames padded and unpadded by its InputPadder."""
    image1, image2 = (as_upstream_input(frame) for frame in frames)
    padder = upstream["InputPadder"](image1.shape)  # mode 'sintel': even padding
    image1, image2 = padder.pad(image1, image2)
    with torch.no_grad():
        low, full = model(image1, image2, iters=ITERATIONS, test_mode=True)
    return low, padder.unpad(full)


def max_abs_diff(ours: torch.Tensor | npt.NDArray[np.float32], theirs: torch.Tensor) -> float:
    return float((torch.as_tensor(ours) - theirs).abs().max())


def test_checkpoint_loads_every_key_exactly(upstream_raft: Any, checkpoint: Path) -> None:
    saved = torch.load(checkpoint, weights_only=True)
    assert len(saved) == RAFT_LARGE_KEYS
    assert all(key.startswith("module.") for key in saved)
    read = read_raft_weights(checkpoint)
    provider = RaftFlow(weights=checkpoint, device="cpu")
    loaded = provider.model.state_dict()
    assert provider.model.config.context_norm == "batch"
    assert set(read) == set(loaded) == {key.removeprefix("module.") for key in saved}
    for key, value in upstream_raft.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_network_flow_matches_upstream(upstream_raft: Any, provider: RaftFlow) -> None:
    # 128×160: the smallest sizes whose coarsest correlation level keeps two cells per axis.
    first, second = frame_pair(128, 160)
    image1, image2 = as_upstream_input(first), as_upstream_input(second)
    with torch.no_grad():
        low, full = upstream_raft(image1, image2, iters=ITERATIONS, test_mode=True)
    coarse: list[torch.Tensor] = []

    def record_coarse_flow(module: Any, inputs: tuple[Any, ...], outputs: tuple[Any, ...]) -> None:
        coarse.append(inputs[3] + outputs[2])  # flow before the step + the step's update

    hook = provider.model.update_block.register_forward_hook(record_coarse_flow)
    try:
        with torch.inference_mode():
            ours = provider.model(image1 / 255, image2 / 255, ITERATIONS)
    finally:
        hook.remove()
    assert len(coarse) == ITERATIONS
    assert float(full.abs().max()) > 1.0  # the random network moves pixels: a real comparison
    assert max_abs_diff(ours, full) <= TOLERANCE
    assert max_abs_diff(coarse[-1], low) <= TOLERANCE


@pytest.mark.parametrize(("height", "width"), [(128, 160), (131, 155)])
def test_provider_flow_matches_upstream_with_its_input_padder(
    upstream: dict[str, Any], upstream_raft: Any, provider: RaftFlow, height: int, width: int
) -> None:
    # 131×155 pads to 136×160 (rows 2 + 3, columns 2 + 3) as InputPadder's 'sintel' mode does.
    frames = frame_pair(height, width, seed=1)
    _, theirs = upstream_flow(upstream, upstream_raft, frames)
    ours = provider.flow(in_memory_clip(frames), 0, 1)
    assert ours.shape == (height, width, 2)
    assert max_abs_diff(ours, theirs[0].permute(1, 2, 0)) <= TOLERANCE


def test_small_frames_are_padded_to_128_where_upstream_gives_nan(
    upstream: dict[str, Any], upstream_raft: Any, provider: RaftFlow
) -> None:
    # Upstream pads 60×90 to 64×96, whose coarsest correlation level is a single cell: its
    # pixel-to-grid scaling divides by size - 1 = 0 and the flow is NaN. The provider pads evenly
    # to 128×128 instead, which equals upstream run on the frames replicate-padded to 128×128.
    frames = frame_pair(60, 90, seed=2)
    _, theirs_small = upstream_flow(upstream, upstream_raft, frames)
    assert not torch.isfinite(theirs_small).any()
    top, left = (128 - 60) // 2, (128 - 90) // 2
    padded = tuple(
        np.pad(frame, ((top, 128 - 60 - top), (left, 128 - 90 - left), (0, 0)), mode="edge")
        for frame in frames
    )
    _, theirs = upstream_flow(upstream, upstream_raft, padded)
    ours = provider.flow(in_memory_clip(frames), 0, 1)
    assert np.isfinite(ours).all()
    expected = theirs[0, :, top : top + 60, left : left + 90].permute(1, 2, 0)
    assert max_abs_diff(ours, expected) <= TOLERANCE


def test_raft_small_checkpoint_is_refused_with_a_clear_error(
    upstream: dict[str, Any], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    small = upstream["RAFT"](upstream_args(small=True))
    path = tmp_path / "raft-small.pth"
    torch.save(torch.nn.DataParallel(small).state_dict(), path)
    with pytest.raises(InputError, match=r"raft-small\.pth: .*RAFT-small.*raft-things\.pth"):
        make_cue("flow", "raft", {"weights": str(path), "device": "cpu"})


def test_wrong_missing_or_misshaped_keys_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    saved = torch.load(checkpoint, weights_only=True)
    path = tmp_path / "edited.pth"
    renamed = dict(saved)
    renamed["module.update_block.mask.9.bias"] = renamed.pop("module.update_block.mask.2.bias")
    torch.save(renamed, path)
    with pytest.raises(InputError, match=r"edited\.pth: checkpoint lacks key.*mask\.2\.bias"):
        make_cue("flow", "raft", {"weights": str(path), "device": "cpu"})
    torch.save(dict(saved, **{"module.fnet.extra.weight": torch.zeros(1)}), path)
    with pytest.raises(InputError, match=r"edited\.pth: .*unexpected key 'fnet\.extra\.weight'"):
        make_cue("flow", "raft", {"weights": str(path), "device": "cpu"})
    misshaped = dict(saved, **{"module.update_block.flow_head.conv2.bias": torch.zeros(3)})
    torch.save(misshaped, path)
    with pytest.raises(InputError, match=r"flow_head\.conv2\.bias' has shape \(3\)"):
        make_cue("flow", "raft", {"weights": str(path), "device": "cpu"})


UNPICKLED_CALLS: list[str] = []


def record_call(argument: str) -> str:
    """What a malicious pickle would call while loading; the loader must never reach it."""
    UNPICKLED_CALLS.append(argument)
    return argument


class CodeOnLoad:
    """An object whose unpickling calls :func:`record_call` (arbitrary code, in a real attack)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return record_call, ("ran",)


def test_checkpoint_with_pickled_code_is_refused_without_running_it(
    checkpoint: Path, tmp_path: Path
) -> None:
    path = tmp_path / "pickled.pth"
    torch.save(dict(torch.load(checkpoint, weights_only=True), hook=CodeOnLoad()), path)
    with pytest.raises(VpsbenchError, match=r"pickled\.pth: cannot read checkpoint"):
        make_cue("flow", "raft", {"weights": str(path), "device": "cpu"})
    assert UNPICKLED_CALLS == []
