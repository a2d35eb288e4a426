"""Training clips from pseudo-labels: class spaces, targets, deterministic clip order, flips."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from vpsbench_methods.videocups.model.config import load_training_config
from vpsbench_methods.videocups.model.data import (
    ClassSpace,
    CropBox,
    _shift_hue,
    flip_targets,
    frame_targets,
    holds_square,
    jitter_size,
    load_image,
    photometric_augment,
    random_resized_crop,
    resize_clip,
    resize_image,
)
from vpsbench_methods.videocups.model.targets import IGNORE, Clip, FrameTargets, boxes_from_masks

from tests.videocups.model.labelled_videos import SPACE, labelled_synthetic, training_clips
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame


def test_class_space_tables_and_the_way_back() -> None:
    semantic = SPACE.semantic_table()
    assert [semantic[c] for c in (0, 1, 2, 3, 4, 5, 255)] == [1, 2, 0, 3, IGNORE, 0, IGNORE]
    things = SPACE.thing_table()
    assert [things[c] for c in (0, 2, 5, 4)] == [-1, 1, 0, -1]
    # Network ids: stuff s -> s, thing t -> S + t (S = 3), void -1.
    frame = PanopticFrame.from_arrays([[0, 2, 3, 4, -1]], [[0, 0, 7, 9, 0]])
    back = SPACE.panoptic_to_pseudo(frame)
    assert back.semantic.tolist() == [[0, 3, 5, 2, -1]]
    assert back.instance.tolist() == [[0, 0, 7, 9, 0]]


def test_class_space_needs_a_thing_and_disjoint_sets(tmp_path: Path) -> None:
    with pytest.raises(VpsbenchError, match="no thing"):
        ClassSpace(things=(), stuff=(0,))
    with pytest.raises(VpsbenchError, match="both thing and stuff"):
        ClassSpace(things=(1,), stuff=(1,))
    with pytest.raises(InputError, match="run the pseudo-label stage"):
        ClassSpace.from_summary(tmp_path / "summary.json")
    (tmp_path / "summary.json").write_text(
        json.dumps({"thing_pseudo_classes": [5, 2], "stuff_pseudo_classes": [0, 1, 3]})
    )
    assert ClassSpace.from_summary(tmp_path / "summary.json") == SPACE


def test_frame_targets_of_a_hand_made_label() -> None:
    semantic = np.zeros((4, 6), dtype=np.int32)  # stuff 0 → semantic target 1
    instance = np.zeros((4, 6), dtype=np.int32)
    semantic[0:2, 0:2], instance[0:2, 0:2] = 5, 3  # thing 0, id 3, 4 px
    semantic[2:4, 3:6], instance[2:4, 3:6] = 2, 8  # thing 1, id 8, 6 px
    semantic[3, 0] = 2  # thing pixel without an id (crowd): no instance, thing channel
    semantic[0, 5] = 4  # not in the space: void
    semantic[1, 5], instance[1, 5] = 5, 11  # a 1-pixel instance, below min_area
    targets = frame_targets(PanopticFrame(semantic, instance), SPACE, (4, 6), min_area=2)
    assert targets.track_ids.tolist() == [3, 8]
    assert targets.classes.tolist() == [0, 1]
    assert targets.boxes.tolist() == [[0, 0, 2, 2], [3, 2, 6, 4]]
    assert targets.masks.sum(dim=(1, 2)).tolist() == [4, 6]
    expected = torch.ones((4, 6), dtype=torch.int64)
    expected[0:2, 0:2] = 0
    expected[2:4, 3:6] = 0
    expected[3, 0] = 0
    expected[1, 5] = 0
    expected[0, 5] = IGNORE
    assert torch.equal(targets.semantic, expected)
    flipped = flip_targets(targets)
    assert flipped.boxes.tolist() == [[4, 0, 6, 2], [0, 2, 3, 4]]
    assert torch.equal(flipped.semantic, expected.flip(-1))


def test_frame_targets_resize_with_nearest_neighbours() -> None:
    semantic = np.zeros((4, 8), dtype=np.int32)
    instance = np.zeros((4, 8), dtype=np.int32)
    semantic[:, 4:], instance[:, 4:] = 5, 1
    targets = frame_targets(PanopticFrame(semantic, instance), SPACE, (2, 4), min_area=1)
    assert targets.boxes.tolist() == [[2, 0, 4, 2]]
    assert targets.semantic.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


def brute_force_holds_square(mask: np.ndarray, width: int) -> bool:
    """Whether some width × width window of ``mask`` is all True (every window tried)."""
    height, cols = mask.shape
    return any(
        mask[y : y + width, x : x + width].all()
        for y in range(height - width + 1)
        for x in range(cols - width + 1)
    )


def test_holds_square_equals_brute_force() -> None:
    rng = np.random.default_rng(5)
    for trial in range(60):
        mask = rng.random((7, 9)) < (0.5 + 0.4 * (trial % 2))
        for width in (2, 3, 4):
            expected = brute_force_holds_square(mask, width)
            assert holds_square(torch.from_numpy(mask), width) is expected
    line = torch.zeros((5, 5), dtype=torch.bool)
    line[1:5, 2] = True
    assert holds_square(line, 1) and not holds_square(line, 2)
    assert not holds_square(torch.zeros((5, 5), dtype=torch.bool), 0)
    assert not holds_square(torch.ones((1, 5), dtype=torch.bool), 2)  # mask smaller than width


def test_frame_targets_drop_instances_thinner_than_min_width() -> None:
    semantic = np.zeros((6, 8), dtype=np.int32)
    instance = np.zeros((6, 8), dtype=np.int32)
    semantic[0:6, 0], instance[0:6, 0] = 5, 1  # a 6-px vertical sliver, one pixel wide
    semantic[1:3, 2:4], instance[1:3, 2:4] = 5, 2  # a 2×2 square, 4 px
    for step in range(5):  # a diagonal staircase, two pixels per row: no 2×2 square
        semantic[step, 4 + step % 3 : 6 + step % 3] = 2
    instance[semantic == 2] = 3
    label = PanopticFrame(semantic, instance)
    assert frame_targets(label, SPACE, (6, 8), min_area=1).track_ids.tolist() == [1, 2, 3]
    assert frame_targets(label, SPACE, (6, 8), 1, min_width=1).track_ids.tolist() == [1, 2, 3]
    thick = frame_targets(label, SPACE, (6, 8), min_area=1, min_width=2)
    assert thick.track_ids.tolist() == [2]
    # the dropped instances' pixels keep their semantic target: the thing channel (0)
    assert thick.semantic[0:6, 0].tolist() == [0] * 6
    assert frame_targets(label, SPACE, (6, 8), min_area=1, min_width=3).track_ids.tolist() == []


def one_moving_object(t: int) -> PanopticFrame:
    """A 8×6 object of pseudo-class 5, track 1, moving 10 px right per frame."""
    semantic = np.zeros((32, 64), dtype=np.int32)
    instance = np.zeros((32, 64), dtype=np.int32)
    column = 4 + 10 * t
    semantic[8:16, column : column + 6] = 5
    instance[8:16, column : column + 6] = 1
    return PanopticFrame(semantic, instance)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root, labels = tmp_path_factory.mktemp("synthetic"), tmp_path_factory.mktemp("labels")
    labelled_synthetic(root, labels, videos=2, seed=3, paint=one_moving_object)
    return root, labels


def test_clips_hold_consecutive_frames_and_their_tracks(labelled: tuple[Path, Path]) -> None:
    clips = training_clips(*labelled, size=None, min_area=1)
    assert clips.num_windows == 4  # two videos of three frames, clips of two
    assert len(clips) == 2  # an epoch: one clip per video
    clip = clips.clip(1, flip=False)  # video 0, frames 1 and 2
    assert clip.images.shape == (2, 3, 32, 64)
    assert [t.boxes.tolist() for t in clip.targets] == [[[14, 8, 20, 16]], [[24, 8, 30, 16]]]
    assert [t.track_ids.tolist() for t in clip.targets] == [[1], [1]]
    flipped = clips.clip(1, flip=True)
    assert torch.equal(flipped.images, clip.images.flip(-1))
    assert flipped.targets[0].boxes.tolist() == [[44, 8, 50, 16]]
    small = training_clips(*labelled, size=(16, 32), min_area=1).clip(1, flip=False)
    assert small.images.shape == (2, 3, 16, 32)
    assert small.targets[0].boxes.tolist() == [[7, 4, 10, 8]]


def test_clip_order_is_a_permutation_per_epoch_shared_out_over_ranks(
    labelled: tuple[Path, Path],
) -> None:
    # Windows 0, 1 are video 0 (starts 0, 1), windows 2, 3 video 1: every epoch (two clips)
    # takes one window of each video.
    clips = training_clips(*labelled, size=None, min_area=1)
    one_rank = [i for step in range(4) for i in clips.clip_indices(step, 0, 1, 2, seed=7)]
    for epoch in range(4):
        assert sorted(i // 2 for i in one_rank[2 * epoch : 2 * epoch + 2]) == [0, 1]
    assert one_rank == [i for step in range(4) for i in clips.clip_indices(step, 0, 1, 2, 7)]
    two_ranks = [
        i for step in range(2) for rank in range(2) for i in clips.clip_indices(step, rank, 2, 2, 7)
    ]
    assert two_ranks == one_rank
    assert one_rank != [i for step in range(4) for i in clips.clip_indices(step, 0, 1, 2, seed=8)]


def test_a_mismatched_pseudo_label_names_the_file(
    labelled: tuple[Path, Path], tmp_path: Path
) -> None:
    root, labels = labelled
    broken = tmp_path / "labels"
    for path in labels.rglob("*.png"):
        target = broken / path.relative_to(labels)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    victim = sorted(broken.rglob("*.png"))[0]
    write_step_png(victim, PanopticFrame.from_arrays(np.zeros((4, 4)), np.zeros((4, 4))))
    clips = training_clips(root, broken, size=None, min_area=1)
    with pytest.raises(InputError, match=victim.name):
        clips.clip(0, flip=False)


def test_an_epoch_is_one_clip_per_video_and_sets_the_steps(labelled: tuple[Path, Path]) -> None:
    # CUPS / the paper: an epoch is one pass over the training videos (2975 Cityscapes
    # snippets), so steps = epochs * videos / clips per step, not epochs * all windows / batch.
    clips = training_clips(*labelled, size=None, min_area=1)
    config = load_training_config("paper")  # 8 epochs, 4 clips per GPU
    assert config.loop(len(clips), world_size=1).steps == 8 * 2 // 4
    # Over many epochs every window of a video is drawn (the start is random, not fixed).
    drawn = {i for step in range(40) for i in clips.clip_indices(step, 0, 1, 2, seed=1)}
    assert drawn == {0, 1, 2, 3}


def test_a_crop_cuts_the_same_region_of_every_frame_and_label(labelled: tuple[Path, Path]) -> None:
    # The left half of the upper half (rows 0..16, columns 0..32), resized back to 32 × 64:
    # the object (rows 8..16, columns 14..20 in frame 1, 24..30 in frame 2) doubles.
    clips = training_clips(*labelled, size=None, min_area=1)
    whole = clips.clip(1, flip=False)
    crop = clips.clip(1, flip=False, crop=CropBox(0.0, 0.0, 0.5, 0.5))
    assert [t.boxes.tolist() for t in crop.targets] == [[[28, 16, 40, 32]], [[48, 16, 60, 32]]]
    assert [t.track_ids.tolist() for t in crop.targets] == [[1], [1]]
    dataset, frames = clips.dataset, clips.sequences[0].frames[1:3]
    for t, frame in enumerate(frames):
        region = load_image(dataset, "train", frame)[:, :16, :32]
        assert torch.equal(crop.images[t], resize_image(region, (32, 64)))
    full = clips.clip(1, flip=False, crop=CropBox(0.0, 0.0, 1.0, 1.0))
    assert torch.equal(full.images, whole.images)


def test_random_resized_crop_keeps_the_aspect_ratio_and_the_area_range() -> None:
    # kornia's RandomResizedCrop with CUPS' ratio H/W: a sqrt(s)H x sqrt(s)W region inside the
    # frame, s uniform in (0.7, 1.0).
    generator = torch.Generator().manual_seed(0)
    boxes = [random_resized_crop((0.7, 1.0), generator) for _ in range(200)]
    areas = [box.height * box.width for box in boxes]
    assert all(box.height == box.width for box in boxes)
    assert 0.7 <= min(areas) < 0.72 and 0.98 < max(areas) <= 1.0
    assert all(box.top >= 0 and box.top + box.height <= 1.0 + 1e-9 for box in boxes)
    assert all(box.left >= 0 and box.left + box.width <= 1.0 + 1e-9 for box in boxes)
    assert max(box.top for box in boxes) > 0.1 and max(box.left for box in boxes) > 0.1


def test_resolution_jitter_resizes_clips_and_drops_tiny_instances() -> None:
    # CUPS' ResolutionJitter: images bilinear, labels nearest, instances of <= 4 pixels dropped.
    masks = torch.zeros(2, 8, 16, dtype=torch.bool)
    masks[0, 0:4, 0:8] = True  # 32 px -> 8 px at half size
    masks[1, 6:8, 14:16] = True  # 4 px -> 1 px: dropped
    semantic = torch.ones(8, 16, dtype=torch.int64)
    semantic[masks.any(0)] = 0
    target = FrameTargets(
        boxes_from_masks(masks), torch.tensor([0, 1]), torch.tensor([3, 7]), masks, semantic
    )
    images = torch.arange(2 * 3 * 8 * 16, dtype=torch.float32).reshape(2, 3, 8, 16)
    out = resize_clip(Clip(images, [target, target]), (4, 8), min_area=2)
    assert out.images.shape == (2, 3, 4, 8)
    torch.testing.assert_close(out.images, torch.nn.functional.avg_pool2d(images, 2))
    for frame in out.targets:
        assert frame.track_ids.tolist() == [3] and frame.boxes.tolist() == [[0, 0, 4, 2]]
        assert frame.semantic.shape == (4, 8) and int(frame.semantic[0, 0]) == 0


def test_resolution_jitter_keeps_frames_without_pseudo_instances() -> None:
    # A frame without pseudo-instances (the README's default synthetic run met one at step 0).
    empty = FrameTargets.empty(8, 16)
    images = torch.rand(2, 3, 8, 16, generator=torch.Generator().manual_seed(0))
    out = resize_clip(Clip(images, [empty, empty]), (4, 8), min_area=2)
    for frame in out.targets:
        assert frame.masks.shape == (0, 4, 8) and frame.boxes.shape == (0, 4)
        assert frame.semantic.shape == (4, 8)


def test_jitter_sizes_are_the_input_size_times_a_scale_in_multiples_of_32() -> None:
    config = load_training_config("paper")
    size = (config.model.input_height, config.model.input_width)
    generator = torch.Generator().manual_seed(0)
    drawn = {jitter_size(size, config.data.jitter_scales, generator) for _ in range(300)}
    assert drawn == {(32 * k, 64 * k) for k in range(12, 23)}  # 384x768 ... 704x1408


def test_photometric_augmentation_is_one_draw_for_the_whole_clip() -> None:
    generator = torch.Generator().manual_seed(0)
    frame = torch.rand(1, 3, 16, 16, generator=generator) * 255
    clip = torch.cat([frame, frame])
    outputs = [photometric_augment(clip, torch.Generator().manual_seed(s)) for s in range(20)]
    for out in outputs:
        assert out.shape == clip.shape and torch.equal(out[0], out[1])
        assert float(out.min()) >= 0.0 and float(out.max()) <= 255.0 + 1e-3
    assert any(torch.equal(o[:, 0], o[:, 1]) and torch.equal(o[:, 1], o[:, 2]) for o in outputs)
    assert not all(torch.equal(outputs[0], o) for o in outputs[1:])


def test_hue_shift_equals_colorsys() -> None:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(1, 3, 5, 7, generator=generator)
    for shift in (-0.1, 0.03, 0.1):
        ours = _shift_hue(pixels, shift)
        for y in range(5):
            for x in range(7):
                h, s, v = colorsys.rgb_to_hsv(*pixels[0, :, y, x].tolist())
                expected = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
                assert ours[0, :, y, x].tolist() == pytest.approx(expected, abs=1e-5)
