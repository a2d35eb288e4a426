"""Benchmark of ``vpsbench evaluate`` on a Cityscapes-resolution (1024×2048) generated split.

Measures, on the same data:
  * decode only      — reading the ground-truth and prediction PNGs, nothing else;
  * end to end       — ``evaluate()`` as the CLI runs it (decode + statistics + matching + metrics),
                       with 1 and 2 worker processes;
  * metric alone     — per-frame joint histograms + STQ on frames already in memory;
  * reference        — the straightforward np.unique/dict STQ (DeepLab2's numpy way) on the same
                       in-memory frames;
  * peak memory      — max RSS of an end-to-end run in a fresh process, for N and 2N frames.

Run: ``python benchmarks/bench_evaluate.py [--sequences 2] [--frames 8] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vpsbench.datasets import open_dataset
from vpsbench.evaluation import EvaluationJob, EvaluationSettings, evaluate, pseudo_thing_mask
from vpsbench.formats.step import read_step_png, write_step_png
from vpsbench.matching import MatchingMode, match_pseudo_classes
from vpsbench.metrics.reference import reference_stq
from vpsbench.metrics.stq import segmentation_and_tracking_quality
from vpsbench.predictions import PredictionSource
from vpsbench.statistics import JointHistogram, joint_histogram
from vpsbench.video import PanopticFrame

HEIGHT, WIDTH = 1024, 2048
THINGS = (11, 12, 13, 14, 15, 16, 17, 18)


def street_frame(seed: int, t: int) -> PanopticFrame:
    """A street-like ground-truth frame: stuff bands, ~40 moving objects, void and crowd."""
    rng = np.random.default_rng(seed)
    rows = np.arange(HEIGHT)[:, None]
    cols = np.arange(WIDTH)[None, :]
    semantic = np.full((HEIGHT, WIDTH), 10, dtype=np.int32)  # sky
    wave = (np.sin(cols / rng.uniform(20, 60)) * 40).astype(np.int32)
    semantic[rows > 250 + wave] = 2  # building
    semantic[(rows > 300 + wave) & (np.sin(cols / 70.0) > 0.5)] = 8  # vegetation
    semantic[560:] = 1  # sidewalk
    semantic[620:] = 0  # road
    semantic[950:, :300] = 255  # ego vehicle: void
    instance = np.zeros_like(semantic)
    for ident in range(1, 41):
        cls = int(rng.choice(THINGS))
        h, w = int(rng.integers(20, 200)), int(rng.integers(10, 300))
        top = int(rng.integers(300, HEIGHT - h))
        left = int(rng.integers(0, WIDTH)) + int(rng.integers(-12, 13)) * t
        box = (rows >= top) & (rows < top + h) & (cols >= left % WIDTH) & (cols < left % WIDTH + w)
        semantic[box] = cls
        instance[box] = ident if ident % 10 else 0  # every 10th object is crowd
    return PanopticFrame(semantic, instance)


def predicted_frame(truth: PanopticFrame, seed: int) -> PanopticFrame:
    """Ground truth renamed to 27 pseudo-classes, shifted, with noisy boundaries and ids."""
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(27)
    semantic = np.roll(truth.semantic, (3, -5), axis=(0, 1))
    noise = rng.random(semantic.shape) < 0.02
    semantic = np.where(noise, np.roll(semantic, 9, axis=1), semantic)
    pseudo = np.where(semantic == 255, 26, permutation[np.minimum(semantic, 25)])
    instance = np.roll(truth.instance, (3, -5), axis=(0, 1)) * 3
    instance[np.isin(semantic, THINGS) & (instance == 0)] = 999
    instance[~np.isin(semantic, THINGS)] = 0
    return PanopticFrame(pseudo.astype(np.int32), instance.astype(np.int32))


def write_split(root: Path, sequences: int, frames: int) -> tuple[Path, Path]:
    """Write ground truth (KITTI-STEP layout) and predictions; return their roots."""
    gt_root, pred_root = root / "kitti-step", root / "predictions"
    for s in range(sequences):
        name = f"{s:04d}"
        for t in range(frames):
            truth = street_frame(s, t)
            write_step_png(gt_root / "panoptic_maps" / "val" / name / f"{t:06d}.png", truth)
            write_step_png(pred_root / name / f"{t:06d}.png", predicted_frame(truth, 1000 * s + t))
    return gt_root, pred_root


def timed(function: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def end_to_end(gt_root: Path, pred_root: Path, workers: int) -> float:
    dataset = open_dataset("kitti-step", gt_root, {"things": "cityscapes"})
    job = EvaluationJob(dataset, "val", PredictionSource.open(pred_root, "step"))
    settings = EvaluationSettings(matching=MatchingMode.THING_STUFF_HUNGARIAN)
    return timed(lambda: evaluate(job, settings, workers=workers), repeat=3)


def peak_memory_mib(gt_root: Path, pred_root: Path, sequences: list[str]) -> float:
    """Peak RSS (VmHWM) of a fresh process evaluating the given sequences end to end.

    (``ru_maxrss`` would not do: Linux carries the parent's peak over into a forked child.)
    """
    code = (
        "import re\n"
        "from vpsbench.datasets import open_dataset\n"
        "from vpsbench.evaluation import EvaluationJob, evaluate\n"
        "from vpsbench.predictions import PredictionSource\n"
        f"d = open_dataset('kitti-step', {str(gt_root)!r}, {{'things': 'cityscapes'}})\n"
        f"job = EvaluationJob(d, 'val', PredictionSource.open({str(pred_root)!r}, 'step'))\n"
        f"evaluate(job, sequences={sequences!r})\n"
        "status = open('/proc/self/status').read()\n"
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return int(output.stdout.decode().strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        gt_root, pred_root = write_split(root, args.sequences, args.frames)
        total = args.sequences * args.frames
        gt_files = sorted((gt_root / "panoptic_maps" / "val").rglob("*.png"))
        pred_files = sorted(pred_root.rglob("*.png"))

        decode = timed(lambda: [read_step_png(p) for p in gt_files + pred_files], repeat=3)
        frames = [
            (read_step_png(g), read_step_png(p)) for g, p in zip(gt_files, pred_files, strict=True)
        ]
        dataset = open_dataset("kitti-step", gt_root, {"things": "cityscapes"})
        space = dataset.label_space()

        def fast_metric() -> np.ndarray:
            """Histograms, matching, relabelling and STQ: everything after decoding."""
            joint = JointHistogram.merge(joint_histogram(g, p) for g, p in frames)
            num_pseudo = int(joint.pred_class.max()) + 1
            matching = match_pseudo_classes(
                joint.pseudo_class_overlap(num_pseudo, space.evaluated_classes),
                pseudo_thing_mask(joint, num_pseudo, None),
                space.evaluated_classes,
                space.evaluated_things,
            )
            is_thing = np.zeros(256, dtype=bool)
            is_thing[list(space.thing_classes)] = True
            mapped = joint.relabel_predictions(matching.target, is_thing)
            segmentation_and_tracking_quality([("all", mapped, total)], space)
            return matching.target

        target = fast_metric()
        mapped_frames = []
        for truth, prediction in frames:
            classes = np.where(prediction.semantic >= 0, target[prediction.semantic], -1)
            thing = np.isin(classes, list(space.thing_classes))
            mapped_frames.append(
                (truth, PanopticFrame(classes, np.where(thing, prediction.instance, 0)), None)
            )

        def reference_metric() -> None:
            """The DeepLab2-style STQ on the already-mapped predictions (matching not timed)."""
            reference_stq({"all": mapped_frames}, space)

        metric = timed(fast_metric, repeat=3)
        reference = timed(reference_metric)
        e2e_1 = end_to_end(gt_root, pred_root, 1)
        e2e_2 = end_to_end(gt_root, pred_root, 2)
        names = [f"{s:04d}" for s in range(args.sequences)]
        memory_half = peak_memory_mib(gt_root, pred_root, names[: max(1, len(names) // 2)])
        memory_all = peak_memory_mib(gt_root, pred_root, names)

    figures = {
        "frames": total,
        "resolution": f"{HEIGHT}x{WIDTH}",
        "decode_only_fps": total / decode,
        "end_to_end_fps_1_worker": total / e2e_1,
        "end_to_end_fps_2_workers": total / e2e_2,
        "end_to_end_over_decode": e2e_1 / decode,
        "speedup_2_workers": e2e_1 / e2e_2,
        "metric_ms_per_frame": 1000 * metric / total,
        "reference_ms_per_frame": 1000 * reference / total,
        "metric_speedup_vs_reference": reference / metric,
        "peak_rss_mib_half_sequences": memory_half,
        "peak_rss_mib_all_sequences": memory_all,
        "bench_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("| measure | value |\n|---|---|")
    for key, value in figures.items():
        print(f"| {key} | {value:.2f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
