"""The coded fast path (one uint32 code per pixel) against the exact frame path it replaces.

Every check compares against something computed without the codes: the RGB samples Pillow
decodes, :func:`joint_histogram` on the decoded frames, ``load_ground_truth`` / ``read`` and
the per-frame reduction over them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests import layouts
from tests.random_videos import random_video
from vpsbench.datasets import open_dataset
from vpsbench.errors import InputError
from vpsbench.evaluation import EvaluationJob, reduce_sequence
from vpsbench.formats import png
from vpsbench.formats.step import write_step_png
from vpsbench.predictions import PredictionFormat, PredictionSource
from vpsbench.statistics import (
    CodedFrame,
    JointHistogram,
    joint_histogram,
    joint_histogram_coded,
)
from vpsbench.video import FrameRef, PanopticFrame

THINGS = (11, 13)


def assert_same_histogram(a: JointHistogram, b: JointHistogram) -> None:
    for column in ("gt_class", "gt_instance", "pred_class", "pred_instance", "pixels", "weight"):
        left, right = getattr(a, column), getattr(b, column)
        assert left.dtype == right.dtype, column
        np.testing.assert_array_equal(left, right, err_msg=column)


def blocky_rgb(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    blocks = rng.integers(0, 256, (shape[0] // 3 + 1, shape[1] // 4 + 1, 3))
    array = np.repeat(np.repeat(blocks, 3, axis=0), 4, axis=1)[: shape[0], : shape[1]]
    noise = rng.random(shape) < 0.05
    array[noise] = rng.integers(0, 256, (int(noise.sum()), 3))
    return array.astype(np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (23, 31)])
def test_codes_pack_the_rgb_samples_on_both_decoders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int]
) -> None:
    rgb = blocky_rgb(np.random.default_rng(sum(shape)), shape)
    path = tmp_path / "a.png"
    png.write_png(path, rgb)
    wide = rgb.astype(np.int64)
    expected = wide[..., 0] + 256 * wide[..., 1] + 65536 * wide[..., 2]
    fast = png.read_rgb_codes(path)
    with monkeypatch.context() as patch:
        patch.setattr(png, "pyspng", None)  # the Pillow decoder
        slow = png.read_rgb_codes(path)
    for codes in (fast, slow):
        assert codes.dtype == np.uint32 and codes.shape == shape
        np.testing.assert_array_equal(codes & 0xFFFFFF, expected)
        for channel, values in enumerate(png.code_channels(codes)):
            np.testing.assert_array_equal(values, rgb[..., channel])


def test_codes_of_a_non_rgb_png_are_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    png.write_png(path, np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(InputError, match="expected an 8-bit RGB STEP PNG, got an 8-bit gray"):
        png.read_rgb_codes(path, "STEP")
    (tmp_path / "cut.png").write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputError, match="truncated"):
        png.read_rgb_codes(tmp_path / "cut.png")


def step_coded(frame: PanopticFrame, void: bool) -> CodedFrame:
    """A STEP-style coded frame of ``frame`` (class + 256·instance); class 255 is void if asked."""
    codes = (frame.semantic.astype(np.uint32) | (frame.instance.astype(np.uint32) << 8)).astype(
        np.uint32
    )

    def decode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        semantic = (values & 0xFF).astype(np.int32)
        instance = (values >> 8).astype(np.int32)
        if void:
            instance = np.where(semantic == 255, 0, instance).astype(np.int32)
            semantic = np.where(semantic == 255, -1, semantic).astype(np.int32)
        return semantic, instance

    return CodedFrame(codes, decode)


@pytest.mark.parametrize("seed", range(6))
def test_coded_histogram_equals_the_frame_histogram(seed: int) -> None:
    rng = np.random.default_rng(seed)
    video = random_video(
        rng, 3, 24, 37, 19, THINGS, weighted=seed % 2 == 1, stuff_instances_in_prediction=True
    )
    for truth, prediction, weights in video:
        prediction = PanopticFrame(  # STEP predictions hold 0..255, 255 = void
            np.where(prediction.semantic < 0, 255, prediction.semantic).astype(np.int32),
            prediction.instance,
        )
        coded_truth, coded_prediction = step_coded(truth, False), step_coded(prediction, True)
        decoded = coded_prediction.frame()
        assert_same_histogram(
            joint_histogram_coded(coded_truth, coded_prediction, weights),
            joint_histogram(coded_truth.frame(), decoded, weights),
        )
        assert (decoded.semantic == -1).any() or not (prediction.semantic == 255).any()


def test_coded_histogram_checks_shapes_and_ids() -> None:
    frame = PanopticFrame(np.zeros((3, 4), np.int32), np.zeros((3, 4), np.int32))
    small = PanopticFrame(np.zeros((3, 3), np.int32), np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="shape"):
        joint_histogram_coded(step_coded(frame, False), step_coded(small, True))
    empty = PanopticFrame(np.zeros((0, 4), np.int32), np.zeros((0, 4), np.int32))
    assert len(joint_histogram_coded(step_coded(empty, False), step_coded(empty, True))) == 0

    def negative(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(values.shape, -2, np.int32), np.zeros(values.shape, np.int32)

    with pytest.raises(ValueError, match="non-negative"):
        joint_histogram_coded(
            CodedFrame(np.zeros((3, 4), np.uint32), negative), step_coded(frame, True)
        )


@pytest.fixture(scope="module")
def step_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A KITTI-STEP split (2 sequences, 3 frames) and STEP predictions with void and noise."""
    root = tmp_path_factory.mktemp("step")
    rng = np.random.default_rng(7)
    truths, predictions = {}, {}
    for name in ("0002", "0006"):
        video = random_video(rng, 3, 40, 53, 19, THINGS, ignore_boxes=2)
        truths[name] = [truth for truth, _, _ in video]
        predictions[name] = [
            PanopticFrame(
                np.where(p.semantic < 0, 255, p.semantic).astype(np.int32),
                np.where(p.semantic < 0, 0, p.instance).astype(np.int32),
            )
            for _, p, _ in video
        ]
    layouts.write_kitti_step(root / "gt", "val", truths, with_images=False)
    for name, frames in predictions.items():
        for number, frame in enumerate(frames):
            write_step_png(root / "pred" / name / f"{number:06d}.png", frame)
    return root / "gt", root / "pred", sorted(truths)


@pytest.mark.parametrize("protocol", [{}, {"things": "cityscapes", "label_space": "cs27"}])
def test_loader_and_prediction_codes_decode_like_the_frame_readers(
    step_split: tuple[Path, Path, list[str]], protocol: dict[str, str]
) -> None:
    gt_root, pred_root, _ = step_split
    dataset = open_dataset("kitti-step", gt_root, protocol)
    source = PredictionSource.open(pred_root, "step")
    for sequence in dataset.sequences("val"):
        for frame in sequence.frames:
            coded = dataset.load_ground_truth_codes("val", frame)
            assert coded is not None
            expected = dataset.load_ground_truth("val", frame)
            np.testing.assert_array_equal(coded.frame().semantic, expected.semantic)
            np.testing.assert_array_equal(coded.frame().instance, expected.instance)
            read = source.read_codes(frame, coded.shape)
            assert read is not None
            prediction, digest = source.read(frame, coded.shape)
            assert read[1] == digest
            np.testing.assert_array_equal(read[0].frame().semantic, prediction.semantic)
            np.testing.assert_array_equal(read[0].frame().instance, prediction.instance)


@pytest.mark.parametrize("protocol", [{}, {"things": "cityscapes"}])
def test_reduce_sequence_equals_the_frame_path(
    step_split: tuple[Path, Path, list[str]], protocol: dict[str, str]
) -> None:
    gt_root, pred_root, _ = step_split
    dataset = open_dataset("kitti-step", gt_root, protocol)
    job = EvaluationJob(dataset, "val", PredictionSource.open(pred_root, "step"))
    for sequence in dataset.sequences("val"):
        outcome = reduce_sequence(job, sequence)
        for frame, table in zip(sequence.frames, outcome.statistics.frames, strict=True):
            truth = dataset.load_ground_truth("val", frame)
            prediction, _ = job.predictions.read(frame, truth.shape)
            assert_same_histogram(table, joint_histogram(truth, prediction))


def test_coded_errors_are_the_frame_readers_errors(
    step_split: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    _, pred_root, names = step_split
    frame = FrameRef(names[0], "000000", 0)
    bad = PanopticFrame(np.full((40, 53), 40, np.int32), np.zeros((40, 53), np.int32))
    copy = tmp_path / "gt"
    layouts.write_kitti_step(copy, "val", {names[0]: [bad]}, with_images=False)
    broken = open_dataset("kitti-step", copy, {})
    coded = broken.load_ground_truth_codes("val", frame)
    assert coded is not None
    with pytest.raises(InputError) as expected:
        broken.load_ground_truth("val", frame)
    with pytest.raises(InputError) as got:
        coded.frame()
    assert str(got.value) == str(expected.value)

    declared = PredictionSource.open(pred_root, "step", num_classes=3)
    with pytest.raises(InputError) as expected:
        declared.read(frame, (40, 53))
    read = declared.read_codes(frame, (40, 53))
    assert read is not None
    with pytest.raises(InputError) as got:
        read[0].frame()
    assert str(got.value) == str(expected.value)
    for call in (declared.read, declared.read_codes):
        with pytest.raises(InputError, match="does not match the ground truth"):
            call(frame, (40, 54))
        with pytest.raises(InputError, match="missing prediction"):
            call(FrameRef(names[0], "000009", 9), (40, 53))


def test_other_formats_and_loaders_keep_the_frame_path(
    step_split: tuple[Path, Path, list[str]],
) -> None:
    _, pred_root, names = step_split
    source = dataclasses.replace(
        PredictionSource.open(pred_root, "step"), format=PredictionFormat.NPZ
    )
    assert source.read_codes(FrameRef(names[0], "000000", 0), (40, 53)) is None


def brute_force_rows(truth: PanopticFrame, prediction: PanopticFrame) -> np.ndarray:
    """Every distinct (gt class, gt id, pred class, pred id, pixel count), pixel by pixel."""
    columns = [truth.semantic, truth.instance, np.maximum(prediction.semantic, -1)]
    stacked = np.stack([*columns, prediction.instance]).reshape(4, -1).T
    rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return np.column_stack([rows, counts])


@pytest.mark.parametrize("seed", [0, 1])
def test_histograms_of_frames_larger_than_one_chunk_match_brute_force(seed: int) -> None:
    """Frames of several comparison chunks, with label changes right at the chunk edges."""
    rng = np.random.default_rng(seed)
    height, width = 331, 457  # 151267 pixels: three chunks of 65536, the last one partial
    truth, prediction, _ = random_video(rng, 1, height, width, 19, THINGS)[0]
    prediction = PanopticFrame(
        np.where(prediction.semantic < 0, 255, prediction.semantic).astype(np.int32),
        np.where(prediction.semantic < 0, 0, prediction.instance).astype(np.int32),
    )
    for edge in (65535, 65536, 65537, 131072):  # a single-pixel change at each chunk edge
        truth.semantic.flat[edge] = (truth.semantic.flat[edge] + 1) % 19
        prediction.instance.flat[edge + 1] += 1
    coded_truth, coded_prediction = step_coded(truth, False), step_coded(prediction, True)
    decoded = coded_prediction.frame()
    expected = brute_force_rows(truth, decoded)
    for table in (
        joint_histogram(truth, decoded),
        joint_histogram_coded(coded_truth, coded_prediction),
    ):
        got = np.column_stack(
            [table.gt_class, table.gt_instance, table.pred_class, table.pred_instance, table.pixels]
        )
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(table.weight, table.pixels.astype(np.float64))


@pytest.mark.parametrize("seed", [0, 1])
def test_codes_of_files_with_ancillary_chunks_match_the_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """gAMA/sRGB/tEXt and a tRNS colour change no sample (the alpha byte carries no label)."""
    from tests.formats.test_png_decoders import ANCILLARY, _chunk, encode_png, label_like

    rng = np.random.default_rng(seed)
    rgb = label_like(rng, (19, 23, 3))
    samples = rgb.reshape(-1)[:3].tolist()
    extra = [*ANCILLARY["gamma-srgb-text"], _chunk(b"tRNS", np.array(samples, ">u2").tobytes())]
    path = tmp_path / "a.png"
    path.write_bytes(encode_png(rgb, rng, extra))
    wide = png.read_png(path).astype(np.int64)
    expected = wide[..., 0] + 256 * wide[..., 1] + 65536 * wide[..., 2]
    np.testing.assert_array_equal(png.read_png(path), rgb)
    with monkeypatch.context() as patch:
        patch.setattr(png, "pyspng", None)
        slow = png.read_rgb_codes(path)
    for codes in (png.read_rgb_codes(path), slow):
        np.testing.assert_array_equal(codes & 0xFFFFFF, expected)
