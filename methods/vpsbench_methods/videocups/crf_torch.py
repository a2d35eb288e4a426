"""The dense CRF's mean-field iterations in torch, so that they can run on a GPU (``--device``).

Same model and same operators as :func:`vpsbench_methods.videocups.semantics.dense_crf`: the
permutohedral lattice's splat, blur and slice matrices and the spatial normalisation are built
once per frame by the numpy code, then every iteration (spatial Gaussian as two separable
zero-padded convolutions, sparse bilateral products, softmax) runs on ``device``. On the CPU it
equals the numpy path to float32 rounding (tests compare them); it is meant for CUDA, where the
sparse products are far cheaper.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import sparse
from torch.nn import functional

from vpsbench.cues.base import Image
from vpsbench_methods.videocups.permutohedral import PermutohedralLattice
from vpsbench_methods.videocups.semantics import (
    _LOG_FLOOR,
    CrfParameters,
    FloatArray,
    NormalisedGaussianFilter,
    Probabilities,
    bilateral_lattice,
    gaussian_taps,
)


def _sparse_csr(matrix: sparse.spmatrix, device: torch.device) -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor on ``device``."""
    csr = sparse.csr_matrix(matrix)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products are all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data.astype(np.float32)),
            size=csr.shape,
            device=device,
            check_invariants=False,  # built from a valid scipy CSR matrix
        )


class _TorchSpatialFilter:
    """:class:`NormalisedGaussianFilter` on (N, K) tensors: scale, blur rows then columns, scale."""

    def __init__(self, size: tuple[int, int], sigma: float, device: torch.device) -> None:
        self.size = size
        self.scale = torch.from_numpy(NormalisedGaussianFilter(size, sigma).scale).to(device)
        taps = torch.from_numpy(gaussian_taps(sigma)).to(device)
        self.radius = (taps.numel() - 1) // 2
        self.vertical = taps.view(1, 1, -1, 1)
        self.horizontal = taps.view(1, 1, 1, -1)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        height, width = self.size
        classes = values.shape[1]
        planes = (values * self.scale).T.reshape(classes, 1, height, width)
        planes = functional.conv2d(planes, self.vertical, padding=(self.radius, 0))
        planes = functional.conv2d(planes, self.horizontal, padding=(0, self.radius))
        return planes.reshape(classes, -1).T * self.scale


class _TorchBilateralFilter:
    """:class:`PermutohedralLattice` on (N, K) tensors, its sparse matrices moved to ``device``."""

    def __init__(self, lattice: PermutohedralLattice, device: torch.device) -> None:
        self.splat = _sparse_csr(lattice.splat, device)
        self.blurs = [_sparse_csr(blur, device) for blur in lattice.blurs]
        self.slice = _sparse_csr(lattice.slice, device)
        self.scale = torch.from_numpy(lattice.scale).to(device)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        cells = self.splat @ (values * self.scale)
        for blur in self.blurs:
            cells = blur @ cells
        return (self.slice @ cells) * self.scale


def dense_crf_torch(
    probabilities: FloatArray,
    image: Image,
    parameters: CrfParameters | None = None,
    device: str | torch.device = "cpu",
) -> Probabilities:
    """Mean-field marginals (K, H, W), as
    :func:`~vpsbench_methods.videocups.semantics.dense_crf`."""
    settings = parameters or CrfParameters()
    target = torch.device(device)
    prior = np.asarray(probabilities, dtype=np.float32)
    classes, height, width = prior.shape
    if image.shape[:2] != (height, width):
        raise ValueError(f"image {image.shape[:2]} and probabilities {prior.shape[1:]} differ")
    log_prior = np.log(np.clip(prior, _LOG_FLOOR, 1.0)).reshape(classes, -1).T
    unary = torch.from_numpy(np.ascontiguousarray(log_prior)).to(target)
    spatial = _TorchSpatialFilter((height, width), settings.spatial_sigma, target)
    lattice = bilateral_lattice(
        image, settings.bilateral_spatial_sigma, settings.bilateral_colour_sigma
    )
    bilateral = _TorchBilateralFilter(lattice, target)
    marginals = torch.softmax(unary, dim=1)
    for _ in range(settings.iterations):
        message = settings.spatial_weight * spatial(marginals)
        message = message + settings.bilateral_weight * bilateral(marginals)
        marginals = torch.softmax(unary + message, dim=1)
    result = marginals.T.reshape(classes, height, width).cpu().numpy()
    return np.ascontiguousarray(result, dtype=np.float32)


def crf_device_available(device: str) -> bool:
    """Whether torch can place tensors on ``device`` (e.g. ``cuda`` without a GPU: no)."""
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError):
        return False
    return True
