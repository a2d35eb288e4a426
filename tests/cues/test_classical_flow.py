"""OpenCV's classical flow (DIS, Farnebäck) against the synthetic dataset's exact flow."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from vpsbench.cues import VideoClip, base, make_cue
from vpsbench.cues.classical_flow import DisFlow, FarnebackFlow
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.errors import VpsbenchError
from vpsbench.synthetic.cues import read_cues

HEIGHT, WIDTH = 96, 192


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return prepare_synthetic(
        root, videos=1, frames=3, height=HEIGHT, width=WIDTH, seed=0, splits=["val"], workers=1
    )


@pytest.fixture
def clip(synthetic_root: Path) -> VideoClip:
    dataset = open_dataset("synthetic", synthetic_root)
    return VideoClip(dataset, "val", dataset.sequences("val")[0])


def mean_epe(
    estimate: npt.NDArray[np.float32], truth: npt.NDArray[np.float32], pixels: npt.NDArray[np.bool_]
) -> float:
    """Mean end-point error over ``pixels`` where the true flow is defined."""
    defined = pixels & np.isfinite(truth).all(axis=-1)
    return float(np.linalg.norm(estimate - truth, axis=-1)[defined].mean())


@pytest.mark.parametrize(
    ("source", "target", "key"), [(0, 1, "flow_forward"), (2, 1, "flow_backward")]
)
def test_dis_beats_zero_flow_on_static_and_moving_pixels(
    clip: VideoClip, synthetic_root: Path, source: int, target: int, key: str
) -> None:
    cues = read_cues(synthetic_root, "val", "0000", source)
    truth, moving = cues[key], cues["moving"]
    assert moving.sum() > 50  # the clip has a moving object to measure on
    estimate = DisFlow().flow(clip, source, target)
    assert estimate.dtype == np.float32
    assert estimate.shape == (HEIGHT, WIDTH, 2)
    zero = np.zeros_like(truth)
    for pixels in (~moving, moving):
        # Measured (seed 0, 96x192): static 4.2 vs 7.6 px, moving 0.5 vs 1.8 px (forward).
        assert mean_epe(estimate, truth, pixels) < 0.7 * mean_epe(zero, truth, pixels)


def test_farneback_beats_zero_flow(clip: VideoClip, synthetic_root: Path) -> None:
    truth = read_cues(synthetic_root, "val", "0000", 0)["flow_forward"]
    everywhere = np.ones(truth.shape[:2], dtype=bool)
    estimate = FarnebackFlow().flow(clip, 0, 1)
    assert estimate.dtype == np.float32
    assert mean_epe(estimate, truth, everywhere) < 0.7 * mean_epe(0 * truth, truth, everywhere)


def test_built_by_name_with_a_preset() -> None:
    provider = make_cue("flow", "dis", {"preset": "fast"})
    assert isinstance(provider, DisFlow)
    assert provider.preset == "fast"
    assert isinstance(make_cue("flow", "farneback"), FarnebackFlow)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(VpsbenchError, match="ultrafast, fast, medium"):
        DisFlow(preset="slow")


def test_without_opencv_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    monkeypatch.delitem(sys.modules, "vpsbench.cues.classical_flow")
    without = {
        key: cls for key, cls in base._REGISTRY.items() if cls not in {DisFlow, FarnebackFlow}
    }
    monkeypatch.setattr(base, "_REGISTRY", without)
    monkeypatch.setattr(base, "_UNAVAILABLE_MODULES", {})
    with pytest.raises(VpsbenchError, match=r"classical_flow \(needs cv2\).*vpsbench\[methods\]"):
        make_cue("flow", "dis")


def test_farneback_options_must_be_positive_integers() -> None:
    with pytest.raises(VpsbenchError, match="window='wide' must be a positive integer"):
        FarnebackFlow(window="wide")  # type: ignore[arg-type]
