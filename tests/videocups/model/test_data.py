"""Training clips from pseudo-labels: class spaces, targets, deterministic clip order, flips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from methods.videocups.model.data import ClassSpace, flip_targets, frame_targets, holds_square
from methods.videocups.model.targets import IGNORE
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
    assert len(clips) == 4  # two videos of three frames, clips of two
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
    clips = training_clips(*labelled, size=None, min_area=1)
    one_rank = [i for step in range(4) for i in clips.clip_indices(step, 0, 1, 2, seed=7)]
    assert sorted(one_rank[:4]) == [0, 1, 2, 3] and sorted(one_rank[4:]) == [0, 1, 2, 3]
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
