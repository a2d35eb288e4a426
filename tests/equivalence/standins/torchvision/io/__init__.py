"""Stand-in ``torchvision.io``: CUPS' data utilities import it; no compared model reads files."""

from torchvision.io.image import ImageReadMode, read_image

__all__ = ["ImageReadMode", "read_image"]
