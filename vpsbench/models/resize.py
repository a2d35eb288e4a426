"""detectron2's test-time ``ResizeShortestEdge``: its output-size rule and its uint8 resampling.

Both detectron2 predictors the baselines follow (U2Seg's Panoptic Cascade Mask R-CNN, VideoCutLER's
VideoMask2Former) resize each uint8 frame so that its short side is ``min_size`` and its long side
at most ``max_size`` (``ResizeShortestEdge.get_output_shape``), then resample it with PIL's
bilinear filter, rounded back to uint8 (``ResizeTransform.apply_image``). A float antialiased
resize gives the same size but differs by up to one grey level in many pixels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image


def shortest_edge_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(H, W) after ``ResizeShortestEdge(min_size, max_size)``; ``min_size <= 0`` keeps the size."""
    if min_size <= 0:
        return height, width
    scale = min_size / min(height, width)
    if height < width:
        new_height, new_width = float(min_size), scale * width
    else:
        new_height, new_width = scale * height, float(min_size)
    if max(new_height, new_width) > max_size:
        shrink = max_size / max(new_height, new_width)
        new_height, new_width = new_height * shrink, new_width * shrink
    return int(new_height + 0.5), int(new_width + 0.5)


def resize_frame(frame: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """An RGB uint8 frame resized to ``size`` (H, W) with PIL's bilinear filter, kept uint8."""
    height, width = size
    if frame.shape[:2] == (height, width):
        return frame
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
