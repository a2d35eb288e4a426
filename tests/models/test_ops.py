"""The plain-PyTorch detection operators against brute-force references written from papers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from vpsbench.models.ops import (
    BoxCoder,
    assign_boxes_to_levels,
    batched_nms,
    box_iou,
    cell_anchors,
    clip_boxes,
    grid_anchors,
    multilevel_roi_align,
    nms,
    paste_masks_in_image,
    roi_align,
)


def _bilinear(feature: Tensor, y: float, x: float) -> Tensor:
    """One bilinear sample (C,) with RoIAlign's border rules: 0 beyond one pixel, else clamped."""
    _, height, width = feature.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return torch.zeros(feature.shape[0], dtype=feature.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = math.floor(y), math.floor(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * feature[:, y_low, x_low]
        + hy * lx * feature[:, y_low, x_high]
        + ly * hx * feature[:, y_high, x_low]
        + ly * lx * feature[:, y_high, x_high]
    )


def _reference_roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """RoIAlign by explicit loops over RoIs, bins and sample points (He et al., 2017)."""
    out_h, out_w = output_size
    output = torch.zeros((rois.shape[0], features.shape[1], out_h, out_w), dtype=features.dtype)
    offset = 0.5 if aligned else 0.0
    for k, roi in enumerate(rois.tolist()):
        feature = features[int(roi[0])]
        x1, y1 = roi[1] * spatial_scale - offset, roi[2] * spatial_scale - offset
        roi_w = roi[3] * spatial_scale - offset - x1
        roi_h = roi[4] * spatial_scale - offset - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        count = max(grid_h * grid_w, 1)
        for py in range(out_h):
            for px in range(out_w):
                total = torch.zeros(features.shape[1], dtype=features.dtype)
                for iy in range(grid_h):
                    y = y1 + py * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        x = x1 + px * bin_w + (ix + 0.5) * bin_w / grid_w
                        total += _bilinear(feature, y, x)
                output[k, :, py, px] = total / count
    return output


def _random_rois(generator: torch.Generator, count: int, batch: int, extent: float) -> Tensor:
    """RoIs (count, 5) of varied sizes, some reaching past the map's borders."""
    corner = torch.rand((count, 2), generator=generator, dtype=torch.float64) * extent * 1.2 - 4
    size = torch.rand((count, 2), generator=generator, dtype=torch.float64) * extent * 0.9 + 0.3
    index = torch.randint(0, batch, (count, 1), generator=generator).to(torch.float64)
    return torch.cat((index, corner, corner + size), dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_matches_brute_force(aligned: bool, sampling_ratio: int) -> None:
    generator = torch.Generator().manual_seed(7)
    features = torch.randn((2, 3, 9, 11), generator=generator, dtype=torch.float64)
    rois = _random_rois(generator, 12, batch=2, extent=22.0)
    rois[0, 1:] = torch.tensor([-1.8, -1.8, 0.4, 0.6], dtype=torch.float64)  # touches the edge
    rois[1, 1:] = torch.tensor([20.0, 16.0, 24.0, 19.0], dtype=torch.float64)  # past bottom right
    rois[2, 1:] = torch.tensor([3.0, 4.0, 3.0, 4.0], dtype=torch.float64)  # empty box
    args = ((3, 4), 0.5, sampling_ratio, aligned)
    expected = _reference_roi_align(features, rois, *args)
    actual = roi_align(features, rois, *args)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_roi_align_float32_close_to_reference() -> None:
    generator = torch.Generator().manual_seed(3)
    features = torch.randn((1, 4, 16, 12), generator=generator, dtype=torch.float64)
    rois = _random_rois(generator, 8, batch=1, extent=40.0)
    expected = _reference_roi_align(features, rois, (7, 7), 0.25, 0, True)
    actual = roi_align(features.float(), rois.float(), (7, 7), 0.25, 0, True)
    torch.testing.assert_close(actual.double(), expected, atol=1e-5, rtol=1e-5)


def test_roi_align_half_pixel_offset_is_the_difference() -> None:
    ramp = torch.arange(8, dtype=torch.float64).repeat(8, 1)[None, None]  # value = x
    roi = torch.tensor([[0.0, 2.0, 2.0, 4.0, 4.0]], dtype=torch.float64)
    shifted = roi_align(ramp, roi, (1, 1), 1.0, 1, aligned=True)
    plain = roi_align(ramp, roi, (1, 1), 1.0, 1, aligned=False)
    assert float(plain) == pytest.approx(3.0)  # box centre 3.0 read at pixel coordinate 3.0
    assert float(shifted) == pytest.approx(2.5)  # the centre of pixels 2..3 is coordinate 2.5


def test_roi_align_empty_input() -> None:
    features = torch.randn(1, 2, 5, 5)
    assert roi_align(features, torch.zeros((0, 5)), (2, 2), 1.0, 0, True).shape == (0, 2, 2, 2)


def test_fpn_level_assignment() -> None:
    sizes = torch.tensor([1.0, 56.0, 112.0, 224.0, 447.0, 448.0, 5000.0])
    boxes = torch.stack((torch.zeros_like(sizes), torch.zeros_like(sizes), sizes, sizes), dim=1)
    levels = assign_boxes_to_levels(boxes, min_level=2, max_level=5)
    assert levels.tolist() == [0, 0, 1, 2, 2, 3, 3]


def test_multilevel_roi_align_pools_each_box_from_its_level() -> None:
    generator = torch.Generator().manual_seed(0)
    strides = (4, 8, 16, 32)
    features = [torch.randn((2, 3, 64 // s, 96 // s), generator=generator) for s in strides]
    boxes = [torch.tensor([[0.0, 0.0, 20.0, 30.0], [5.0, 5.0, 90.0, 60.0]]), torch.zeros((0, 4))]
    pooled = multilevel_roi_align(features, strides, boxes, (7, 7), 0)
    levels = assign_boxes_to_levels(boxes[0], 2, 5)
    for row, level in enumerate(levels.tolist()):
        roi = torch.cat((torch.zeros(1), boxes[0][row]))[None]
        expected = roi_align(features[level], roi, (7, 7), 1 / strides[level], 0, True)
        torch.testing.assert_close(pooled[row : row + 1], expected)
    assert pooled.shape == (2, 3, 7, 7)


def _reference_iou(a: list[float], b: list[float]) -> float:
    """IoU of two boxes by the textbook formula."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _reference_nms(boxes: Tensor, scores: Tensor, threshold: float) -> list[int]:
    """Greedy NMS: visit by decreasing score, keep a box unless it overlaps a kept one too much."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    kept: list[int] = []
    rows = boxes.tolist()
    for index in order:
        if all(_reference_iou(rows[index], rows[other]) <= threshold for other in kept):
            kept.append(index)
    return kept


def _random_boxes(generator: torch.Generator, count: int) -> Tensor:
    corner = torch.rand((count, 2), generator=generator) * 40
    size = torch.rand((count, 2), generator=generator) * 20 + 1
    return torch.cat((corner, corner + size), dim=1)


def test_box_iou_matches_formula() -> None:
    generator = torch.Generator().manual_seed(1)
    a, b = _random_boxes(generator, 6), _random_boxes(generator, 5)
    expected = torch.tensor([[_reference_iou(x, y) for y in b.tolist()] for x in a.tolist()])
    torch.testing.assert_close(box_iou(a, b), expected)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_greedy_reference(threshold: float) -> None:
    generator = torch.Generator().manual_seed(int(threshold * 10))
    boxes = _random_boxes(generator, 150)
    scores = torch.rand(150, generator=generator)
    assert nms(boxes, scores, threshold).tolist() == _reference_nms(boxes, scores, threshold)


def test_batched_nms_is_nms_per_class() -> None:
    generator = torch.Generator().manual_seed(5)
    boxes = _random_boxes(generator, 120)
    scores = torch.rand(120, generator=generator)
    classes = torch.randint(0, 4, (120,), generator=generator)
    expected: list[int] = []
    for label in range(4):
        members = torch.nonzero(classes == label).flatten()
        expected += members[_reference_nms(boxes[members], scores[members], 0.5)].tolist()
    expected.sort(key=lambda i: -float(scores[i]))
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == expected


def test_nms_empty() -> None:
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0
    assert batched_nms(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0


@pytest.mark.parametrize(
    "weights",
    [
        (1.0, 1.0, 1.0, 1.0),
        (10.0, 10.0, 5.0, 5.0),
        (20.0, 20.0, 10.0, 10.0),
        (30.0, 30.0, 15.0, 15.0),
    ],
)
def test_box_coder_round_trip(weights: tuple[float, float, float, float]) -> None:
    generator = torch.Generator().manual_seed(2)
    sources, targets = _random_boxes(generator, 50), _random_boxes(generator, 50)
    coder = BoxCoder(weights)
    deltas = coder.encode(sources, targets)
    torch.testing.assert_close(coder.decode(deltas, sources), targets, atol=1e-4, rtol=1e-5)


def test_box_coder_decodes_several_classes_and_clamps_scale() -> None:
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 10.0, -10.0, 5.0 * 100.0, 0.0]])
    decoded = coder.decode(deltas, boxes)
    assert decoded.shape == (1, 8)
    torch.testing.assert_close(decoded[0, :4], boxes[0])
    width = float(decoded[0, 6] - decoded[0, 4])
    assert width == pytest.approx(20.0 * 1000.0 / 16, rel=1e-5)  # exp(log(1000/16)) × 20
    assert float(decoded[0, 4] + decoded[0, 6]) / 2 == pytest.approx(20.0 + 20.0)  # dx = 1 width


def test_cell_and_grid_anchors() -> None:
    cell = cell_anchors([32.0], [0.5, 1.0, 2.0])
    assert cell.shape == (3, 4)
    widths, heights = cell[:, 2] - cell[:, 0], cell[:, 3] - cell[:, 1]
    torch.testing.assert_close(widths * heights, torch.full((3,), 1024.0))
    torch.testing.assert_close(heights / widths, torch.tensor([0.5, 1.0, 2.0]))
    anchors = grid_anchors(cell, 4, 6, stride=8)
    assert anchors.shape == (4 * 6 * 3, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    index = (2 * 6 + 5) * 3 + 1  # row 2, column 5, second ratio
    torch.testing.assert_close(centres[index], torch.tensor([40.0, 16.0]))
    torch.testing.assert_close(anchors[index], cell[1] + torch.tensor([40.0, 16.0, 40.0, 16.0]))


def test_clip_boxes() -> None:
    clipped = clip_boxes(torch.tensor([[-5.0, -1.0, 120.0, 30.0]]), height=20, width=100)
    assert clipped.tolist() == [[0.0, 0.0, 100.0, 20.0]]


def test_paste_masks_fills_exactly_the_box() -> None:
    masks = torch.ones((2, 28, 28))
    boxes = torch.tensor([[2.0, 3.0, 10.0, 8.0], [0.0, 0.0, 0.0, 0.0]])
    pasted = paste_masks_in_image(masks, boxes, (12, 16))
    expected = torch.zeros((12, 16), dtype=torch.bool)
    expected[3:8, 2:10] = True
    assert torch.equal(pasted[0], expected)
    assert not pasted[1].any()
