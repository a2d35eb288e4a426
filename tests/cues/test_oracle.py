"""The oracle providers return exactly the synthetic dataset's stored cues."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpsbench.cues import VideoClip, make_cue
from vpsbench.cues.oracle import OracleDepth, OracleFlow
from vpsbench.datasets import open_dataset
from vpsbench.datasets.kitti_step import KittiStep
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.errors import VpsbenchError
from vpsbench.synthetic.cues import read_cues


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return prepare_synthetic(
        root, videos=1, frames=3, height=48, width=96, seed=0, splits=["val"], workers=1
    )


@pytest.fixture
def clip(synthetic_root: Path) -> VideoClip:
    dataset = open_dataset("synthetic", synthetic_root)
    return VideoClip(dataset, "val", dataset.sequences("val")[0])


def test_registered_under_oracle_for_flow_and_depth() -> None:
    assert isinstance(make_cue("flow", "oracle"), OracleFlow)
    assert isinstance(make_cue("depth", "oracle"), OracleDepth)


def test_flow_is_the_stored_forward_and_backward_flow(
    clip: VideoClip, synthetic_root: Path
) -> None:
    oracle = OracleFlow()
    for t in range(len(clip)):
        stored = read_cues(synthetic_root, "val", "0000", t)
        if t + 1 < len(clip):
            forward = oracle.flow(clip, t, t + 1)
            assert forward.dtype == np.float32
            np.testing.assert_array_equal(forward, stored["flow_forward"])
        if t > 0:
            np.testing.assert_array_equal(oracle.flow(clip, t, t - 1), stored["flow_backward"])


def test_flow_to_the_same_frame_is_zero(clip: VideoClip) -> None:
    flow = OracleFlow().flow(clip, 1, 1)
    assert flow.shape == (48, 96, 2)
    assert not flow.any()


def test_flow_over_more_than_one_frame_is_an_error(clip: VideoClip) -> None:
    with pytest.raises(VpsbenchError, match="neighbouring frames"):
        OracleFlow().flow(clip, 0, 2)


def test_depth_and_motion_are_the_stored_depth_and_moving_mask(
    clip: VideoClip, synthetic_root: Path
) -> None:
    for t in range(len(clip)):
        stored = read_cues(synthetic_root, "val", "0000", t)
        result = OracleDepth().depth_motion(clip, t)
        np.testing.assert_array_equal(result.depth, stored["depth"])
        assert result.motion.dtype == np.float32
        np.testing.assert_array_equal(result.motion, stored["moving"].astype(np.float32))
    assert set(np.unique(OracleDepth().depth_motion(clip, 0).motion)) <= {0.0, 1.0}


def test_other_datasets_are_refused(synthetic_root: Path) -> None:
    dataset = KittiStep(synthetic_root)  # same layout, but not the synthetic dataset
    clip = VideoClip(dataset, "val", dataset.sequences("val")[0])
    with pytest.raises(VpsbenchError, match="only for the synthetic dataset"):
        OracleFlow().flow(clip, 0, 1)
    with pytest.raises(VpsbenchError, match="only for the synthetic dataset"):
        OracleDepth().depth_motion(clip, 0)
