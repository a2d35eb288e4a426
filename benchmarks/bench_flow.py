"""Benchmark of the flow providers on the synthetic dataset: end-point error and time per pair.

For every frame pair (t, t+1) of a generated split, each provider's flow t → t+1 is compared with
the exact flow the generator stored. EPE (mean end-point error, pixels) is reported over
non-occluded pixels — the exact flow is defined, lands inside frame t+1, and the exact backward
flow there leads back within 0.5 px — for all of them, the static ones and the independently
moving ones, next to zero flow. Time is wall time per pair, images already decoded.

Run: ``python benchmarks/bench_flow.py [--root DIR] [--videos 3] [--frames 6] [--size 256x512]
[--raft-weights PATH] [--raft-iterations 12] [--device auto]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from vpsbench.cues import FlowProvider, VideoClip, make_cue
from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.synthetic.cues import read_cues

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
#: Forward–backward mismatch (pixels) of the exact flows above which a pixel counts as occluded.
CONSISTENCY_TOLERANCE = 0.5
REGIONS = ("all", "static", "moving")


class ZeroFlow(FlowProvider):
    """The no-motion baseline: flow zero everywhere."""

    name = "zero"
    description = "zero flow"

    def flow(self, clip: VideoClip, source: int, target: int) -> FloatArray:
        """Zeros of the frame's size."""
        height, width = clip.image(source).shape[:2]
        return np.zeros((height, width, 2), dtype=np.float32)


@dataclass
class Score:
    """Summed end-point errors and pixel counts per region, and the time spent."""

    error: dict[str, float] = field(default_factory=lambda: dict.fromkeys(REGIONS, 0.0))
    pixels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REGIONS, 0))
    seconds: float = 0.0
    pairs: int = 0

    def add(self, estimate: FloatArray, truth: FloatArray, regions: dict[str, BoolArray]) -> None:
        """Accumulate one pair's errors."""
        error = np.linalg.norm(estimate - truth, axis=-1)
        for region, pixels in regions.items():
            self.error[region] += float(error[pixels].sum())
            self.pixels[region] += int(pixels.sum())

    def epe(self, region: str) -> float:
        """Mean end-point error over the region's pixels."""
        return self.error[region] / max(self.pixels[region], 1)


def non_occluded(forward: FloatArray, backward_next: FloatArray) -> BoolArray:
    """Pixels whose exact flow lands in the next frame and is undone by its exact backward flow."""
    height, width = forward.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    defined = np.isfinite(forward).all(axis=-1)
    x = np.where(defined, cols + forward[..., 0], -1).astype(np.float32)
    y = np.where(defined, rows + forward[..., 1], -1).astype(np.float32)
    inside = defined & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    back = cv2.remap(backward_next, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatch = np.linalg.norm(forward + back, axis=-1)
    consistent: BoolArray = inside & (mismatch < CONSISTENCY_TOLERANCE)
    return consistent


def flow_provider(name: str, options: dict[str, object]) -> FlowProvider:
    """A registered flow provider by name."""
    provider = make_cue("flow", name, options)
    assert isinstance(provider, FlowProvider)
    return provider


def providers(args: argparse.Namespace) -> dict[str, FlowProvider]:
    """The providers to compare, by label."""
    chosen: dict[str, FlowProvider] = {"zero flow": ZeroFlow()}
    for preset in ("ultrafast", "fast", "medium"):
        chosen[f"dis ({preset})"] = flow_provider("dis", {"preset": preset})
    chosen["farneback"] = flow_provider("farneback", {})
    if args.raft_weights is not None:
        options = {"weights": args.raft_weights, "iterations": args.raft_iterations}
        raft = flow_provider("raft", {**options, "device": args.device})
        chosen[f"raft ({args.raft_iterations} it.)"] = raft
    return chosen


def score(root: Path, split: str, chosen: dict[str, FlowProvider]) -> dict[str, Score]:
    """EPE and time of every provider over every forward pair of the split."""
    dataset = open_dataset("synthetic", root)
    scores = {label: Score() for label in chosen}
    for sequence in dataset.sequences(split):
        clip = VideoClip(dataset, split, sequence)
        for t in range(len(clip)):
            clip.image(t)  # decode once, outside the timings
        for t in range(len(clip) - 1):
            now = read_cues(root, split, sequence.name, sequence.frames[t].name)
            later = read_cues(root, split, sequence.name, sequence.frames[t + 1].name)
            truth = now["flow_forward"]
            valid = non_occluded(truth, later["flow_backward"])
            regions = {
                "all": valid,
                "static": valid & ~now["moving"],
                "moving": valid & now["moving"],
            }
            for label, provider in chosen.items():
                start = time.perf_counter()
                estimate = provider.flow(clip, t, t + 1)
                scores[label].seconds += time.perf_counter() - start
                scores[label].pairs += 1
                scores[label].add(estimate, truth, regions)
    return scores


def main() -> None:
    """Generate (or reuse) the split, score every provider, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="synthetic dataset root (generated if needed)")
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="256x512", help="HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="val")
    parser.add_argument("--raft-weights", type=Path, help="RAFT/SMURF weights to include RAFT")
    parser.add_argument("--raft-iterations", type=int, default=12)
    parser.add_argument("--device", default="auto", help="RAFT device: auto, cpu, cuda")
    args = parser.parse_args()
    height, width = (int(side) for side in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_flow_") as scratch:
        root = args.root or Path(scratch) / "synthetic"
        prepare_synthetic(
            root,
            videos=args.videos,
            frames=args.frames,
            height=height,
            width=width,
            seed=args.seed,
            splits=[args.split],
            workers=1,
        )
        scores = score(root, args.split, providers(args))
    print(f"synthetic {args.split}: {args.videos} videos x {args.frames} frames at {args.size}")
    counts = next(iter(scores.values())).pixels
    print("non-occluded pixels: " + ", ".join(f"{r} {counts[r]}" for r in REGIONS))
    header = (
        f"{'provider':<18}" + "".join(f"{'EPE ' + r:>12}" for r in REGIONS) + f"{'ms/pair':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, result in scores.items():
        epes = "".join(f"{result.epe(region):>12.3f}" for region in REGIONS)
        print(f"{label:<18}{epes}{1000 * result.seconds / max(result.pairs, 1):>10.1f}")


if __name__ == "__main__":
    main()
