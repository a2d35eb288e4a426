"""Benchmark of ``vpsbench evaluate`` on a Cityscapes-resolution (1024×2048) generated split.

Three sections (``--only`` picks some), each timing two things in alternating runs under the same
load and printing the median and the minimum of each and their ratios:

  * metric   — our metric (per-frame joint histograms, matching, STQ) on frames already in
               memory, as the loaders hand them to the evaluator (one code per pixel, decoded
               per run), against DeepLab2's own numpy ``STQuality`` (``update_state`` per frame
               + ``result``) on the same, already-mapped frames (its int64 maps); and our metric
               on decoded int32 frames against the coded one. DeepLab2's file is imported by
               path from ``../shared/reference-code/deeplab2`` (``--deeplab2`` to point
               elsewhere); without it the section says so and is skipped;
  * evaluate — ``evaluate()`` end to end (1 worker) against decoding the same PNGs only
               (``read_step_png``: libspng, then the int32 maps; for reference also libspng's
               pixel decoding alone and Pillow), and ``evaluate(workers=2)`` against
               ``evaluate(workers=1)``;
  * memory   — peak RSS of a fresh end-to-end process for N and 2N sequences (flat = good).

Run from the repository root: ``python benchmarks/bench_evaluate.py [--sequences 8] [--frames 4]
[--rounds 5] [--only metric evaluate memory] [--json out.json] [--cpu-time]``. The load average
is printed with the figures: on a busy machine prefer the ratios to the absolute times, or time
with ``--cpu-time`` (this process's CPU time, so time lost to other jobs is not counted; the
workers' CPU time is not this process's, so the 2-worker ratio is then left out). Like the CLI,
the benchmark first lets malloc reuse freed frame buffers (``executors.reuse_freed_memory``, for
everything it times); ``--malloc-default`` keeps glibc's defaults in this process instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's vpsbench, not an installed one

from vpsbench.datasets import open_dataset  # noqa: E402
from vpsbench.evaluation import (  # noqa: E402
    EvaluationJob,
    EvaluationSettings,
    evaluate,
    pseudo_thing_mask,
)
from vpsbench.executors import ExecutorSpec, ordered_map, reuse_freed_memory  # noqa: E402
from vpsbench.formats import png  # noqa: E402
from vpsbench.formats.step import read_step_png, write_step_png  # noqa: E402
from vpsbench.matching import MatchingMode, match_pseudo_classes  # noqa: E402
from vpsbench.metrics.stq import segmentation_and_tracking_quality  # noqa: E402
from vpsbench.predictions import PredictionSource  # noqa: E402
from vpsbench.statistics import (  # noqa: E402
    CodedFrame,
    JointHistogram,
    joint_histogram,
    joint_histogram_coded,
)
from vpsbench.video import PanopticFrame  # noqa: E402

DEEPLAB2_STQ = (
    REPO.parent
    / "shared"
    / "reference-code"
    / "deeplab2"
    / "evaluation"
    / "numpy"
    / "segmentation_and_tracking_quality.py"
)

HEIGHT, WIDTH = 1024, 2048
#: What the timings read: wall time, or this process's CPU time with ``--cpu-time``.
CLOCK: dict[str, Callable[[], float]] = {"now": time.perf_counter}
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
    """Write ground truth (KITTI-STEP layout) and predictions; return their roots.

    The frames are a function of their numbers, so pairs already in ``root`` (``--workdir``
    from an earlier run) are kept.
    """
    gt_root, pred_root = root / "kitti-step", root / "predictions"
    for s in range(sequences):
        name = f"{s:04d}"
        for t in range(frames):
            gt_path = gt_root / "panoptic_maps" / "val" / name / f"{t:06d}.png"
            pred_path = pred_root / name / f"{t:06d}.png"
            if gt_path.is_file() and pred_path.is_file():
                continue
            truth = street_frame(s, t)
            write_step_png(gt_path, truth)
            write_step_png(pred_path, predicted_frame(truth, 1000 * s + t))
    return gt_root, pred_root


def load_deeplab2(path: Path) -> ModuleType | None:
    """DeepLab2's numpy STQ module imported from its file, or ``None`` (with a message)."""
    if not path.is_file():
        print(f"DeepLab2's numpy STQuality not found at {path}: metric section skipped")
        return None
    spec = importlib.util.spec_from_file_location("deeplab2_numpy_stq", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alternate(
    first: Callable[[], object], second: Callable[[], object], rounds: int
) -> tuple[list[float], list[float]]:
    """Wall times of ``first`` and ``second`` run in turn ``rounds`` times (same load for both)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for function, bucket in ((first, times[0]), (second, times[1])):
            start = CLOCK["now"]()
            function()
            bucket.append(CLOCK["now"]() - start)
    return times


def ratio_figures(name: str, slow: list[float], fast: list[float]) -> dict[str, float]:
    """Median and minimum of both series and the ratios slow/fast of each."""
    return {
        f"{name}_slow_median_s": statistics.median(slow),
        f"{name}_slow_min_s": min(slow),
        f"{name}_fast_median_s": statistics.median(fast),
        f"{name}_fast_min_s": min(fast),
        f"{name}_ratio_median": statistics.median(slow) / statistics.median(fast),
        f"{name}_ratio_min": min(slow) / min(fast),
    }


def metric_section(
    gt_root: Path, pred_root: Path, total: int, rounds: int, deeplab2: ModuleType
) -> dict[str, Any]:
    """Our histogram + matching + STQ against DeepLab2's STQuality, frames in memory."""
    dataset = open_dataset("kitti-step", gt_root, {"things": "cityscapes"})
    source = PredictionSource.open(pred_root, "step")
    coded: list[tuple[CodedFrame, CodedFrame]] = []
    sequence_of: list[str] = []
    for sequence in dataset.sequences("val"):
        for ref in sequence.frames:
            coded_truth = dataset.load_ground_truth_codes("val", ref)
            assert coded_truth is not None
            read = source.read_codes(ref, coded_truth.shape)
            assert read is not None
            coded.append((coded_truth, read[0]))
            sequence_of.append(sequence.name)
    frames = [(truth.frame(), prediction.frame()) for truth, prediction in coded]
    space = dataset.label_space()
    is_thing = np.zeros(256, dtype=bool)
    is_thing[list(space.thing_classes)] = True

    def metric(tables: dict[str, list[JointHistogram]]) -> tuple[np.ndarray, float]:
        """Matching, relabelling and STQ from the per-frame histograms."""
        joints = {name: JointHistogram.merge(parts) for name, parts in tables.items()}
        split = JointHistogram.merge(joints.values())
        num_pseudo = int(split.pred_class.max()) + 1
        matching = match_pseudo_classes(
            split.pseudo_class_overlap(num_pseudo, space.evaluated_classes),
            pseudo_thing_mask(split, num_pseudo, None),
            space.evaluated_classes,
            space.evaluated_things,
        )
        result = segmentation_and_tracking_quality(
            [
                (name, joint.relabel_predictions(matching.target, is_thing), len(tables[name]))
                for name, joint in joints.items()
            ],
            space,
        )
        return matching.target, result.stq

    def ours() -> tuple[np.ndarray, float]:
        """Histograms from the coded frames, matching, relabelling and STQ: all after decoding."""
        tables: dict[str, list[JointHistogram]] = {}
        for name, (truth, prediction) in zip(sequence_of, coded, strict=True):
            tables.setdefault(name, []).append(joint_histogram_coded(truth, prediction))
        return metric(tables)

    def ours_on_frames() -> tuple[np.ndarray, float]:
        """The same from decoded int32 frames (four maps a frame instead of two)."""
        tables: dict[str, list[JointHistogram]] = {}
        for name, (truth, prediction) in zip(sequence_of, frames, strict=True):
            tables.setdefault(name, []).append(joint_histogram(truth, prediction))
        return metric(tables)

    target, our_stq = ours()
    assert our_stq == ours_on_frames()[1]
    # DeepLab2's input: (class << 16) + instance with the matched classes, void → ignore label.
    shift = 16
    encoded = []
    for truth, prediction in frames:
        classes = np.where(prediction.semantic >= 0, target[prediction.semantic], -1)
        instance = np.where(
            is_thing[np.maximum(classes, 0)] & (classes >= 0), prediction.instance, 0
        )
        classes = np.where(classes < 0, space.ignore_label, classes)
        y_true = (truth.semantic.astype(np.int64) << shift) + truth.instance
        encoded.append((y_true, (classes.astype(np.int64) << shift) + instance))
    theirs_stq: list[float] = []

    def theirs() -> None:
        metric = deeplab2.STQuality(
            space.num_classes, sorted(space.thing_classes), space.ignore_label, shift, 256 << shift
        )
        for name, (y_true, y_pred) in zip(sequence_of, encoded, strict=True):
            metric.update_state(y_true, y_pred, name)
        theirs_stq.append(float(metric.result()["STQ"]))

    slow, fast = alternate(theirs, ours, rounds)
    figures: dict[str, Any] = ratio_figures("metric_vs_deeplab2", slow, fast)
    figures["metric_ms_per_frame_median"] = 1000 * statistics.median(fast) / total
    figures["deeplab2_ms_per_frame_median"] = 1000 * statistics.median(slow) / total
    figures["stq_ours"] = our_stq
    figures["stq_deeplab2"] = theirs_stq[0]
    slow, fast = alternate(ours_on_frames, ours, rounds)
    figures.update(ratio_figures("metric_int32_frames_over_coded", slow, fast))
    return figures


def evaluate_section(
    gt_root: Path, pred_root: Path, sequences: list[str], rounds: int
) -> dict[str, Any]:
    """End to end against decode only, and 2 workers against 1."""
    files = sorted((gt_root / "panoptic_maps" / "val").rglob("*.png")) + sorted(
        pred_root.rglob("*.png")
    )
    dataset = open_dataset("kitti-step", gt_root, {"things": "cityscapes"})
    job = EvaluationJob(dataset, "val", PredictionSource.open(pred_root, "step"))
    settings = EvaluationSettings(matching=MatchingMode.THING_STUFF_HUNGARIAN)

    def decode() -> None:
        for path in files:
            read_step_png(path)

    def decode_pixels() -> None:
        """libspng's decoding alone (the RGB samples, before the int32 maps are made)."""
        for path in files:
            png.read_png(path)

    def run(workers: int) -> Callable[[], object]:
        return lambda: evaluate(job, settings, sequences=sequences, workers=workers)

    def decode_with_pillow() -> None:
        """The same decoding with libspng switched off (Pillow decodes), for reference."""
        saved = getattr(png, "pyspng")  # noqa: B009 - not re-exported, switched off here only
        setattr(png, "pyspng", None)  # noqa: B010
        try:
            decode()
        finally:
            setattr(png, "pyspng", saved)  # noqa: B010

    slow, fast = alternate(run(1), decode, rounds)
    figures = ratio_figures("evaluate_over_decode", slow, fast)
    slow, fast = alternate(run(1), decode_pixels, rounds)
    figures.update(ratio_figures("evaluate_over_libspng_pixels", slow, fast))
    if getattr(png, "pyspng") is not None:  # noqa: B009
        slow, fast = alternate(run(1), decode_with_pillow, rounds)
        figures.update(ratio_figures("evaluate_over_pillow_decode", slow, fast))
    if CLOCK["now"] is time.perf_counter:  # the workers' CPU time is not this process's
        slow, fast = alternate(run(1), run(2), rounds)
        figures.update(ratio_figures("workers_2_speedup", slow, fast))
        # The ceiling of that ratio on this machine: the same files decoded only, by sequence,
        # through the same process pool (two processes decoding PNGs share the memory bus).
        by_sequence = [
            sorted((gt_root / "panoptic_maps" / "val" / name).glob("*.png"))
            + sorted((pred_root / name).glob("*.png"))
            for name in sequences
        ]

        def decode_pool(workers: int) -> Callable[[], object]:
            spec = ExecutorSpec(workers=workers)
            return lambda: list(ordered_map(_decode_files, by_sequence, spec))

        slow, fast = alternate(decode_pool(1), decode_pool(2), rounds)
        figures.update(ratio_figures("decode_only_workers_2_speedup", slow, fast))
    return figures


def _decode_files(paths: list[Path]) -> int:
    """Decode the files (a pool item: one sequence's ground truth and predictions)."""
    for path in paths:
        read_step_png(path)
    return len(paths)


def peak_memory_mib(
    gt_root: Path, pred_root: Path, sequences: list[str], reuse_memory: bool
) -> float:
    """Peak RSS (VmHWM) of a fresh process evaluating the given sequences end to end (with
    malloc's freed blocks reused as the CLI does, when ``reuse_memory``).

    (``ru_maxrss`` would not do: Linux carries the parent's peak over into a forked child.)
    """
    code = (
        "import re\n"
        "from vpsbench.datasets import open_dataset\n"
        "from vpsbench.evaluation import EvaluationJob, evaluate\n"
        "from vpsbench.executors import reuse_freed_memory\n"
        "from vpsbench.predictions import PredictionSource\n"
        f"if {reuse_memory!r}: reuse_freed_memory()\n"
        f"d = open_dataset('kitti-step', {str(gt_root)!r}, {{'things': 'cityscapes'}})\n"
        f"job = EvaluationJob(d, 'val', PredictionSource.open({str(pred_root)!r}, 'step'))\n"
        f"evaluate(job, sequences={sequences!r})\n"
        "status = open('/proc/self/status').read()\n"
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=REPO)
    return int(output.stdout.decode().strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--frames", type=int, default=4, help="Frames per sequence.")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating runs of each pair.")
    parser.add_argument("--only", nargs="+", choices=("metric", "evaluate", "memory"), default=None)
    parser.add_argument("--deeplab2", type=Path, default=DEEPLAB2_STQ, help="DeepLab2 STQ file.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="Time this process's CPU time instead of wall time (busy machines; no workers).",
    )
    parser.add_argument(
        "--malloc-default",
        action="store_true",
        help="Keep glibc's malloc thresholds in this process (the CLI changes them).",
    )
    args = parser.parse_args()
    freed_memory_reused = False if args.malloc_default else reuse_freed_memory()
    if args.cpu_time:
        CLOCK["now"] = time.process_time
    sections = set(args.only or ("metric", "evaluate", "memory"))
    deeplab2 = load_deeplab2(args.deeplab2) if "metric" in sections else None

    figures: dict[str, Any] = {
        "frames": args.sequences * args.frames,
        "sequences": args.sequences,
        "resolution": f"{HEIGHT}x{WIDTH}",
        "load_average_before": os.getloadavg()[0],
        "clock": "cpu" if args.cpu_time else "wall",
        "freed_memory_reused": freed_memory_reused,
    }
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        gt_root, pred_root = write_split(root, args.sequences, args.frames)
        if deeplab2 is not None:
            figures.update(
                metric_section(gt_root, pred_root, figures["frames"], args.rounds, deeplab2)
            )
        names = [f"{s:04d}" for s in range(args.sequences)]
        if "evaluate" in sections:
            figures.update(evaluate_section(gt_root, pred_root, names, args.rounds))
        if "memory" in sections:
            half = names[: max(1, len(names) // 2)]
            figures["peak_rss_mib_half_sequences"] = peak_memory_mib(
                gt_root, pred_root, half, freed_memory_reused
            )
            figures["peak_rss_mib_all_sequences"] = peak_memory_mib(
                gt_root, pred_root, names, freed_memory_reused
            )
    figures["load_average_after"] = os.getloadavg()[0]

    print("| measure | value |\n|---|---|")
    for key, value in figures.items():
        print(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
