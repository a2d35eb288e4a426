"""Training clips of pseudo-labelled frames, drawn as a pure function of (seed, step, rank).

Stage 1 writes STEP PNGs of pseudo-classes and track ids (``pseudo-label/labels``) and splits the
pseudo-classes into things and stuff (``summary.json``). :class:`ClassSpace` maps pseudo-classes to
the network's thing and stuff classes and back; :class:`PseudoLabelClips` turns T consecutive
frames into a :class:`~methods.videocups.model.targets.Clip` at the network's input size. The
clip order of each epoch is a seeded permutation, so a resumed run sees the same batches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812

from methods.videocups.model.targets import IGNORE, Clip, FrameTargets, boxes_from_masks
from vpsbench.datasets.base import Dataset
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.png import read_png
from vpsbench.formats.step import read_step_png
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef


@dataclass(frozen=True)
class ClassSpace:
    """Pseudo-class ids of the network's thing classes ``0..T-1`` and stuff classes ``0..S-1``."""

    things: tuple[int, ...]
    stuff: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.things:
            raise VpsbenchError("the pseudo-labels have no thing pseudo-class: nothing to detect")
        if set(self.things) & set(self.stuff):
            raise VpsbenchError("a pseudo-class cannot be both thing and stuff")

    @classmethod
    def from_summary(cls, path: Path) -> ClassSpace:
        """Read the thing/stuff split stage 1 wrote to ``summary.json``."""
        try:
            summary = json.loads(path.read_text())
            return cls(
                tuple(int(c) for c in summary["thing_pseudo_classes"]),
                tuple(int(c) for c in summary["stuff_pseudo_classes"]),
            )
        except FileNotFoundError:
            raise InputError(path, "missing: run the pseudo-label stage first") from None
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(path, f"not a pseudo-label summary ({error})") from None

    @property
    def size(self) -> int:
        """One past the largest pseudo-class id."""
        return max((*self.things, *self.stuff)) + 1

    def semantic_table(self) -> npt.NDArray[np.int64]:
        """Pseudo-class → semantic-head target (0 = thing, 1 + s = stuff s, else IGNORE)."""
        table = np.full(max(self.size, 256), IGNORE, dtype=np.int64)
        table[list(self.things)] = 0
        for index, pseudo in enumerate(self.stuff):
            table[pseudo] = 1 + index
        return table

    def thing_table(self) -> npt.NDArray[np.int64]:
        """Pseudo-class → thing class (−1 for stuff and void)."""
        table = np.full(max(self.size, 256), -1, dtype=np.int64)
        for index, pseudo in enumerate(self.things):
            table[pseudo] = index
        return table

    def panoptic_to_pseudo(self, frame: PanopticFrame) -> PanopticFrame:
        """Network ids (stuff ``s``, thing ``S + t``, void −1) → pseudo-class ids (void −1)."""
        lookup = np.array([*self.stuff, *self.things, -1], dtype=np.int32)
        semantic = lookup[np.where(frame.semantic < 0, lookup.size - 1, frame.semantic)]
        return PanopticFrame(semantic, frame.instance)


def holds_square(mask: torch.Tensor, width: int) -> bool:
    """Whether a boolean mask (H, W) contains a full ``width × width`` square of pixels."""
    if width <= 1:
        return bool(mask.any())
    if mask.shape[0] < width or mask.shape[1] < width:
        return False
    covered = F.avg_pool2d(mask[None, None].float(), width, stride=1)
    return bool((covered > 1.0 - 0.5 / (width * width)).any())


def frame_targets(
    label: PanopticFrame,
    space: ClassSpace,
    size: tuple[int, int],
    min_area: int,
    min_width: int = 0,
) -> FrameTargets:
    """Targets of one pseudo-label frame resized (nearest) to ``size``: things with ids > 0.

    Instances with fewer than ``min_area`` pixels, or without a ``min_width``-wide square of
    pixels, are dropped (their pixels keep their semantic class).
    """
    semantic = torch.from_numpy(label.semantic.astype(np.int64))
    instance = torch.from_numpy(label.instance.astype(np.int64))
    if tuple(semantic.shape) != size:
        stacked = torch.stack((semantic, instance))[None].float()
        semantic, instance = F.interpolate(stacked, size=size, mode="nearest")[0].long()
    semantic = semantic.clamp(0, 255)
    thing_class = torch.from_numpy(space.thing_table())[semantic]
    is_thing = (thing_class >= 0) & (instance > 0)
    ids = torch.unique(instance[is_thing])
    masks, classes, kept = [], [], []
    for ident in ids.tolist():
        mask = is_thing & (instance == ident)
        if int(mask.sum()) < min_area or not holds_square(mask, min_width):
            continue
        votes = torch.bincount(thing_class[mask], minlength=len(space.things))
        masks.append(mask)
        classes.append(int(votes.argmax()))
        kept.append(ident)
    height, width = size
    stacked_masks = (
        torch.stack(masks) if masks else torch.zeros((0, height, width), dtype=torch.bool)
    )
    return FrameTargets(
        boxes=boxes_from_masks(stacked_masks),
        classes=torch.tensor(classes, dtype=torch.int64),
        track_ids=torch.tensor(kept, dtype=torch.int64),
        masks=stacked_masks,
        semantic=torch.from_numpy(space.semantic_table())[semantic],
    )


def load_image(dataset: Dataset, split: str, frame: FrameRef) -> torch.Tensor:
    """RGB frame as a float tensor (3, H, W) in 0..255."""
    path = dataset.image_path(split, frame)
    if path is None:
        raise VpsbenchError(f"{dataset.name} has no images for {frame.sequence}/{frame.name}")
    array: npt.NDArray[np.generic] = read_png(path)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3:
        raise InputError(path, f"expected an RGB image, got shape {array.shape}")
    return torch.from_numpy(np.array(array[..., :3], dtype=np.float32)).permute(2, 0, 1)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased) resize of (…, 3, H, W) to ``size``; a no-op at that size."""
    if tuple(image.shape[-2:]) == size:
        return image
    batched = image if image.ndim == 4 else image[None]
    resized = F.interpolate(
        batched, size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return resized if image.ndim == 4 else resized[0]


class PseudoLabelClips:
    """All clips of ``clip_length`` consecutive pseudo-labelled frames of a split."""

    def __init__(
        self,
        dataset: Dataset,
        split: str,
        sequences: Sequence[SequenceRef],
        labels_dir: Path,
        space: ClassSpace,
        *,
        clip_length: int,
        input_size: tuple[int, int] | None,
        min_instance_area: int,
        min_instance_width: int = 0,
    ) -> None:
        self.dataset = dataset
        self.split = split
        self.sequences = list(sequences)
        self.labels_dir = labels_dir
        self.space = space
        self.clip_length = clip_length
        self.input_size = input_size
        self.min_instance_area = min_instance_area
        self.min_instance_width = min_instance_width
        self.starts = [
            (index, start)
            for index, sequence in enumerate(self.sequences)
            for start in range(len(sequence.frames) - clip_length + 1)
        ]
        if not self.starts:
            raise VpsbenchError(
                f"{dataset.name} {split}: no sequence has {clip_length} frames to make a clip"
            )

    def __len__(self) -> int:
        return len(self.starts)

    def label_path(self, frame: FrameRef) -> Path:
        return self.labels_dir / frame.sequence / f"{frame.name}.png"

    def clip(self, index: int, flip: bool) -> Clip:
        """Clip ``index`` (0 ≤ index < len), optionally mirrored left-right."""
        sequence_index, start = self.starts[index]
        frames = self.sequences[sequence_index].frames[start : start + self.clip_length]
        images, targets = [], []
        for frame in frames:
            image = load_image(self.dataset, self.split, frame)
            label = read_step_png(self.label_path(frame))
            if label.shape != tuple(image.shape[1:]):
                raise InputError(
                    self.label_path(frame),
                    f"pseudo-label is {label.shape[1]}×{label.shape[0]}, "
                    f"the frame {image.shape[2]}×{image.shape[1]}",
                )
            size = self.input_size or (int(image.shape[1]), int(image.shape[2]))
            image = resize_image(image, size)
            target = frame_targets(
                label, self.space, size, self.min_instance_area, self.min_instance_width
            )
            if flip:
                image = image.flip(-1)
                target = flip_targets(target)
            images.append(image)
            targets.append(target)
        return Clip(torch.stack(images), targets)

    def clip_indices(
        self, step: int, rank: int, world_size: int, clips_per_step: int, seed: int
    ) -> list[int]:
        """The clips of a step on one rank: epoch-wise seeded permutations, read in order."""
        count = len(self.starts)
        first = (step * world_size + rank) * clips_per_step
        indices = []
        for position in range(first, first + clips_per_step):
            epoch, offset = divmod(position, count)
            order = np.random.default_rng([seed, epoch]).permutation(count)
            indices.append(int(order[offset]))
        return indices

    def batch(
        self,
        step: int,
        rank: int,
        world_size: int,
        clips_per_step: int,
        seed: int,
        flip_probability: float,
        generator: torch.Generator,
    ) -> list[Clip]:
        """The clips of one step on one rank, each flipped with ``flip_probability``."""
        indices = self.clip_indices(step, rank, world_size, clips_per_step, seed)
        flips = torch.rand(len(indices), generator=generator) < flip_probability
        return [self.clip(index, bool(flip)) for index, flip in zip(indices, flips, strict=True)]


def flip_targets(target: FrameTargets) -> FrameTargets:
    """Mirror a frame's targets left-right."""
    masks = target.masks.flip(-1)
    return FrameTargets(
        boxes=boxes_from_masks(masks),
        classes=target.classes,
        track_ids=target.track_ids,
        masks=masks,
        semantic=target.semantic.flip(-1),
    )
