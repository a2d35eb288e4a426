"""The ``oracle`` providers: the synthetic dataset's exact cues, for ablations.

They return what the generator stored (:mod:`vpsbench.synthetic.cues`), so a pipeline run with
them shows what the rest of the method achieves with perfect flow, depth and motion — an upper
bound, not an estimate. Only the ``synthetic`` dataset has such cues.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vpsbench.cues.base import (
    DepthMotion,
    DepthProvider,
    Flow,
    FlowProvider,
    VideoClip,
    register_cue,
)
from vpsbench.errors import VpsbenchError
from vpsbench.synthetic.cues import read_cues


def _synthetic_root(clip: VideoClip) -> Path:
    """The clip's dataset root; a clear error unless it is the synthetic dataset."""
    if clip.dataset.name != "synthetic":
        raise VpsbenchError(
            f"oracle cues exist only for the synthetic dataset, not {clip.dataset.name!r}; "
            "choose an estimator (e.g. flow 'dis' or 'raft')"
        )
    return clip.dataset.root


@register_cue
class OracleFlow(FlowProvider):
    """The synthetic dataset's exact flow between neighbouring frames (NaN where undefined)."""

    # flow_forward for target = source + 1, flow_backward for source − 1, zero for the same frame.
    # Larger gaps are refused: composing one-step flows interpolates across occlusions, inexactly.

    name = "oracle"
    description = "exact flow of the synthetic dataset (neighbouring frames; for ablations)"

    def flow(self, clip: VideoClip, source: int, target: int) -> Flow:
        """The stored flow from frame ``source`` to frame ``target``."""
        root = _synthetic_root(clip)
        frames = clip.sequence.frames
        step = int(frames[target].name) - int(frames[source].name)
        arrays = read_cues(root, clip.split, clip.sequence.name, frames[source].name)
        if step == 0:
            return np.zeros((*arrays["depth"].shape, 2), dtype=np.float32)
        if abs(step) != 1:
            raise VpsbenchError(
                f"oracle flow is exact only between neighbouring frames; frames "
                f"{frames[source].name} and {frames[target].name} are {abs(step)} apart"
            )
        key = "flow_forward" if step == 1 else "flow_backward"
        if key not in arrays:
            raise VpsbenchError(
                f"{clip.sequence.name}/{frames[source].name} has no {key} (first or last frame)"
            )
        flow: Flow = arrays[key]
        return flow


@register_cue
class OracleDepth(DepthProvider):
    """Exact metric depth (``inf`` on sky) and the moving-object mask as motion probability."""

    name = "oracle"
    description = "exact depth and moving mask of the synthetic dataset (for ablations)"

    def depth_motion(self, clip: VideoClip, t: int) -> DepthMotion:
        """Stored depth (metres) and ``moving`` as float32 0/1."""
        root = _synthetic_root(clip)
        arrays = read_cues(root, clip.split, clip.sequence.name, clip.sequence.frames[t].name)
        return DepthMotion(depth=arrays["depth"], motion=arrays["moving"].astype(np.float32))
