"""Training clips of pseudo-labelled frames, drawn as a pure function of (seed, step, rank).

Stage 1 writes STEP PNGs of pseudo-classes and track ids (``pseudo-label/labels``) and splits the
pseudo-classes into things and stuff (``summary.json``). :class:`ClassSpace` maps pseudo-classes to
the network's thing and stuff classes and back; :class:`PseudoLabelClips` turns T consecutive
frames into a :class:`~vpsbench_methods.videocups.model.targets.Clip` at the network's input size.
An
epoch is one pass over the training videos, one clip of each (CUPS trains on one sample per
Cityscapes snippet: 2975 per epoch, not every two-frame window): the video order of each epoch is
a seeded permutation and each video's clip start a seeded draw, so a resumed run sees the same
batches.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from vpsbench.datasets.base import Dataset
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.png import read_png
from vpsbench.formats.step import read_step_png
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef
from vpsbench_methods.videocups.model.targets import IGNORE, Clip, FrameTargets, boxes_from_masks


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
    """Clips of ``clip_length`` consecutive pseudo-labelled frames of a split, one per video.

    ``len`` is the number of clips per epoch (the videos with at least ``clip_length`` frames);
    :meth:`clip` takes a window index ``0 ≤ index < num_windows`` (every start of every video).
    """

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
        # Per video with a clip: (index of its first window, number of windows).
        self.videos: list[tuple[int, int]] = []
        for position, (_, start) in enumerate(self.starts):
            if start == 0:
                self.videos.append((position, 0))
            first, count = self.videos[-1]
            self.videos[-1] = (first, count + 1)

    def __len__(self) -> int:
        """Clips per epoch: one per video."""
        return len(self.videos)

    @property
    def num_windows(self) -> int:
        """All clip windows of all videos (the valid arguments of :meth:`clip`)."""
        return len(self.starts)

    def label_path(self, frame: FrameRef) -> Path:
        return self.labels_dir / frame.sequence / f"{frame.name}.png"

    def clip(self, index: int, flip: bool, crop: CropBox | None = None) -> Clip:
        """Clip ``index`` (0 ≤ index < num_windows), optionally mirrored left-right.

        ``crop`` cuts the same region out of every frame and label before they are resized to
        the input size (CUPS' random resized crop, one for the whole clip).
        """
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
            if crop is not None:
                top, left, bottom, right = crop.pixels(int(image.shape[1]), int(image.shape[2]))
                image = image[:, top:bottom, left:right]
                label = PanopticFrame(
                    label.semantic[top:bottom, left:right], label.instance[top:bottom, left:right]
                )
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
        """The window indices of a step on one rank: each epoch visits every video once.

        Epoch ``e`` orders the videos by a permutation seeded with ``(seed, e)`` and takes one
        clip of each, starting at a frame drawn uniformly (same seed) from the video's windows;
        the global batches of consecutive steps read this sequence in order, shared over ranks.
        """
        count = len(self.videos)
        windows = np.array([num for _, num in self.videos], dtype=np.int64)
        first = (step * world_size + rank) * clips_per_step
        indices = []
        for position in range(first, first + clips_per_step):
            epoch, offset = divmod(position, count)
            rng = np.random.default_rng([seed, epoch])
            order = rng.permutation(count)
            starts = rng.integers(0, windows)
            video = int(order[offset])
            indices.append(self.videos[video][0] + int(starts[video]))
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
        crop_scale: tuple[float, float] = (1.0, 1.0),
    ) -> list[Clip]:
        """The clips of one step on one rank, each flipped with ``flip_probability``.

        With ``crop_scale`` below 1, each clip is also cut to a random region of a fraction of
        the frame's area in ``crop_scale`` (:func:`random_resized_crop`).
        """
        indices = self.clip_indices(step, rank, world_size, clips_per_step, seed)
        flips = torch.rand(len(indices), generator=generator) < flip_probability
        clips = []
        for index, flip in zip(indices, flips, strict=True):
            crop = random_resized_crop(crop_scale, generator) if crop_scale[0] < 1.0 else None
            clips.append(self.clip(index, bool(flip), crop))
        return clips


@dataclass(frozen=True)
class CropBox:
    """A region of a frame as fractions of its height and width (the same for every frame)."""

    top: float
    left: float
    height: float
    width: float

    def pixels(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in pixels of a ``height`` × ``width`` frame, non-empty."""
        top = min(round(self.top * height), height - 1)
        left = min(round(self.left * width), width - 1)
        bottom = max(min(round((self.top + self.height) * height), height), top + 1)
        right = max(min(round((self.left + self.width) * width), width), left + 1)
        return top, left, bottom, right


def random_resized_crop(scale: tuple[float, float], generator: torch.Generator) -> CropBox:
    """CUPS' ``RandomResizedCrop(scale=scale, ratio=H/W)``: a region of the frame's aspect ratio.

    kornia draws the area fraction ``s`` uniformly in ``scale`` and, with the ratio fixed to the
    output's (CUPS passes ``resolution[0] / resolution[1]``), cuts a ``√s·H × √s·W`` region at a
    uniformly random position; the region is then resized back to the output size. ``s = 1``
    is the whole frame (kornia's fallback when the crop would not be smaller than the frame).
    """
    low, high = scale
    area = low + (high - low) * float(torch.rand((), generator=generator))
    side = math.sqrt(area)
    top, left = (float(v) * (1.0 - side) for v in torch.rand(2, generator=generator))
    return CropBox(top, left, side, side)


def resize_clip(clip: Clip, size: tuple[int, int], min_area: int) -> Clip:
    """CUPS' ``ResolutionJitter`` for one clip: images bilinear, labels nearest, to ``size``.

    Instances left with fewer than ``min_area`` pixels are dropped (CUPS: 4 pixels or fewer);
    boxes are recomputed from the resized masks.
    """
    if tuple(clip.images.shape[-2:]) == size:
        return clip
    images = F.interpolate(clip.images, size=size, mode="bilinear", align_corners=False)
    targets = []
    for target in clip.targets:
        semantic = F.interpolate(target.semantic[None, None].float(), size=size, mode="nearest")
        if target.masks.shape[0]:
            masks = F.interpolate(target.masks[None].float(), size=size, mode="nearest")[0] > 0.5
        else:  # a frame without pseudo-instances (interpolate refuses an empty batch)
            masks = target.masks.new_zeros((0, *size))
        keep = masks.flatten(1).sum(dim=1) >= max(min_area, 1)
        masks = masks[keep]
        targets.append(
            FrameTargets(
                boxes=boxes_from_masks(masks).to(target.boxes),
                classes=target.classes[keep],
                track_ids=target.track_ids[keep],
                masks=masks,
                semantic=semantic[0, 0].long(),
            )
        )
    return Clip(images, targets)


def jitter_size(
    input_size: tuple[int, int], scales: Sequence[float], generator: torch.Generator
) -> tuple[int, int]:
    """One training size for a batch: ``input_size`` times a scale drawn uniformly from ``scales``.

    CUPS draws one of ``AUGMENTATION.RESOLUTIONS`` (640×1280 times 0.6, 0.65, …, 1.1) per batch;
    sides are rounded to multiples of 32 (the network's stride).
    """
    scale = scales[int(torch.randint(len(scales), (), generator=generator))]
    height, width = input_size
    return (max(32, 32 * round(height * scale / 32)), max(32, 32 * round(width * scale / 32)))


# CUPS' PhotometricAugmentations (kornia): RandomGaussianBlur((7, 7), sigma=(0.1, 2.0), p=1),
# ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.5), RandomGrayscale(0.2).
BLUR_KERNEL = 7
BLUR_SIGMA = (0.1, 2.0)
COLOR_JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
COLOR_JITTER_PROBABILITY = 0.5
GRAYSCALE_PROBABILITY = 0.2


def _gaussian_blur(images: Tensor, sigma: float, kernel_size: int = BLUR_KERNEL) -> Tensor:
    """Separable Gaussian blur of (N, 3, H, W) with reflected borders (kornia's default)."""
    half = kernel_size // 2
    x = torch.arange(kernel_size, dtype=images.dtype, device=images.device) - half
    kernel = torch.exp(-(x**2) / (2.0 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (half, half, half, half), mode="reflect")
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    blurred = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(blurred, vertical, groups=channels)


def _grayscale(images: Tensor) -> Tensor:
    """Luma (N, 1, H, W) of RGB images with the ITU-R 601 weights (kornia, torchvision)."""
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _shift_hue(images: Tensor, shift: float) -> Tensor:
    """Rotate the hue of RGB images in [0, 1] by ``shift`` turns (HSV round trip)."""
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    maximum, _ = images.max(dim=1)
    minimum, _ = images.min(dim=1)
    delta = maximum - minimum
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maximum == r,
        ((g - b) / safe) % 6.0,
        torch.where(maximum == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = torch.where(delta > 0, hue / 6.0, torch.zeros_like(hue))
    hue = (hue + shift) % 1.0
    saturation = torch.where(maximum > 0, delta / torch.where(maximum > 0, maximum, 1.0), 0.0)
    value = maximum
    sector = hue * 6.0
    channels = []
    for offset in (5.0, 3.0, 1.0):  # r, g, b from the standard HSV → RGB formula
        k = (offset + sector) % 6.0
        weight = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
        channels.append(value - value * saturation * weight)
    return torch.stack(channels, dim=1)


def photometric_augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """CUPS' ``PhotometricAugmentations`` on one clip (T, 3, H, W) in 0..255, the same for all T.

    Gaussian blur (7 × 7, σ uniform in [0.1, 2], always), then with probability 0.5 a colour
    jitter (brightness, contrast, saturation factors uniform in [0.6, 1.4], hue shift uniform in
    [−0.1, 0.1] turns, in random order, torchvision's definitions which kornia's ``ColorJitter``
    follows), then with probability 0.2 grayscale. One draw per clip keeps its frames alike.
    """
    x = images.float() / 255.0
    low, high = BLUR_SIGMA
    x = _gaussian_blur(x, low + (high - low) * float(torch.rand((), generator=generator)))
    if float(torch.rand((), generator=generator)) < COLOR_JITTER_PROBABILITY:
        spread = torch.tensor(COLOR_JITTER[:3])
        factors = 1.0 - spread + 2.0 * spread * torch.rand(3, generator=generator)
        hue = COLOR_JITTER[3] * (2.0 * float(torch.rand((), generator=generator)) - 1.0)
        order = torch.randperm(4, generator=generator).tolist()
        for op in order:
            if op == 0:
                x = (x * float(factors[0])).clamp(0.0, 1.0)
            elif op == 1:
                mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
                x = (mean + float(factors[1]) * (x - mean)).clamp(0.0, 1.0)
            elif op == 2:
                gray = _grayscale(x)
                x = (gray + float(factors[2]) * (x - gray)).clamp(0.0, 1.0)
            else:
                x = _shift_hue(x, hue)
    if float(torch.rand((), generator=generator)) < GRAYSCALE_PROBABILITY:
        x = _grayscale(x).expand(-1, 3, -1, -1)
    return (x * 255.0).contiguous()


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
