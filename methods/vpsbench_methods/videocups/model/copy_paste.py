"""Video copy-paste augmentation, plain and self-enhanced (VideoCUPS paper Sec. 3.2).

"Thing" video instances are cut out of clips, either from the pseudo-labels
(:func:`instances_from_targets`, plain video copy-paste) or from the model's own confident,
tracked predictions (:func:`instances_from_predictions`, self-enhanced copy-paste), and pasted
into the clips of a training batch (:func:`paste_video_instances`, :func:`copy_paste_batch`).
Each pasted instance gets one random horizontal flip and scale and moves along a random straight
trajectory, so the model sees extra (often small) objects with diverse motion patterns.

The selection, count, scale and flip follow CUPS' ``CopyPasteAugmentation`` and its training step
(``cups/augmentation.py``, ``cups/pl_model_pseudo.py``, ``cups/model/model.py``): every clip
receives a random number of 1 to ``max_pasted_per_clip`` instances drawn with replacement from the
batch's pool, each scaled by a uniform factor in ``scale_range`` and mirrored with probability
``flip_probability``; only instances whose box is larger than ``min_box_size`` in both sides are
pasted; predicted instances must score above ``min_score`` and overlap no pseudo-instance by box
IoU ``max_overlap_iou`` or more. The straight trajectory (one track id in every frame) is the
paper's extension to clips (Sec. 3.2). All randomness goes through a :class:`torch.Generator` so
that a seed reproduces an augmentation exactly (the generator must live on the CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from vpsbench_methods.videocups.model.targets import Clip, FrameTargets, boxes_from_masks


@dataclass(frozen=True)
class CopyPasteConfig:
    """Hyper-parameters of video copy-paste; defaults are CUPS' where CUPS has the setting.

    ``scale_range``: one scale per pasted instance, drawn uniformly from ``[low, high]`` (CUPS:
    0.25 to 1.5). ``flip_probability``: chance to mirror a pasted instance horizontally in all
    its frames (CUPS: 0.5). ``max_pasted_per_clip``: each clip gets a uniform random number of
    1 to this many pastes (CUPS ``AUGMENTATION.MAX_NUM_PASTED_OBJECTS``: 8).
    ``min_box_size``: an instance is pasted only if its box (CUPS': last minus first pixel
    index) is wider and taller than this in every frame it appears in (CUPS: 32).
    ``max_speed``: largest speed of the random straight trajectory, in pixels per frame as a
    fraction of the image width (ours: the paper's clip extension). ``min_visible_area``:
    pixels an object (existing or pasted) must keep in a frame after occlusion and clipping,
    else it is removed from that frame's targets (ours). ``min_score``: self-enhanced instances
    score above this in every frame (CUPS ``AUGMENTATION.CONFIDENCE``: 0.75).
    ``max_overlap_iou``: a predicted instance whose box overlaps a pseudo-instance's box by this
    IoU or more in any frame is not pasted (CUPS ``filter_predictions``: 0.5).
    ``min_track_frames``: frames a predicted track must appear in.
    """

    scale_range: tuple[float, float] = (0.25, 1.5)
    flip_probability: float = 0.5
    max_pasted_per_clip: int = 8
    min_box_size: int = 32
    max_speed: float = 0.05
    min_visible_area: int = 16
    min_score: float = 0.75
    max_overlap_iou: float = 0.5
    min_track_frames: int = 2

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0.0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        if self.max_pasted_per_clip < 0:
            raise ValueError(f"max_pasted_per_clip must be >= 0, got {self.max_pasted_per_clip}")
        if self.max_speed < 0.0:
            raise ValueError(f"max_speed must be >= 0, got {self.max_speed}")
        if self.min_visible_area < 1:
            raise ValueError(f"min_visible_area must be >= 1, got {self.min_visible_area}")
        if self.min_box_size < 0:
            raise ValueError(f"min_box_size must be >= 0, got {self.min_box_size}")
        if not 0.0 < self.max_overlap_iou <= 1.0:
            raise ValueError(f"max_overlap_iou must be in (0, 1], got {self.max_overlap_iou}")
        if self.min_track_frames < 1:
            raise ValueError(f"min_track_frames must be >= 1, got {self.min_track_frames}")


@dataclass
class VideoInstance:
    """A "thing" tracked through a clip, cropped to its box in every frame it appears in.

    ``frames[t]`` is ``(patch (3, h, w) float RGB, mask (h, w) bool)`` for clip frame ``t``, or
    ``None`` where the object is absent; ``thing_class`` is its thing pseudo-class.
    """

    frames: list[tuple[Tensor, Tensor] | None]
    thing_class: int

    @property
    def num_present(self) -> int:
        """Number of frames the instance appears in."""
        return sum(frame is not None for frame in self.frames)


def _crop(image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Cut an image (3, H, W) and a non-empty mask (H, W) to the mask's tight box (copies)."""
    x1, y1, x2, y2 = (int(v) for v in boxes_from_masks(mask[None])[0].tolist())
    return image[:, y1:y2, x1:x2].clone(), mask[y1:y2, x1:x2].clone()


def _majority(values: list[int]) -> int:
    """Most frequent value (the smallest one on ties), for a track's class."""
    return int(torch.tensor(values, dtype=torch.int64).mode().values.item())


def instances_from_targets(clip: Clip) -> list[VideoInstance]:
    """The pseudo-label video instances of a clip, one per track id (plain video copy-paste).

    Instances are ordered by track id; the class is the track's most frequent class.
    """
    num_frames = len(clip.targets)
    frames_by_id: dict[int, list[tuple[Tensor, Tensor] | None]] = {}
    classes_by_id: dict[int, list[int]] = {}
    for t, target in enumerate(clip.targets):
        for i, track_id in enumerate(target.track_ids.tolist()):
            mask = target.masks[i]
            if not bool(mask.any()):
                continue
            frames = frames_by_id.setdefault(int(track_id), [None] * num_frames)
            frames[t] = _crop(clip.images[t], mask)
            classes_by_id.setdefault(int(track_id), []).append(int(target.classes[i]))
    return [
        VideoInstance(frames_by_id[track_id], _majority(classes_by_id[track_id]))
        for track_id in sorted(frames_by_id)
    ]


def instances_from_predictions(
    images: Tensor,
    masks: list[Tensor],
    classes: list[Tensor],
    scores: list[Tensor],
    track_ids: list[Tensor],
    config: CopyPasteConfig,
    pseudo_boxes: list[Tensor] | None = None,
) -> list[VideoInstance]:
    """Confident predicted video instances of a clip (self-enhanced copy-paste).

    ``images`` (T, 3, H, W) and per frame the model's tracked "thing" detections: masks
    (N_t, H, W) bool, classes, scores and track ids (N_t,). Detections with empty masks are
    ignored; a track is kept only if every one of its detections scores above
    ``config.min_score`` (CUPS: ``score > CONFIDENCE``), it appears in at least
    ``config.min_track_frames`` frames and, given the clip's pseudo-instance boxes per frame
    (``pseudo_boxes``, (M_t, 4)), its mask's box overlaps none of them by IoU
    ``config.max_overlap_iou`` or more in any frame (CUPS ``filter_predictions``: only objects the
    pseudo-labels miss are pasted). If a track id occurs twice in a frame, its highest-scoring
    detection is used. Instances are ordered by track id; the class is the track's most frequent.
    """
    num_frames = int(images.shape[0])
    if not len(masks) == len(classes) == len(scores) == len(track_ids) == num_frames:
        raise ValueError("masks, classes, scores and track_ids need one entry per image")
    if pseudo_boxes is not None and len(pseudo_boxes) != num_frames:
        raise ValueError("pseudo_boxes needs one entry per image")
    best: dict[int, dict[int, int]] = {}  # track id -> frame -> detection index
    all_scores: dict[int, list[float]] = {}
    for t in range(num_frames):
        frame_scores = scores[t].tolist()
        for i, track_id in enumerate(track_ids[t].tolist()):
            if not bool(masks[t][i].any()):
                continue
            all_scores.setdefault(int(track_id), []).append(float(frame_scores[i]))
            per_frame = best.setdefault(int(track_id), {})
            if t not in per_frame or frame_scores[i] > frame_scores[per_frame[t]]:
                per_frame[t] = i
    instances: list[VideoInstance] = []
    for track_id in sorted(best):
        per_frame = best[track_id]
        if len(per_frame) < config.min_track_frames:
            continue
        if min(all_scores[track_id]) <= config.min_score:
            continue
        if pseudo_boxes is not None and _overlaps_pseudo_instances(
            [masks[t][i].bool() for t, i in per_frame.items()],
            [pseudo_boxes[t] for t in per_frame],
            config.max_overlap_iou,
        ):
            continue
        frames: list[tuple[Tensor, Tensor] | None] = [None] * num_frames
        for t, i in per_frame.items():
            frames[t] = _crop(images[t], masks[t][i].bool())
        track_classes = [int(classes[t][i]) for t, i in sorted(per_frame.items())]
        instances.append(VideoInstance(frames, _majority(track_classes)))
    return instances


def _overlaps_pseudo_instances(
    masks: list[Tensor], pseudo_boxes: list[Tensor], threshold: float
) -> bool:
    """Whether a mask's tight box overlaps a pseudo-instance box of its frame by IoU ≥ threshold.

    Boxes are ``boxes_from_masks``'s (one past the last pixel); the IoU is taken, as CUPS'
    ``iou_bbox`` takes it, on boxes ending at the last pixel's index (``get_bounding_boxes``).
    """
    last_pixel = torch.tensor([0.0, 0.0, 1.0, 1.0])
    for mask, boxes in zip(masks, pseudo_boxes, strict=True):
        if boxes.shape[0] == 0:
            continue
        box = boxes_from_masks(mask[None]).cpu().float() - last_pixel
        if float(_box_iou(boxes.cpu().float() - last_pixel, box).max()) >= threshold:
            return True
    return False


def _box_iou(first: Tensor, second: Tensor) -> Tensor:
    """Pairwise IoU (N, M) of boxes (x1, y1, x2, y2); 0 where the union is empty."""
    area1 = (first[:, 2] - first[:, 0]).clamp(min=0) * (first[:, 3] - first[:, 1]).clamp(min=0)
    area2 = (second[:, 2] - second[:, 0]).clamp(min=0) * (second[:, 3] - second[:, 1]).clamp(min=0)
    low = torch.max(first[:, None, :2], second[None, :, :2])
    high = torch.min(first[:, None, 2:], second[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(dim=2)
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def large_enough(instance: VideoInstance, min_box_size: int) -> bool:
    """Whether the instance's box is wider and taller than ``min_box_size`` in every frame.

    CUPS pastes only objects whose box exceeds ``min_bounding_box_size`` (32 × 32) in both sides,
    measured on its boxes that end at the last pixel's index: a side of ``n`` pixels counts as
    ``n − 1``.
    """
    present = [frame for frame in instance.frames if frame is not None]
    return bool(present) and all(
        mask.shape[0] - 1 > min_box_size and mask.shape[1] - 1 > min_box_size for _, mask in present
    )


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    """One uniform draw in [low, high) from the generator."""
    return low + (high - low) * float(torch.rand((), generator=generator).item())


def _randint(generator: torch.Generator, high: int) -> int:
    """One uniform integer draw in [0, high)."""
    return int(torch.randint(high, (), generator=generator).item())


def _augment(patch: Tensor, mask: Tensor, scale: float, flip: bool) -> tuple[Tensor, Tensor]:
    """Mirror a patch and its mask if ``flip``, then resize by ``scale``: bilinear / nearest.

    Flipping first makes a mirror-symmetric source paste identically flipped or not, at any
    scale (nearest resizing itself is not mirror-symmetric); scale 1 copies pixels exactly.
    """
    if flip:
        patch, mask = patch.flip(-1), mask.flip(-1)
    height, width = int(mask.shape[0]), int(mask.shape[1])
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size != (height, width):
        resized = F.interpolate(
            patch[None].float(), size=size, mode="bilinear", align_corners=False
        )
        patch = resized[0]
        mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0] > 0.5
    return patch, mask


def _round(value: float) -> int:
    """Round half up (independent of Python's banker's rounding)."""
    return math.floor(value + 0.5)


@dataclass
class _Placement:
    """Where an augmented instance goes: its resized patches and top-left corners per frame."""

    patches: list[tuple[Tensor, Tensor] | None]
    corners: list[tuple[int, int] | None]  # (top, left) per clip frame
    thing_class: int


def _place(
    instance: VideoInstance,
    num_frames: int,
    image_size: tuple[int, int],
    config: CopyPasteConfig,
    generator: torch.Generator,
) -> _Placement | None:
    """Draw scale, flip, start and velocity of one instance and compute its per-frame placement.

    The start puts a random pixel of the instance's first (augmented) mask on a random image
    pixel, so the object is at least partly inside the image there; the patch centre then moves
    by a constant velocity per frame (a straight trajectory). ``None`` if nothing can be pasted.
    """
    height, width = image_size
    scale = _uniform(generator, *config.scale_range)
    flip = _uniform(generator) < config.flip_probability
    angle = _uniform(generator, 0.0, 2.0 * math.pi)
    speed = _uniform(generator, 0.0, config.max_speed * width)
    velocity_y, velocity_x = speed * math.sin(angle), speed * math.cos(angle)

    patches: list[tuple[Tensor, Tensor] | None] = [None] * num_frames
    for t, frame in enumerate(instance.frames[:num_frames]):
        if frame is not None:
            patch, mask = _augment(frame[0], frame[1], scale, flip)
            if bool(mask.any()):
                patches[t] = (patch, mask)
    present = [(t, frame) for t, frame in enumerate(patches) if frame is not None]
    if not present:
        return None
    first, (_, first_mask) = present[0]
    mask_pixels = first_mask.nonzero()
    anchor_y, anchor_x = (int(v) for v in mask_pixels[_randint(generator, len(mask_pixels))])
    top0, left0 = _randint(generator, height) - anchor_y, _randint(generator, width) - anchor_x
    centre_y = top0 + first_mask.shape[0] / 2.0
    centre_x = left0 + first_mask.shape[1] / 2.0

    corners: list[tuple[int, int] | None] = [None] * num_frames
    for t, (_, mask) in present:
        h, w = int(mask.shape[0]), int(mask.shape[1])
        top = _round(centre_y + (t - first) * velocity_y - h / 2.0)
        left = _round(centre_x + (t - first) * velocity_x - w / 2.0)
        corners[t] = (top, left)
    return _Placement(patches, corners, instance.thing_class)


def _paste_frame(image: Tensor, patch: Tensor, mask: Tensor, top: int, left: int) -> Tensor | None:
    """Composite a patch into ``image`` (in place) where its mask is True, clipped at the borders.

    Returns the pasted full-image mask (H, W), or ``None`` if no pixel lands inside the image.
    """
    height, width = int(image.shape[1]), int(image.shape[2])
    h, w = int(mask.shape[0]), int(mask.shape[1])
    y1, x1 = max(top, 0), max(left, 0)
    y2, x2 = min(top + h, height), min(left + w, width)
    if y1 >= y2 or x1 >= x2:
        return None
    sub_mask = mask[y1 - top : y2 - top, x1 - left : x2 - left].to(image.device)
    if not bool(sub_mask.any()):
        return None
    sub_patch = patch[:, y1 - top : y2 - top, x1 - left : x2 - left].to(image)
    region = image[:, y1:y2, x1:x2]
    region[:, sub_mask] = sub_patch[:, sub_mask]
    full = torch.zeros((height, width), dtype=torch.bool, device=image.device)
    full[y1:y2, x1:x2] = sub_mask
    return full


def _clone_targets(target: FrameTargets) -> FrameTargets:
    """A deep copy of a frame's targets."""
    return FrameTargets(
        target.boxes.clone(),
        target.classes.clone(),
        target.track_ids.clone(),
        target.masks.clone(),
        target.semantic.clone(),
    )


def _occlude(
    target: FrameTargets, pasted: Tensor, track_id: int, thing_class: int, min_area: int
) -> FrameTargets:
    """Frame targets after pasting a new object on ``pasted`` (H, W): it occludes the others.

    Pasted pixels leave every existing mask; objects left with fewer than ``min_area`` pixels are
    dropped; the new object is added if it has at least ``min_area`` pixels; the semantic target
    becomes 0 (thing) on all pasted pixels; boxes are recomputed from the masks.
    """
    device = target.masks.device
    pasted = pasted.to(device)
    masks = target.masks & ~pasted
    keep = masks.flatten(1).sum(dim=1) >= min_area
    masks = masks[keep]
    classes = target.classes[keep]
    track_ids = target.track_ids[keep]
    if int(pasted.sum()) >= min_area:
        masks = torch.cat((masks, pasted[None]))
        classes = torch.cat((classes, classes.new_tensor([thing_class])))
        track_ids = torch.cat((track_ids, track_ids.new_tensor([track_id])))
    semantic = target.semantic.clone()
    semantic[pasted] = 0
    boxes = boxes_from_masks(masks).to(device=device, dtype=target.boxes.dtype)
    return FrameTargets(boxes, classes, track_ids, masks, semantic)


def paste_video_instances(
    clip: Clip,
    instances: Sequence[VideoInstance],
    config: CopyPasteConfig,
    generator: torch.Generator,
) -> Clip:
    """Paste up to ``config.max_pasted_per_clip`` randomly chosen instances into a new clip.

    ``min(max_pasted_per_clip, len(instances))`` distinct instances are chosen in random order.
    Frame ``t`` of an instance goes to frame ``t`` of the clip (extra instance frames are unused,
    absent ones paste nothing). Each pasted instance gets the next new track id (largest id of the
    clip + 1, + 2, … in paste order, whether or not it stays visible) and its class; later pastes
    occlude earlier ones and the existing objects. The input clip is left unchanged.
    """
    num_frames, _, height, width = (int(v) for v in clip.images.shape)
    images = clip.images.clone()
    targets = [_clone_targets(target) for target in clip.targets]
    count = min(config.max_pasted_per_clip, len(instances))
    if count == 0:
        return Clip(images, targets)
    order = torch.randperm(len(instances), generator=generator)[:count].tolist()
    existing_ids = [int(target.track_ids.max()) for target in targets if target.track_ids.numel()]
    next_id = max(existing_ids, default=0) + 1
    for index in order:
        placement = _place(instances[index], num_frames, (height, width), config, generator)
        if placement is None:
            continue
        track_id, next_id = next_id, next_id + 1
        for t in range(num_frames):
            patch_mask, corner = placement.patches[t], placement.corners[t]
            if patch_mask is None or corner is None:
                continue
            pasted = _paste_frame(images[t], patch_mask[0], patch_mask[1], *corner)
            if pasted is None:
                continue
            targets[t] = _occlude(
                targets[t], pasted, track_id, placement.thing_class, config.min_visible_area
            )
    return Clip(images, targets)


def copy_paste_batch(
    clips: list[Clip],
    instance_pool: Sequence[VideoInstance],
    config: CopyPasteConfig,
    generator: torch.Generator,
) -> list[Clip]:
    """Paste instances drawn at random (with replacement) from a pool into every clip of a batch.

    As CUPS' ``CopyPasteAugmentation``: only instances larger than ``config.min_box_size`` enter
    the pool; each clip receives a uniform random number of 1 to ``config.max_pasted_per_clip``
    draws from it (fewer pastes only if an instance cannot be placed); an empty pool leaves the
    clips as they are.
    """
    pool = [instance for instance in instance_pool if large_enough(instance, config.min_box_size)]
    augmented: list[Clip] = []
    for clip in clips:
        if pool and config.max_pasted_per_clip > 0:
            count = 1 + _randint(generator, config.max_pasted_per_clip)
            draws = torch.randint(len(pool), (count,), generator=generator).tolist()
            chosen = [pool[i] for i in draws]
        else:
            chosen = []
        augmented.append(paste_video_instances(clip, chosen, config, generator))
    return augmented
