"""Weight-free classical optical flow from OpenCV: ``dis`` and ``farneback``.

* ``dis`` — Dense Inverse Search (Kroeger et al., ECCV 2016): coarse-to-fine patch matching by
  inverse-compositional search, densified and refined variationally; a fast unsupervised baseline
  to SMURF with no training and no weights.
* ``farneback`` — polynomial-expansion flow (Farnebäck, SCIA 2003), coarse to fine.

Both run on grayscale frames and return float32 (H, W, 2) flow from source to target. OpenCV is
part of the ``methods`` extra (``pip install 'vpsbench[methods]'``).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from vpsbench.cues.base import Flow, FlowProvider, VideoClip, positive_int_option, register_cue
from vpsbench.errors import VpsbenchError

#: DIS presets by name: more work per pixel from ultrafast to medium.
DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _gray(clip: VideoClip, t: int) -> npt.NDArray[np.uint8]:
    """Frame ``t`` as an 8-bit grayscale image."""
    return np.asarray(cv2.cvtColor(clip.image(t), cv2.COLOR_RGB2GRAY), dtype=np.uint8)


@register_cue
class DisFlow(FlowProvider):
    """OpenCV's Dense Inverse Search flow (Kroeger et al., ECCV 2016) with a named preset."""

    name = "dis"
    description = "Dense Inverse Search flow (OpenCV; classical, no weights)"

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise VpsbenchError(f"unknown DIS preset {preset!r}; presets: {', '.join(DIS_PRESETS)}")
        self.preset = preset
        self._estimator = cv2.DISOpticalFlow.create(DIS_PRESETS[preset])

    def flow(self, clip: VideoClip, source: int, target: int) -> Flow:
        """DIS flow from frame ``source`` to frame ``target``."""
        # No initial flow (None): OpenCV's stubs omit that calc() accepts it.
        flow = self._estimator.calc(_gray(clip, source), _gray(clip, target), None)  # type: ignore[call-overload]
        return np.asarray(flow, dtype=np.float32)


@register_cue
class FarnebackFlow(FlowProvider):
    """OpenCV's Farnebäck flow (SCIA 2003): 5-level pyramid, 15-pixel window, 3 iterations."""

    name = "farneback"
    description = "Farnebäck polynomial-expansion flow (OpenCV; classical, no weights)"

    def __init__(self, levels: int = 5, window: int = 15, iterations: int = 3) -> None:
        self.levels = positive_int_option(levels, "levels")
        self.window = positive_int_option(window, "window")
        self.iterations = positive_int_option(iterations, "iterations")

    def flow(self, clip: VideoClip, source: int, target: int) -> Flow:
        """Farnebäck flow from frame ``source`` to frame ``target``."""
        flow = cv2.calcOpticalFlowFarneback(
            _gray(clip, source),
            _gray(clip, target),
            None,  # type: ignore[call-overload, unused-ignore]  # stubs differ: OpenCV 4 vs 5
            pyr_scale=0.5,
            levels=self.levels,
            winsize=self.window,
            iterations=self.iterations,
            poly_n=5,
            poly_sigma=1.1,
            flags=0,
        )
        return np.asarray(flow, dtype=np.float32)
