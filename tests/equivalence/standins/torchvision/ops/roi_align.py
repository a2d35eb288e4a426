"""RoIAlign written as its definition (He et al. 2017; torchvision's kernel semantics), per RoI."""

import math

import torch
from torch import Tensor


def _bilinear(feature: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """``feature`` (C, H, W) sampled at every (y, x) of the grid ``ys`` × ``xs``."""
    height, width = feature.shape[-2:]
    valid_y = (ys >= -1.0) & (ys <= height)
    valid_x = (xs >= -1.0) & (xs <= width)
    ys, xs = ys.clamp(min=0), xs.clamp(min=0)
    y_low, x_low = ys.floor().long(), xs.floor().long()
    y_top, x_top = y_low >= height - 1, x_low >= width - 1
    y_low = torch.where(y_top, height - 1, y_low)
    x_low = torch.where(x_top, width - 1, x_low)
    y_high = torch.where(y_top, height - 1, y_low + 1)
    x_high = torch.where(x_top, width - 1, x_low + 1)
    ys = torch.where(y_top, y_low.to(ys.dtype), ys)
    xs = torch.where(x_top, x_low.to(xs.dtype), xs)
    ly, lx = ys - y_low, xs - x_low
    hy, hx = 1 - ly, 1 - lx
    rows_low, rows_high = feature[:, y_low], feature[:, y_high]
    value = (
        hy[:, None] * hx[None, :] * rows_low[:, :, x_low]
        + hy[:, None] * lx[None, :] * rows_low[:, :, x_high]
        + ly[:, None] * hx[None, :] * rows_high[:, :, x_low]
        + ly[:, None] * lx[None, :] * rows_high[:, :, x_high]
    )
    return value * (valid_y[:, None] & valid_x[None, :])


def roi_align(
    input: Tensor,
    boxes: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """``boxes`` is (K, 5): batch index, x1, y1, x2, y2 in input coordinates."""
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    offset = 0.5 if aligned else 0.0
    outputs = []
    for batch, *corners in boxes.tolist():
        x1, y1, x2, y2 = (c * spatial_scale - offset for c in corners)
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        count = max(grid_h * grid_w, 1)
        feature = input[int(batch)]
        if grid_h == 0 or grid_w == 0:
            outputs.append(feature.new_zeros(feature.shape[0], out_h, out_w))
            continue
        iy = torch.arange(out_h * grid_h, dtype=torch.float64)
        ix = torch.arange(out_w * grid_w, dtype=torch.float64)
        ys = y1 + (iy // grid_h) * bin_h + ((iy % grid_h) + 0.5) * bin_h / grid_h
        xs = x1 + (ix // grid_w) * bin_w + ((ix % grid_w) + 0.5) * bin_w / grid_w
        samples = _bilinear(feature, ys.to(feature.dtype), xs.to(feature.dtype))
        pooled = samples.reshape(-1, out_h, grid_h, out_w, grid_w).sum(dim=(2, 4)) / count
        outputs.append(pooled)
    if not outputs:
        return input.new_zeros(0, input.shape[1], out_h, out_w)
    return torch.stack(outputs)
