"""vpsbench: evaluation toolkit for unsupervised video panoptic segmentation."""

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.video import PanopticFrame

__version__ = "0.1.0"

__all__ = ["InputError", "PanopticFrame", "VpsbenchError", "__version__"]
