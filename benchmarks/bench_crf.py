"""Benchmark of the VideoCUPS dense CRF and region growing on one 256×512 frame.

Times, in alternating runs under the same load, ``dense_crf`` (numpy/scipy) against CUPS' own
CRF call (pydensecrf's C++ mean field with the same constants, when ``pydensecrf`` is installed:
``pip install pydensecrf2``; the row is skipped with a message otherwise) and against
``dense_crf_torch`` on ``--device`` (default: cuda when available, else cpu) and
``region_growing`` against ``region_growing_torch``, on a synthetic street-like frame with K = 27
classes and CUPS' CRF constants; prints median and minimum seconds per frame, their ratios, the
largest marginal difference and the share of pixels whose label differs.
Set ``OMP_NUM_THREADS=1`` to compare single-threaded costs.

Run from the repository root: ``python benchmarks/bench_crf.py [--rounds 3] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code

import torch
from vpsbench_methods.videocups.crf_torch import crf_device_available, dense_crf_torch
from vpsbench_methods.videocups.instances import region_growing
from vpsbench_methods.videocups.instances_torch import region_growing_torch
from vpsbench_methods.videocups.semantics import CrfParameters, dense_crf

HEIGHT, WIDTH, CLASSES = 256, 512, 27


def street(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Image, class probabilities, depth, flow and motion of a blocky street-like frame."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (HEIGHT // 16, WIDTH // 16, 3))
    image = np.repeat(np.repeat(cells, 16, axis=0), 16, axis=1).astype(np.float64)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    labels = np.repeat(np.repeat(rng.integers(0, CLASSES, (HEIGHT // 8, WIDTH // 8)), 8, 0), 8, 1)
    logits = 3.0 * np.eye(CLASSES, dtype=np.float32)[labels].transpose(2, 0, 1)
    logits += rng.normal(0, 1.0, logits.shape).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0, keepdims=True)
    depth = np.full((HEIGHT, WIDTH), 40.0)
    motion = np.zeros((HEIGHT, WIDTH))
    flow = np.zeros((HEIGHT, WIDTH, 2))
    for _ in range(12):
        top, left = int(rng.integers(0, HEIGHT - 40)), int(rng.integers(0, WIDTH - 60))
        box = (slice(top, top + 40), slice(left, left + 60))
        depth[box], motion[box] = rng.uniform(5, 30), 0.9
        flow[box] = rng.normal(0, 3, 2)
    depth *= rng.uniform(0.995, 1.005, depth.shape)
    return image, probabilities.astype(np.float32), depth, flow, motion


def alternate(
    first: Callable[[], object], second: Callable[[], object], rounds: int
) -> tuple[list[float], list[float]]:
    """Wall times of ``first`` and ``second`` run in turn ``rounds`` times."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for function, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            function()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            bucket.append(time.perf_counter() - start)
    return times


def pydensecrf_crf() -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """CUPS' ``cups/crf.py`` calls on (K, H, W) probabilities, or None without pydensecrf."""
    try:
        import pydensecrf.densecrf as densecrf
    except ImportError:
        return None
    settings = CrfParameters()

    def run(probabilities: np.ndarray, image: np.ndarray) -> np.ndarray:
        classes, height, width = probabilities.shape
        crf = densecrf.DenseCRF2D(width, height, classes)
        unary = -np.log(np.clip(probabilities, 1e-8, 1.0)).reshape(classes, -1)
        crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
        crf.addPairwiseGaussian(sxy=settings.spatial_sigma, compat=settings.spatial_weight)
        crf.addPairwiseBilateral(
            sxy=settings.bilateral_spatial_sigma,
            srgb=settings.bilateral_colour_sigma,
            rgbim=np.ascontiguousarray(image),
            compat=settings.bilateral_weight,
        )
        marginals = np.array(crf.inference(settings.iterations))
        return marginals.reshape(classes, height, width)

    return run


def report(name: str, slow: list[float], fast: list[float]) -> None:
    print(
        f"| {name} | {statistics.median(slow):.3f} / {min(slow):.3f} | "
        f"{statistics.median(fast):.3f} / {min(fast):.3f} | "
        f"{statistics.median(slow) / statistics.median(fast):.2f} / {min(slow) / min(fast):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if crf_device_available("cuda") else "cpu")
    args = parser.parse_args()
    image, probabilities, depth, flow, motion = street(0)
    settings = CrfParameters()
    numpy_marginals = dense_crf(probabilities, image)
    torch_marginals = dense_crf_torch(probabilities, image, settings, args.device)
    changed = np.mean(np.argmax(numpy_marginals, 0) != np.argmax(torch_marginals, 0))
    same_instances = np.array_equal(
        region_growing(depth, flow, motion),
        region_growing_torch(depth, flow, motion, device=args.device),
    )
    print(f"device {args.device}; load average {os.getloadavg()[0]:.2f}")
    print(f"max |marginal difference| {np.abs(numpy_marginals - torch_marginals).max():.2e}")
    print(f"labels that differ {100 * changed:.4f} %; instances identical: {same_instances}")
    reference = pydensecrf_crf()
    if reference is None:
        print("pydensecrf is not installed (pip install pydensecrf2): the CUPS row is skipped")
    else:
        cups_marginals = reference(probabilities, image)
        agree = np.mean(np.argmax(numpy_marginals, 0) == np.argmax(cups_marginals, 0))
        print(f"labels equal to pydensecrf's {100 * agree:.2f} %")
        print("| step | pydensecrf s (median / min) | ours s (median / min) | pydensecrf / ours |")
        print("|---|---|---|---|")
        report(
            "dense CRF",
            *alternate(
                lambda: reference(probabilities, image),
                lambda: dense_crf(probabilities, image),
                args.rounds,
            ),
        )
    print("| step | numpy s (median / min) | torch s (median / min) | numpy / torch |")
    print("|---|---|---|---|")
    crf_times = alternate(
        lambda: dense_crf(probabilities, image),
        lambda: dense_crf_torch(probabilities, image, settings, args.device),
        args.rounds,
    )
    report("dense CRF", *crf_times)
    growing_times = alternate(
        lambda: region_growing(depth, flow, motion),
        lambda: region_growing_torch(depth, flow, motion, device=args.device),
        args.rounds,
    )
    report("region growing", *growing_times)
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
