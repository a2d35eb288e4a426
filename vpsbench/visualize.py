"""Pictures of video panoptic segmentations: a strip of frames, ground truth and prediction.

Classes are drawn in the Cityscapes palette (trainId colours from cityscapesScripts; pseudo-
classes that have not been mapped get fixed hashed colours), each track is tinted by a colour
derived from its id — so an identity switch shows as a change of tint from one frame to the next —
and every segment gets a white outline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

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


def comparison_strip(rows: Sequence[Sequence[RGB]], titles: Sequence[str], gap: int = 4) -> RGB:
    """Tile equally sized images: one row per frame, one column per title, with a title bar."""
    height, width = rows[0][0].shape[:2]
    title_height = 14
    columns = len(titles)
    canvas = Image.new(
        "RGB",
        (columns * width + (columns - 1) * gap, title_height + len(rows) * (height + gap)),
        (32, 32, 32),
    )
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(titles):
        draw.text((column * (width + gap) + 4, 1), title, fill=(255, 255, 255))
    for row, images in enumerate(rows):
        for column, image in enumerate(images):
            canvas.paste(
                Image.fromarray(image),
                (column * (width + gap), title_height + row * (height + gap)),
            )
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
    label = "prediction (matched)" if mapping is not None else "prediction (pseudo-classes)"
    return comparison_strip(rows, ["image", "ground truth", label])


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
