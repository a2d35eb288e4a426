"""Stand-in ``torchvision.io.image``: names upstream code imports, unused by the comparisons."""

import enum

from torch import Tensor


class ImageReadMode(enum.Enum):
    """torchvision's image read modes (names and values as documented)."""

    UNCHANGED = 0
    GRAY = 1
    GRAY_ALPHA = 2
    RGB = 3
    RGB_ALPHA = 4


def read_image(path: str, mode: ImageReadMode = ImageReadMode.UNCHANGED) -> Tensor:
    raise NotImplementedError("test stand-in: the compared models do not read image files")
