"""The rendered labels and cues agree with the scene geometry and with the images themselves."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest

from vpsbench.synthetic import RenderedFrame, SyntheticConfig, render_video
from vpsbench.synthetic.geometry import project
from vpsbench.synthetic.procedural import generate_scene
from vpsbench.synthetic.render import CROWD_MAX_PIXELS, SceneTables, scene_tables, trace
from vpsbench.synthetic.scene import Scene, ThingKind

FloatArray = npt.NDArray[np.float64]

SMALL = SyntheticConfig(videos=3, frames=4, height=96, width=192, seed=0)
MOVING_KINDS = {
    ThingKind.DRIVING_VEHICLE,
    ThingKind.WALKING_PEDESTRIAN,
    ThingKind.CROSSING_PEDESTRIAN,
    ThingKind.RIDER,
    ThingKind.BICYCLE,
}


@cache
def _video(config: SyntheticConfig, video: int) -> tuple[RenderedFrame, ...]:
    """All frames of one video (rendered once per test session)."""
    return tuple(render_video(config, "val", video))


@cache
def _scene(config: SyntheticConfig, video: int) -> tuple[Scene, SceneTables]:
    """The scene of one video and its renderer tables."""
    scene = generate_scene(config, "val", video)
    return scene, scene_tables(scene)


def _bilinear(image: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
    """Sample ``image`` (H, W, C) at real coordinates with bilinear weights (inside only)."""
    height, width = image.shape[:2]
    x0 = np.clip(np.floor(x).astype(np.int64), 0, width - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, height - 2)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - wx) + image[y0, x0 + 1] * wx
    bottom = image[y0 + 1, x0] * (1 - wx) + image[y0 + 1, x0 + 1] * wx
    result: FloatArray = top * (1 - wy) + bottom * wy
    return result


def _grid(shape: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
    """Pixel-centre column and row coordinates of an image."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return cols, rows


def test_warping_the_next_frame_with_the_true_flow_reproduces_the_frame() -> None:
    checked = 0
    for video in range(SMALL.videos):
        frames = _video(SMALL, video)
        for current, following in itertools.pairwise(frames):
            assert current.flow_forward is not None and following.flow_backward is not None
            cols, rows = _grid(current.depth.shape)
            flow = current.flow_forward.astype(np.float64)
            x, y = cols + flow[..., 0], rows + flow[..., 1]
            height, width = current.depth.shape
            inside = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x <= width - 1)
            inside &= (y >= 0) & (y <= height - 1)
            x, y = np.where(inside, x, 0.0), np.where(inside, y, 0.0)
            # Occlusion: the backward flow at the target must lead back (forward–backward check).
            back = _bilinear(following.flow_backward.astype(np.float64), x, y)
            visible = inside & (np.linalg.norm(flow + back, axis=-1) < 0.25)
            warped = _bilinear(following.image.astype(np.float64), x, y)
            error = np.abs(warped - current.image).mean(axis=-1)
            still = np.abs(following.image.astype(np.float64) - current.image).mean(axis=-1)
            moving_pixels = visible & (np.linalg.norm(flow, axis=-1) > 1.0)
            assert visible.mean() > 0.5
            assert np.median(error[visible]) < 3.0  # sensor noise alone gives ~1.9
            if moving_pixels.sum() > 500:  # far better than assuming no motion at all
                assert error[moving_pixels].mean() < 0.4 * still[moving_pixels].mean()
                checked += 1
    assert checked >= 3


def test_flow_on_static_pixels_is_the_flow_of_the_camera_motion() -> None:
    for video in range(SMALL.videos):
        frames = _video(SMALL, video)
        for index, frame in enumerate(frames):
            finite = np.isfinite(frame.depth)
            assert (frame.depth[finite] > 0).all()
            assert ((frame.semantic == 10) == ~finite).all()  # sky exactly where nothing is hit
            for flow, other in ((frame.flow_forward, index + 1), (frame.flow_backward, index - 1)):
                if flow is None:
                    continue
                static = ~frame.moving & finite
                cols, rows = _grid(frame.depth.shape)
                k = frame.intrinsics
                rays = np.stack(
                    [(cols - k[0, 2]) / k[0, 0], (rows - k[1, 2]) / k[1, 1], np.ones_like(cols)], -1
                )
                points = rays[static] * frame.depth[static].astype(np.float64)[:, None]
                relative = np.linalg.inv(frames[other].camera_to_world) @ frame.camera_to_world
                moved = points @ relative[:3, :3].T + relative[:3, 3]
                expected = project(k, moved) - np.stack([cols[static], rows[static]], -1)
                assert np.abs(flow[static] - expected).max() < 1e-3


def test_first_and_last_frames_lack_the_flow_that_leaves_the_video() -> None:
    frames = _video(SMALL, 0)
    assert frames[0].flow_backward is None and frames[-1].flow_forward is None
    assert all(frame.flow_forward is not None for frame in frames[:-1])
    assert all(frame.flow_backward is not None for frame in frames[1:])
    frame = frames[1]
    assert frame.image.dtype == np.uint8 and frame.image.shape == (96, 192, 3)
    assert frame.semantic.dtype == np.int32 and frame.instance.dtype == np.int32
    assert frame.depth.dtype == np.float32 and frame.moving.dtype == np.bool_
    assert frame.flow_forward is not None and frame.flow_forward.dtype == np.float32
    assert frame.intrinsics.shape == (3, 3) and frame.camera_to_world.shape == (4, 4)


def _thing_map(scene: Scene, tables: SceneTables, frame: int) -> npt.NDArray[np.int64]:
    """Index of the thing seen at each pixel (−1 for stuff and sky), from the z-buffer."""
    primitive = trace(scene, tables, frame).primitive
    owner = np.append(tables.thing, -1)  # the sky (−1) indexes the appended −1
    return owner[primitive]


def test_motion_mask_is_exactly_the_independently_moving_things() -> None:
    seen_kinds: set[ThingKind] = set()
    for video in range(SMALL.videos):
        scene, tables = _scene(SMALL, video)
        frames = _video(SMALL, video)
        for index, frame in enumerate(frames):
            things = _thing_map(scene, tables, index)
            expected = np.zeros_like(frame.moving)
            for thing_index in np.unique(things[things >= 0]):
                thing = scene.things[thing_index]
                pixels = things == thing_index
                seen_kinds.add(thing.kind)
                if thing.kind in MOVING_KINDS:
                    assert frame.moving[pixels].all(), thing
                    expected |= pixels
                else:
                    assert not frame.moving[pixels].any(), thing
            assert (frame.moving == expected).all()
    assert {
        ThingKind.PARKED_CAR,
        ThingKind.WALKING_PEDESTRIAN,
        ThingKind.DRIVING_VEHICLE,
    } <= seen_kinds


def test_walking_pedestrian_moves_non_rigidly() -> None:
    config = SyntheticConfig(videos=1, frames=3, height=192, width=384)
    scene, tables = _scene(config, 0)
    frames = _video(config, 0)
    walkers = [thing for thing in scene.things if thing.kind == ThingKind.WALKING_PEDESTRIAN]
    primitive = trace(scene, tables, 1).primitive
    walker = max(walkers, key=lambda thing: np.isin(primitive, thing.primitives).sum())
    parts = {scene.primitives[index].part.name: index for index in walker.primitives}
    torso, shins = parts["torso"], [parts["left_shin"], parts["right_shin"]]
    frame = frames[1]
    assert frame.flow_forward is not None
    cols, rows = _grid(frame.depth.shape)
    k = frame.intrinsics
    rays = np.stack(
        [(cols - k[0, 2]) / k[0, 0], (rows - k[1, 2]) / k[1, 1], np.ones_like(cols)], -1
    )

    def rigid_flow(mask: npt.NDArray[np.bool_]) -> FloatArray:
        """Flow of the pixels in ``mask`` if they moved rigidly with the torso."""
        points = rays[mask] * frame.depth[mask].astype(np.float64)[:, None]
        world = points @ frame.camera_to_world[:3, :3].T + frame.camera_to_world[:3, 3]
        rotation, centre = scene.rotations[1, torso], scene.translations[1, torso]
        local = (world - centre) @ rotation
        moved = local @ scene.rotations[2, torso].T + scene.translations[2, torso]
        camera = np.linalg.inv(frames[2].camera_to_world)
        in_camera = moved @ camera[:3, :3].T + camera[:3, 3]
        return project(k, in_camera) - np.stack([cols[mask], rows[mask]], -1)

    on_torso = primitive == torso
    on_shins = np.isin(primitive, shins)
    assert on_torso.sum() >= 10 and on_shins.sum() >= 4
    torso_error = np.linalg.norm(frame.flow_forward[on_torso] - rigid_flow(on_torso), axis=-1)
    shin_error = np.linalg.norm(frame.flow_forward[on_shins] - rigid_flow(on_shins), axis=-1)
    assert torso_error.max() < 1e-3
    assert np.median(shin_error) > 0.3
    assert frame.moving[on_torso | on_shins].all()


def test_track_ids_persist_and_tiny_things_become_crowd() -> None:
    crowd_pixels = 0
    for video in range(SMALL.videos):
        scene, tables = _scene(SMALL, video)
        class_of_id: dict[int, int] = {}
        for index, frame in enumerate(_video(SMALL, video)):
            things = _thing_map(scene, tables, index)
            for thing_index in np.unique(things[things >= 0]):
                thing = scene.things[thing_index]
                pixels = things == thing_index
                assert (frame.semantic[pixels] == thing.semantic).all()
                ids = set(np.unique(frame.instance[pixels]).tolist())
                if pixels.sum() < CROWD_MAX_PIXELS:
                    assert ids == {0}
                    crowd_pixels += int(pixels.sum())
                else:
                    assert ids == {thing.track_id}
            for track in np.unique(frame.instance[frame.instance > 0]).tolist():
                classes = set(np.unique(frame.semantic[frame.instance == track]).tolist())
                assert len(classes) == 1
                assert class_of_id.setdefault(track, classes.pop()) == class_of_id[track]
            stuff = things < 0
            assert (frame.instance[stuff] == 0).all() and (frame.semantic[stuff] <= 10).all()
        track_ids = [thing.track_id for thing in scene.things]
        assert len(set(track_ids)) == len(track_ids)
    assert crowd_pixels > 0


@pytest.mark.parametrize("split", ["train", "val"])
def test_streets_contain_the_expected_classes(split: str) -> None:
    seen: set[int] = set()
    config = SyntheticConfig(videos=3, frames=1, height=96, width=192)
    for video in range(config.videos):
        (frame,) = render_video(config, split, video)
        seen |= set(np.unique(frame.semantic).tolist())
    assert {0, 1, 2, 5, 8, 10, 11, 13} <= seen
    assert seen <= set(range(19)) - {16, 17}


def test_one_frame_video_has_no_flow_and_nothing_moving() -> None:
    (frame,) = render_video(SyntheticConfig(videos=1, frames=1, height=32, width=64), "val", 0)
    assert frame.flow_forward is None and frame.flow_backward is None
    assert not frame.moving.any()
