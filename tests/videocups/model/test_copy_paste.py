"""Video copy-paste augmentation on small constructed clips with hand-checked expectations."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import Tensor
from vpsbench_methods.videocups.model.copy_paste import (
    CopyPasteConfig,
    VideoInstance,
    copy_paste_batch,
    instances_from_predictions,
    instances_from_targets,
    large_enough,
    paste_video_instances,
)
from vpsbench_methods.videocups.model.targets import IGNORE, Clip, FrameTargets, boxes_from_masks

STILL = CopyPasteConfig(
    scale_range=(1.0, 1.0),
    flip_probability=0.0,
    max_pasted_per_clip=1,
    max_speed=0.0,
    min_visible_area=1,
)
"""Scale 1, no flip, no motion, one paste: the patch lands pixel-exact at a random place."""


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def frame_targets(
    masks: list[Tensor], classes: list[int], ids: list[int], semantic: Tensor
) -> FrameTargets:
    """Targets with boxes computed from the masks."""
    stacked = torch.stack(masks) if masks else torch.zeros((0, *semantic.shape), dtype=torch.bool)
    return FrameTargets(
        boxes_from_masks(stacked),
        torch.tensor(classes, dtype=torch.int64),
        torch.tensor(ids, dtype=torch.int64),
        stacked,
        semantic,
    )


def background_clip(num_frames: int, height: int, width: int) -> Clip:
    """A clip with a distinct value in every pixel/channel/frame, no objects, stuff class 3."""
    images = torch.arange(num_frames * 3 * height * width, dtype=torch.float32)
    images = images.reshape(num_frames, 3, height, width) % 250.0
    semantic = torch.full((height, width), 4, dtype=torch.int64)
    semantic[0, :] = IGNORE
    targets = [frame_targets([], [], [], semantic.clone()) for _ in range(num_frames)]
    return Clip(images, targets)


def diamond_instance(num_frames: int, thing_class: int = 5) -> VideoInstance:
    """A 5×5 diamond-shaped instance with distinct pixel values (≥ 1000) in every frame."""
    yy, xx = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
    mask = (yy - 2).abs() + (xx - 2).abs() <= 2
    frames: list[tuple[Tensor, Tensor] | None] = []
    for t in range(num_frames):
        patch = 1000.0 + 100.0 * t + torch.arange(75, dtype=torch.float32).reshape(3, 5, 5)
        frames.append((patch, mask.clone()))
    return VideoInstance(frames, thing_class)


def new_objects(clip: Clip, track_id: int) -> list[Tensor | None]:
    """The mask of ``track_id`` in every frame (None where absent)."""
    out: list[Tensor | None] = []
    for target in clip.targets:
        hits = (target.track_ids == track_id).nonzero().flatten()
        assert len(hits) <= 1
        out.append(target.masks[int(hits[0])] if len(hits) else None)
    return out


def box_of(mask: Tensor) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(v) for v in boxes_from_masks(mask[None])[0].tolist())
    return x1, y1, x2, y2


def assert_consistent(clip: Clip) -> None:
    """Non-empty, pairwise disjoint masks with tight boxes; unique positive ids per frame."""
    for target in clip.targets:
        n = target.masks.shape[0]
        assert target.boxes.shape == (n, 4) and target.classes.shape == target.track_ids.shape == (
            n,
        )
        assert bool((target.masks.flatten(1).sum(1) > 0).all())
        assert int(target.masks.sum(0).max()) <= 1 if n else True
        assert torch.equal(target.boxes, boxes_from_masks(target.masks))
        assert bool((target.track_ids > 0).all())
        assert len(set(target.track_ids.tolist())) == n
        assert bool((target.semantic[target.masks.any(0)] == 0).all())


def test_scale_one_without_flip_pastes_the_patch_pixel_exact() -> None:
    clip = background_clip(2, 20, 24)
    instance = diamond_instance(2)
    found_unclipped = 0
    for seed in range(20):
        out = paste_video_instances(clip, [instance], STILL, gen(seed))
        masks = new_objects(out, 1)  # the clip has no ids, so the pasted one is 1
        for t, pasted in enumerate(masks):
            assert pasted is not None
            assert int(out.targets[t].classes[0]) == 5
            # Outside the pasted mask, image and semantic are unchanged.
            assert torch.equal(out.images[t][:, ~pasted], clip.images[t][:, ~pasted])
            assert torch.equal(out.targets[t].semantic[~pasted], clip.targets[t].semantic[~pasted])
            assert bool((out.targets[t].semantic[pasted] == 0).all())
            x1, y1, x2, y2 = box_of(pasted)
            if (x2 - x1, y2 - y1) != (5, 5):
                continue  # clipped at the border
            found_unclipped += 1
            patch, mask = instance.frames[t]  # type: ignore[misc]
            assert torch.equal(pasted[y1:y2, x1:x2], mask)
            assert torch.equal(out.images[t][:, y1:y2, x1:x2][:, mask], patch[:, mask])
        # No motion: the same place in both frames.
        assert masks[0] is not None and masks[1] is not None
        assert torch.equal(masks[0], masks[1])
    assert found_unclipped >= 10


def test_clipped_paste_keeps_the_inside_part() -> None:
    clip = background_clip(1, 6, 6)
    patch = 500.0 + torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(3, 4, 4)
    instance = VideoInstance([(patch, torch.ones((4, 4), dtype=torch.bool))], 0)
    for seed in range(30):
        out = paste_video_instances(clip, [instance], STILL, gen(seed))
        (pasted,) = new_objects(out, 1)
        assert pasted is not None
        x1, y1, x2, y2 = box_of(pasted)
        assert bool(pasted[y1:y2, x1:x2].all())  # a rectangle, cut by the image border
        # Top-left of the full 4×4 patch: the visible box touches the border where it is cut.
        left = x2 - 4 if x1 == 0 else x1
        top = y2 - 4 if y1 == 0 else y1
        expected = patch[:, y1 - top : y2 - top, x1 - left : x2 - left]
        assert torch.equal(out.images[0][:, y1:y2, x1:x2], expected)


def test_flip_mirrors_patch_and_mask() -> None:
    clip = background_clip(1, 30, 30)
    mask = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)  # asymmetric
    patch = 700.0 + torch.arange(27, dtype=torch.float32).reshape(3, 3, 3)
    instance = VideoInstance([(patch, mask)], 2)
    config = CopyPasteConfig(
        scale_range=(1.0, 1.0),
        flip_probability=1.0,
        max_pasted_per_clip=1,
        max_speed=0.0,
        min_visible_area=1,
    )
    unclipped = 0
    for seed in range(10):
        out = paste_video_instances(clip, [instance], config, gen(seed))
        (pasted,) = new_objects(out, 1)
        assert pasted is not None
        x1, y1, x2, y2 = box_of(pasted)
        if (x2 - x1, y2 - y1) != (3, 3):
            continue  # clipped at the border
        unclipped += 1
        flipped = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)
        assert torch.equal(pasted[y1:y2, x1:x2], flipped)
        region = out.images[0][:, y1:y2, x1:x2]
        assert torch.equal(region[:, flipped], patch.flip(-1)[:, flipped])
        assert region[0, 0, 2].item() == 700.0 and region[0, 2, 0].item() == 708.0
    assert unclipped >= 5


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.5, 1.5])
def test_symmetric_patch_pasted_flipped_equals_unflipped(scale: float) -> None:
    clip = background_clip(2, 40, 40)
    yy, xx = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    mask = (yy - 2.5).abs() + (xx - 2.5).abs() <= 3.0
    column = torch.tensor([10.0, 40.0, 90.0, 90.0, 40.0, 10.0])  # mirror-symmetric in x
    patch = (column[None, None, :] + 5.0 * yy[None]).expand(3, 6, 6).clone()
    instance = VideoInstance([(patch, mask), (patch, mask)], 1)
    base = CopyPasteConfig(scale_range=(scale, scale), max_pasted_per_clip=1, max_speed=0.05)
    never, always = replace(base, flip_probability=0.0), replace(base, flip_probability=1.0)
    plain = paste_video_instances(clip, [instance], never, gen(7))
    flipped = paste_video_instances(clip, [instance], always, gen(7))
    assert torch.equal(plain.images, flipped.images)
    for a, b in zip(plain.targets, flipped.targets, strict=True):
        assert torch.equal(a.masks, b.masks)
    # The same draws with an asymmetric patch do differ: the flip was applied.
    lopsided = VideoInstance([(patch * torch.arange(1.0, 7.0), mask)] * 2, 1)
    plain = paste_video_instances(clip, [lopsided], never, gen(7))
    flipped = paste_video_instances(clip, [lopsided], always, gen(7))
    assert not torch.equal(plain.images, flipped.images)


def test_scale_two_doubles_a_constant_rectangle() -> None:
    clip = background_clip(1, 40, 40)
    patch = torch.full((3, 3, 4), 100.0)
    instance = VideoInstance([(patch, torch.ones((3, 4), dtype=torch.bool))], 0)
    config = CopyPasteConfig(
        scale_range=(2.0, 2.0), max_pasted_per_clip=1, max_speed=0.0, min_visible_area=1
    )
    unclipped = 0
    for seed in range(10):
        out = paste_video_instances(clip, [instance], config, gen(seed))
        (pasted,) = new_objects(out, 1)
        assert pasted is not None
        assert bool((out.images[0][:, pasted] == 100.0).all())
        x1, y1, x2, y2 = box_of(pasted)
        if (x2 - x1, y2 - y1) == (8, 6):
            unclipped += 1
            assert int(pasted.sum()) == 48
    assert unclipped >= 5


def test_occluded_object_loses_pixels_and_its_box_is_recomputed() -> None:
    # One row of three pixels, all one object (id 4); a 1×1 patch lands on one of the columns.
    images = torch.zeros((1, 3, 1, 3))
    semantic = torch.tensor([[0, 0, 0]])
    row = torch.ones((1, 3), dtype=torch.bool)
    clip = Clip(images, [frame_targets([row], [2], [4], semantic)])
    instance = VideoInstance(
        [(torch.full((3, 1, 1), 9.0), torch.ones((1, 1), dtype=torch.bool))], 1
    )
    expected_boxes = {0: [1.0, 0.0, 3.0, 1.0], 1: [0.0, 0.0, 3.0, 1.0], 2: [0.0, 0.0, 2.0, 1.0]}
    seen = set()
    for seed in range(20):
        out = paste_video_instances(clip, [instance], STILL, gen(seed))
        target = out.targets[0]
        column = int(out.images[0, 0, 0].argmax())
        seen.add(column)
        assert target.track_ids.tolist() == [4, 5]
        assert target.classes.tolist() == [2, 1]
        old = torch.ones((1, 3), dtype=torch.bool)
        old[0, column] = False
        assert torch.equal(target.masks[0], old)
        assert target.boxes[0].tolist() == expected_boxes[column]
        assert target.boxes[1].tolist() == [float(column), 0.0, float(column + 1), 1.0]
    assert seen == {0, 1, 2}
    # With min_visible_area 2 the 1-pixel paste is too small to be a target itself (its pixels
    # stay pasted and thing); with 3 the occluded object (2 pixels left) is dropped too.
    strict = replace(STILL, min_visible_area=2)
    out = paste_video_instances(clip, [instance], strict, gen(0))
    assert out.targets[0].track_ids.tolist() == [4]
    assert int(out.targets[0].masks[0].sum()) == 2
    strict3 = replace(STILL, min_visible_area=3)
    out = paste_video_instances(clip, [instance], strict3, gen(0))
    assert out.targets[0].track_ids.numel() == 0
    assert out.targets[0].semantic.tolist() == [[0, 0, 0]]


def test_fully_covered_object_disappears_only_in_that_frame() -> None:
    # 1×1 frames: the pasted pixel always covers the whole frame.
    images = torch.full((3, 3, 1, 1), 50.0)
    pixel = torch.ones((1, 1), dtype=torch.bool)
    semantic = torch.zeros((1, 1), dtype=torch.int64)
    clip = Clip(images, [frame_targets([pixel], [0], [3], semantic.clone()) for _ in range(3)])
    clip.targets[2] = frame_targets([pixel], [0], [7], semantic.clone())  # another object, id 7
    patch = torch.full((3, 1, 1), 200.0)
    instance = VideoInstance([(patch, pixel), None, (patch, pixel), (patch, pixel)], 6)
    out = paste_video_instances(clip, [instance], STILL, gen(0))
    # New id: largest id of the whole clip (7) + 1; frame 1 has no source frame.
    assert out.targets[0].track_ids.tolist() == [8]
    assert out.targets[1].track_ids.tolist() == [3]
    assert out.targets[2].track_ids.tolist() == [8]
    assert out.targets[0].classes.tolist() == [6] and out.targets[2].classes.tolist() == [6]
    assert out.images[:, 0, 0, 0].tolist() == [200.0, 50.0, 200.0]


def test_pasted_instance_keeps_one_id_and_moves_linearly() -> None:
    clip = background_clip(6, 120, 160)
    patch = torch.full((3, 4, 4), 255.0)
    instance = VideoInstance([(patch, torch.ones((4, 4), dtype=torch.bool))] * 6, 3)
    config = CopyPasteConfig(
        scale_range=(1.0, 1.0), max_pasted_per_clip=1, max_speed=0.05, min_visible_area=1
    )
    checked = 0
    for seed in range(20):
        out = paste_video_instances(clip, [instance], config, gen(seed))
        masks = new_objects(out, 1)
        for t, mask in enumerate(masks):
            if mask is not None:
                assert out.targets[t].classes.tolist() == [3]
        if any(
            m is None or box_of(m)[2] - box_of(m)[0] != 4 or box_of(m)[3] - box_of(m)[1] != 4
            for m in masks
        ):
            continue  # (partly) outside the image in some frame
        checked += 1
        corners = torch.tensor([box_of(m)[:2] for m in masks if m is not None], dtype=torch.float64)
        steps = corners[1:] - corners[:-1]
        # Constant velocity, up to rounding to whole pixels: steps differ by at most 1 pixel and
        # positions stay within 1 pixel of the straight line through the first and last ones.
        assert float((steps.max(0).values - steps.min(0).values).max()) <= 1.0
        line = (
            corners[0]
            + torch.arange(6, dtype=torch.float64)[:, None] * (corners[-1] - corners[0]) / 5
        )
        assert float((corners - line).abs().max()) <= 1.0
        assert float(steps.abs().max()) <= 0.05 * 160 + 1
    assert checked >= 5


def test_masks_disjoint_boxes_tight_and_ids_consistent_after_many_pastes() -> None:
    clip = background_clip(3, 32, 32)
    semantic = torch.full((32, 32), 2, dtype=torch.int64)
    for t in range(3):
        a = torch.zeros((32, 32), dtype=torch.bool)
        a[4 + t : 14 + t, 4:20] = True
        b = torch.zeros((32, 32), dtype=torch.bool)
        b[18:30, 10 + t : 26 + t] = True
        sem = semantic.clone()
        sem[a | b] = 0
        clip.targets[t] = frame_targets([a, b], [0, 1], [1, 2], sem)
    pool = [*instances_from_targets(clip), diamond_instance(3), diamond_instance(2, 4)]
    config = CopyPasteConfig(max_pasted_per_clip=4, min_visible_area=4)
    for seed in range(10):
        out = paste_video_instances(clip, pool, config, gen(seed))
        assert_consistent(out)
        classes_by_id: dict[int, set[int]] = {}
        for target in out.targets:
            for track_id, cls in zip(
                target.track_ids.tolist(), target.classes.tolist(), strict=True
            ):
                classes_by_id.setdefault(track_id, set()).add(cls)
            assert max(target.track_ids.tolist(), default=0) <= 6  # ids 3..6 for the four pastes
        assert all(len(c) == 1 for c in classes_by_id.values())
        # Anything that is no longer a thing pixel of an object kept its semantic target.
        changed = (out.images != clip.images).any(1)
        for t, target in enumerate(out.targets):
            unchanged = ~changed[t]
            assert torch.equal(target.semantic[unchanged], clip.targets[t].semantic[unchanged])


def test_inputs_are_not_modified() -> None:
    clip = background_clip(2, 16, 16)
    mask = torch.zeros((16, 16), dtype=torch.bool)
    mask[3:9, 3:9] = True
    clip.targets[0] = frame_targets([mask], [0], [1], torch.zeros((16, 16), dtype=torch.int64))
    instance = diamond_instance(2)
    saved_images = clip.images.clone()
    saved = [
        (t.boxes.clone(), t.masks.clone(), t.track_ids.clone(), t.semantic.clone())
        for t in clip.targets
    ]
    saved_patch = instance.frames[0][0].clone()  # type: ignore[index]
    paste_video_instances(clip, [instance], CopyPasteConfig(min_visible_area=1), gen(1))
    assert torch.equal(clip.images, saved_images)
    for target, (boxes, masks, ids, semantic) in zip(clip.targets, saved, strict=True):
        assert torch.equal(target.boxes, boxes) and torch.equal(target.masks, masks)
        assert torch.equal(target.track_ids, ids) and torch.equal(target.semantic, semantic)
    assert torch.equal(instance.frames[0][0], saved_patch)  # type: ignore[index]


def test_same_seed_same_output_different_seed_different_placement() -> None:
    clip = background_clip(2, 48, 48)
    pool = [diamond_instance(2), diamond_instance(2, 1)]
    config = CopyPasteConfig(min_visible_area=1)
    first = paste_video_instances(clip, pool, config, gen(11))
    again = paste_video_instances(clip, pool, config, gen(11))
    assert torch.equal(first.images, again.images)
    for a, b in zip(first.targets, again.targets, strict=True):
        assert torch.equal(a.masks, b.masks) and torch.equal(a.track_ids, b.track_ids)
    other = paste_video_instances(clip, pool, config, gen(12))
    assert not torch.equal(first.images, other.images)


def test_instances_from_targets_groups_by_track_id() -> None:
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    a0 = torch.zeros((4, 5), dtype=torch.bool)
    a0[1:3, 1:4] = True
    a1 = torch.zeros((4, 5), dtype=torch.bool)
    a1[2, 3:5] = True
    b1 = torch.zeros((4, 5), dtype=torch.bool)
    b1[0, 0] = True
    sem = torch.zeros((4, 5), dtype=torch.int64)
    clip = Clip(
        images,
        [frame_targets([a0], [3], [9], sem), frame_targets([b1, a1], [1, 3], [2, 9], sem)],
    )
    first, second = instances_from_targets(clip)  # sorted by id: 2, then 9
    assert second.thing_class == 3 and first.thing_class == 1
    assert first.frames[0] is None and second.num_present == 2
    patch, mask = second.frames[0]  # type: ignore[misc]
    assert torch.equal(patch, images[0][:, 1:3, 1:4]) and bool(mask.all())
    patch, mask = second.frames[1]  # type: ignore[misc]
    assert torch.equal(patch, images[1][:, 2:3, 3:5]) and mask.shape == (1, 2)
    patch, mask = first.frames[1]  # type: ignore[misc]
    assert patch.tolist() == [[[60.0]], [[80.0]], [[100.0]]]


def test_instances_from_predictions_filters_by_score_and_frames() -> None:
    images = torch.rand((3, 3, 8, 8), generator=gen(0)) * 255.0

    def box_mask(y1: int, x1: int, y2: int, x2: int) -> Tensor:
        m = torch.zeros((8, 8), dtype=torch.bool)
        m[y1:y2, x1:x2] = True
        return m

    empty = torch.zeros((8, 8), dtype=torch.bool)
    # Track 1: confident in frames 0 and 2 (absent in 1) -> kept.
    # Track 2: 0.9, 0.7 -> one detection below min_score -> dropped.
    # Track 3: confident but in one frame only (its other mask is empty) -> dropped.
    masks = [
        torch.stack([box_mask(0, 0, 2, 3), box_mask(4, 4, 6, 6), box_mask(6, 0, 8, 2)]),
        torch.stack([box_mask(3, 3, 5, 5), empty]),
        torch.stack([box_mask(1, 1, 3, 4)]),
    ]
    classes = [torch.tensor([2, 0, 1]), torch.tensor([0, 1]), torch.tensor([2])]
    scores = [torch.tensor([0.95, 0.9, 0.99]), torch.tensor([0.7, 0.99]), torch.tensor([0.8])]
    track_ids = [torch.tensor([1, 2, 3]), torch.tensor([2, 3]), torch.tensor([1])]
    config = CopyPasteConfig(min_score=0.75, min_track_frames=2)
    (kept,) = instances_from_predictions(images, masks, classes, scores, track_ids, config)
    assert kept.thing_class == 2 and kept.num_present == 2 and kept.frames[1] is None
    patch, mask = kept.frames[0]  # type: ignore[misc]
    assert torch.equal(patch, images[0][:, 0:2, 0:3]) and mask.shape == (2, 3)
    patch, mask = kept.frames[2]  # type: ignore[misc]
    assert torch.equal(patch, images[2][:, 1:3, 1:4]) and bool(mask.all())
    # Lower thresholds keep the others too (track 3 has one non-empty frame).
    loose = CopyPasteConfig(min_score=0.5, min_track_frames=1)
    assert len(instances_from_predictions(images, masks, classes, scores, track_ids, loose)) == 3


def test_copy_paste_batch_pastes_into_every_clip_reproducibly() -> None:
    clips = [background_clip(2, 32, 32), background_clip(2, 24, 40)]
    pool = [diamond_instance(2, 0), diamond_instance(2, 1)]
    config = CopyPasteConfig(max_pasted_per_clip=2, min_box_size=0, min_visible_area=1)
    out = copy_paste_batch(clips, pool, config, gen(5))
    again = copy_paste_batch(clips, pool, config, gen(5))
    for clip, aug, aug2 in zip(clips, out, again, strict=True):
        assert aug.images.shape == clip.images.shape
        assert torch.equal(aug.images, aug2.images)
        assert not torch.equal(aug.images, clip.images)
        assert_consistent(aug)
        assert any(t.track_ids.numel() for t in aug.targets)
    unchanged = copy_paste_batch(clips, [], config, gen(5))
    assert all(torch.equal(a.images, c.images) for a, c in zip(unchanged, clips, strict=True))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        CopyPasteConfig(scale_range=(0.0, 1.0))
    with pytest.raises(ValueError):
        CopyPasteConfig(scale_range=(2.0, 1.0))
    with pytest.raises(ValueError):
        CopyPasteConfig(flip_probability=1.5)
    with pytest.raises(ValueError):
        CopyPasteConfig(min_visible_area=0)


def test_later_paste_occludes_earlier_one() -> None:
    # 1×1 frames: both pastes cover the only pixel; the second one (id 2) wins.
    clip = Clip(torch.zeros((1, 3, 1, 1)), [FrameTargets.empty(1, 1)])
    pixel = torch.ones((1, 1), dtype=torch.bool)
    red = VideoInstance([(torch.full((3, 1, 1), 10.0), pixel)], 0)
    blue = VideoInstance([(torch.full((3, 1, 1), 20.0), pixel)], 1)
    config = CopyPasteConfig(max_pasted_per_clip=2, min_visible_area=1)
    winners = set()
    for seed in range(10):
        out = paste_video_instances(clip, [red, blue], config, gen(seed))
        target = out.targets[0]
        assert target.track_ids.tolist() == [2]
        winner = target.classes.tolist()[0]
        winners.add(winner)
        assert out.images[0, 0, 0, 0].item() == (10.0 if winner == 0 else 20.0)
        assert target.semantic.tolist() == [[0]]
    assert winners == {0, 1}


def test_each_clip_gets_one_to_max_pastes_drawn_with_replacement() -> None:
    # CUPS: num_pasted_objects = randint(1, MAX_NUM_PASTED_OBJECTS + 1) per image. Pasting
    # still (scale 1, no motion) 2×2 instances into a large empty clip, the number of new tracks
    # is the number of draws (unless one covers another): every count in 1..4 occurs, no other.
    clip = background_clip(1, 64, 64)
    square = torch.ones((2, 2), dtype=torch.bool)
    pool = [VideoInstance([(torch.full((3, 2, 2), 900.0 + k), square)], 0) for k in range(3)]
    config = replace(STILL, max_pasted_per_clip=4, min_box_size=0)
    counts = set()
    for seed in range(60):
        (out,) = copy_paste_batch([clip], pool, config, gen(seed))
        pasted = int(out.targets[0].track_ids.numel())
        assert 1 <= pasted <= 4
        counts.add(pasted)
    assert counts == {1, 2, 3, 4}


def test_only_instances_larger_than_min_box_size_are_pasted() -> None:
    # CUPS pastes an object only if its box side (last minus first pixel index, get_bounding_boxes)
    # exceeds 32 in both directions: a 5-pixel side counts as 4.
    clip = background_clip(2, 48, 48)
    small = diamond_instance(2)  # 5 × 5 pixels in both frames
    config = replace(STILL, min_box_size=4)
    (out,) = copy_paste_batch([clip], [small], config, gen(0))
    assert torch.equal(out.images, clip.images) and out.targets[0].track_ids.numel() == 0
    config = replace(STILL, min_box_size=3)
    (out,) = copy_paste_batch([clip], [small], config, gen(0))
    assert not torch.equal(out.images, clip.images)
    # One frame at or below the size is enough to keep an instance out.
    one_small = VideoInstance([small.frames[0], (torch.zeros(3, 4, 9), torch.ones(4, 9) > 0)], 0)
    assert not large_enough(one_small, 3) and large_enough(small, 3)


def test_predicted_instances_overlapping_pseudo_instances_are_not_pasted() -> None:
    # CUPS filter_predictions: a prediction whose box has IoU >= 0.5 with a pseudo-label box is
    # left out; here per frame of the track. Boxes are (x1, y1, x2, y2), pixel i covers [i, i+1);
    # the IoU is CUPS', on boxes ending at the last pixel's index (x2 - 1, y2 - 1).
    images = torch.rand((2, 3, 16, 16), generator=gen(0)) * 255.0

    def box_mask(x1: int, y1: int, x2: int, y2: int) -> Tensor:
        m = torch.zeros((16, 16), dtype=torch.bool)
        m[y1:y2, x1:x2] = True
        return m

    # Track 1: 4 × 4 pixels at the origin in both frames (CUPS box 0..3 × 0..3, area 9).
    # Track 2: 8..12 × 8..12.
    masks = [torch.stack([box_mask(0, 0, 4, 4), box_mask(8, 8, 12, 12)])] * 2
    classes = [torch.tensor([0, 1])] * 2
    scores = [torch.tensor([0.9, 0.9])] * 2
    ids = [torch.tensor([1, 2])] * 2
    config = CopyPasteConfig(min_score=0.75, max_overlap_iou=0.5)

    def kept(pseudo: list[Tensor]) -> list[int]:
        found = instances_from_predictions(images, masks, classes, scores, ids, config, pseudo)
        return [instance.thing_class for instance in found]

    none = torch.zeros((0, 4))
    assert kept([none, none]) == [0, 1]
    # A pseudo box 4 × 2.5 pixels at the origin (CUPS: 0..3 × 0..1.5, area 4.5): IoU 4.5 / 9
    # = 0.5 in frame 1 only -> track 1 dropped.
    assert kept([none, torch.tensor([[0.0, 0.0, 4.0, 2.5]])]) == [1]
    # 4 × 2.4 pixels (IoU 4.2 / 9 < 0.5) -> kept.
    assert kept([none, torch.tensor([[0.0, 0.0, 4.0, 2.4]])]) == [0, 1]
    # A score equal to the confidence is not above it (CUPS: score > CONFIDENCE).
    at_threshold = [torch.tensor([0.75, 0.9])] * 2
    found = instances_from_predictions(images, masks, classes, at_threshold, ids, config)
    assert [instance.thing_class for instance in found] == [1]
