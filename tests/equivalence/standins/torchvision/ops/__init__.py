"""Plain versions of the ``torchvision.ops`` functions detectron2 imports."""

from torchvision.ops import boxes
from torchvision.ops.boxes import batched_nms, box_iou, nms
from torchvision.ops.roi_align import roi_align


class RoIPool:
    """Imported by detectron2's poolers; the models compared here use RoIAlign only."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("test stand-in: RoIPool is not used by the compared models")


def deform_conv2d(*args: object, **kwargs: object) -> None:
    raise NotImplementedError("test stand-in: deformable convolution is not used here")


__all__ = ["RoIPool", "batched_nms", "box_iou", "boxes", "deform_conv2d", "nms", "roi_align"]
