"""Pictures of video panoptic segmentations: a strip of frames, ground truth and prediction.

Classes are drawn in the Cityscapes palette (trainId colours from cityscapesScripts; pseudo-
classes that have not been mapped get fixed hashed colours), each track is tinted by a colour
derived from its id — so an identity switch shows as a change of tint from one frame to the next —
and every segment gets a white outline. Each row is labelled with its sequence and frame, and a
legend under the strip names the colour of every class that appears.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from vpsbench.datasets.base import Dataset, LabelSpace
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.evaluation import select_sequences
from vpsbench.formats.png import read_png, write_png
from vpsbench.predictions import PredictionSource
from vpsbench.video import PanopticFrame

RGB = npt.NDArray[np.uint8]

#: Cityscapes trainId colours (cityscapesScripts ``labels.py``), index = trainId.
CITYSCAPES_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
    (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
VOID_COLOR = (0, 0, 0)
OUTLINE_COLOR = (255, 255, 255)
BACKGROUND = (32, 32, 32)
TEXT_COLOR = (255, 255, 255)
BAR_HEIGHT = 14  # title, row label and legend line height in pixels
SWATCH = 10

#: One legend entry: a class name and its colour.
LegendEntry = tuple[str, tuple[int, int, int]]


def _hashed_colors(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """A fixed, well-spread colour per integer id (multiplicative hashing)."""
    hashed = (ids.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    channels = [(hashed >> np.uint64(shift)) & np.uint64(0xFF) for shift in (16, 8, 0)]
    return (np.stack(channels, axis=-1) // 2 + 64).astype(np.uint8)


def class_palette(num_classes: int, cityscapes: bool) -> npt.NDArray[np.uint8]:
    """Colours for ``num_classes`` classes: the Cityscapes palette first, hashed beyond it."""
    colors = _hashed_colors(np.arange(num_classes, dtype=np.int64) + 7919)
    if cityscapes:
        count = min(num_classes, len(CITYSCAPES_COLORS))
        colors[:count] = np.array(CITYSCAPES_COLORS[:count], dtype=np.uint8)
    return colors


def colorize(
    frame: PanopticFrame, palette: npt.NDArray[np.uint8], thing_classes: frozenset[int]
) -> RGB:
    """Class colour, tinted per track on thing pixels, void black, segment outlines white."""
    semantic = frame.semantic
    valid = (semantic >= 0) & (semantic < palette.shape[0])
    image = np.zeros((*semantic.shape, 3), dtype=np.uint8)
    image[:] = VOID_COLOR
    image[valid] = palette[semantic[valid]]
    is_thing = np.zeros(palette.shape[0], dtype=bool)
    is_thing[[c for c in thing_classes if c < palette.shape[0]]] = True
    tracked = valid & (frame.instance > 0)
    tracked[valid] &= is_thing[semantic[valid]]
    tint = _hashed_colors(frame.instance[tracked].astype(np.int64))
    image[tracked] = (image[tracked].astype(np.uint16) + tint.astype(np.uint16)) // 2
    segment = semantic.astype(np.int64) * (1 << 32) + frame.instance
    edge = np.zeros(semantic.shape, dtype=bool)
    edge[:, 1:] |= segment[:, 1:] != segment[:, :-1]
    edge[1:, :] |= segment[1:, :] != segment[:-1, :]
    image[edge] = OUTLINE_COLOR
    return image


def legend_entries(
    space: LabelSpace, palette: npt.NDArray[np.uint8], frames: Sequence[PanopticFrame]
) -> list[LegendEntry]:
    """The classes that appear in ``frames`` with their palette colours, in class order."""
    present: set[int] = set()
    for frame in frames:
        present.update(int(c) for c in np.unique(frame.semantic))
    return [
        (name, (int(palette[c][0]), int(palette[c][1]), int(palette[c][2])))
        for c, name in enumerate(space.class_names)
        if c in present and c < palette.shape[0]
    ]


def _legend_lines(
    entries: Sequence[LegendEntry], width: int, draw: ImageDraw.ImageDraw
) -> list[list[tuple[int, LegendEntry]]]:
    """Entries laid out left to right, wrapped at ``width``: lines of (x, entry)."""
    lines: list[list[tuple[int, LegendEntry]]] = [[]]
    x = 4
    for entry in entries:
        step = SWATCH + 4 + int(draw.textlength(entry[0], font=_font())) + 12
        if lines[-1] and x + step > width:
            lines.append([])
            x = 4
        lines[-1].append((x, entry))
        x += step
    return lines if lines[0] else []


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def comparison_strip(
    rows: Sequence[Sequence[RGB]],
    titles: Sequence[str],
    gap: int = 4,
    row_labels: Sequence[str] | None = None,
    legend: Sequence[LegendEntry] = (),
    note: str = "",
) -> RGB:
    """Tile equally sized images: one row per frame, one column per title, with a title bar.

    ``row_labels`` puts a label bar above each row (sequence and frame); ``legend`` adds colour
    swatches with class names under the tiles, and ``note`` one more line of text after them.
    """
    height, width = rows[0][0].shape[:2]
    columns = len(titles)
    total_width = columns * width + (columns - 1) * gap
    label_height = BAR_HEIGHT if row_labels is not None else 0
    row_step = label_height + height + gap
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = _legend_lines(legend, total_width, probe)
    legend_top = BAR_HEIGHT + len(rows) * row_step
    extra = len(lines) + (1 if note else 0)
    canvas = Image.new("RGB", (total_width, legend_top + extra * BAR_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(titles):
        draw.text((column * (width + gap) + 4, 1), title, fill=TEXT_COLOR, font=_font())
    for row, images in enumerate(rows):
        top = BAR_HEIGHT + row * row_step
        if row_labels is not None:
            draw.text((4, top + 1), row_labels[row], fill=TEXT_COLOR, font=_font())
        for column, image in enumerate(images):
            canvas.paste(Image.fromarray(image), (column * (width + gap), top + label_height))
    for number, line in enumerate(lines):
        y = legend_top + number * BAR_HEIGHT
        for x, (name, color) in line:
            draw.rectangle((x, y + 2, x + SWATCH - 1, y + 1 + SWATCH), fill=color)
            draw.text((x + SWATCH + 4, y + 1), name, fill=TEXT_COLOR, font=_font())
    if note:
        draw.text((4, legend_top + len(lines) * BAR_HEIGHT + 1), note, fill=TEXT_COLOR)
    return np.asarray(canvas, dtype=np.uint8)


def write_strip(path: str | Path, strip: RGB) -> Path:
    """Write the picture atomically and return its path."""
    write_png(path, strip)
    return Path(path)


def _read_image(path: Path | None, shape: tuple[int, int]) -> RGB:
    """The RGB frame if there is one, else a grey placeholder of ``shape``."""
    if path is not None and path.is_file():
        image = read_png(path)
        if image.ndim == 3 and image.shape[:2] == shape and image.dtype == np.uint8:
            return image.astype(np.uint8, copy=False)
    return np.full((*shape, 3), 96, dtype=np.uint8)


def render_sequence(
    dataset: Dataset,
    split: str,
    sequence: str,
    predictions: PredictionSource,
    mapping: Mapping[int, int] | None = None,
    frames: Sequence[int] | None = None,
    max_frames: int = 4,
) -> RGB:
    """A strip of ``max_frames`` evenly spaced frames (or the given indices): image, GT, prediction.

    With ``mapping`` (pseudo-class → class, e.g. from ``evaluate --output``) the prediction is
    drawn in the dataset's palette; without it pseudo-classes get hashed colours.
    """
    refs = select_sequences(dataset.sequences(split), [sequence], dataset.name)[0].frames
    if frames is None:
        count = min(max_frames, len(refs))
        frames = sorted({round(i * (len(refs) - 1) / max(count - 1, 1)) for i in range(count)})
    space = dataset.label_space()
    cityscapes = space.class_names[:2] == ("road", "sidewalk")
    gt_palette = class_palette(space.num_classes, cityscapes)
    rows = []
    labels = []
    shown_frames: list[PanopticFrame] = []
    for index in frames:
        if not 0 <= index < len(refs):
            raise VpsbenchError(f"sequence {sequence} has no frame index {index}")
        ref = refs[index]
        truth = dataset.load_ground_truth(split, ref)
        prediction, _ = predictions.read(ref, truth.shape)
        if mapping is not None:
            table = np.full(int(prediction.semantic.max(initial=0)) + 2, -1, dtype=np.int32)
            for pseudo, target in mapping.items():
                if 0 <= pseudo < table.size - 1:
                    table[pseudo] = target
            shown = PanopticFrame(table[prediction.semantic], prediction.instance)
            pred_image = colorize(shown, gt_palette, space.thing_classes)
            shown_frames.append(shown)
        else:
            classes = int(prediction.semantic.max(initial=0)) + 1
            things = frozenset(np.unique(prediction.semantic[prediction.instance > 0]).tolist())
            pred_image = colorize(prediction, class_palette(classes, False), things)
        rows.append(
            [
                _read_image(dataset.image_path(split, ref), truth.shape),
                colorize(truth, gt_palette, space.thing_classes),
                pred_image,
            ]
        )
        labels.append(f"{dataset.name} {split} · sequence {sequence} · frame {ref.name} (#{index})")
        shown_frames.append(truth)
    label = "prediction (matched)" if mapping is not None else "prediction (pseudo-classes)"
    note = (
        "tint = track; white = segment outline; black = void"
        if mapping is not None
        else "prediction in hashed pseudo-class colours (pass --results to draw matched classes)"
    )
    legend = legend_entries(space, gt_palette, shown_frames)
    return comparison_strip(rows, ["image", "ground truth", label], 4, labels, legend, note)


def mapping_from_results(path: str | Path, label_space: LabelSpace) -> dict[int, int]:
    """The pseudo-class → class mapping stored by ``vpsbench evaluate --output``."""
    try:
        document = json.loads(Path(path).read_text())
        names = document["mapping"]
        return {
            int(pseudo): (label_space.class_names.index(name) if name != "void" else -1)
            for pseudo, name in names.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(path, f"not a results file with a mapping: {error}") from None
