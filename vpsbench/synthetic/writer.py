"""Write synthetic videos to disk in the KITTI-STEP layout plus cues, in parallel and resumably.

Each video is rendered and written by one process (a pool of ``workers``); every file is written
atomically and depends only on (config, split, video), so the bytes are the same for any number of
workers. A video's ``camera.json`` is written after all its frames: a video that has one (for the
same config) is complete and is skipped when ``write_dataset`` runs again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError
from vpsbench.executors import start_pool_worker
from vpsbench.formats.atomic import atomic_write_text
from vpsbench.formats.png import write_png
from vpsbench.formats.step import write_step_png
from vpsbench.synthetic.config import FORMAT_VERSION, FPS, SyntheticConfig, split_code
from vpsbench.synthetic.cues import camera_record, write_cues
from vpsbench.synthetic.geometry import CONVENTION
from vpsbench.synthetic.layout import (
    camera_path,
    cues_path,
    image_path,
    manifest_path,
    panoptic_path,
)
from vpsbench.synthetic.render import render_video
from vpsbench.video import PanopticFrame

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[str, int, int], None]


def _source(config: SyntheticConfig, split: str, video: int) -> dict[str, Any]:
    """What a video was generated from, stored in its camera file to validate a resume."""
    return {"config": asdict(config), "split": split, "video": video}


def _is_complete(root: Path, config: SyntheticConfig, split: str, video: int) -> bool:
    """Whether the video's camera file exists and was written for this very config."""
    path = camera_path(root, split, video)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and record.get("source") == _source(config, split, video)


def write_video(root: Path, config: SyntheticConfig, split: str, video: int) -> None:
    """Render one video and write its images, panoptic maps, cues and (last) camera file."""
    poses: list[FloatArray] = []
    intrinsics: FloatArray | None = None
    for index, frame in enumerate(render_video(config, split, video)):
        write_png(image_path(root, split, video, index), frame.image)
        write_step_png(
            panoptic_path(root, split, video, index), PanopticFrame(frame.semantic, frame.instance)
        )
        write_cues(
            cues_path(root, split, video, index),
            frame.depth,
            frame.flow_forward,
            frame.flow_backward,
            frame.moving,
        )
        poses.append(frame.camera_to_world)
        intrinsics = frame.intrinsics
    assert intrinsics is not None
    record = camera_record(intrinsics, poses, FPS, CONVENTION)
    record["source"] = _source(config, split, video)
    atomic_write_text(camera_path(root, split, video), _json_lines(record))


def _json_lines(record: dict[str, Any]) -> str:
    """A JSON object with one top-level key per line (compact values), for readable diffs."""
    lines = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in record.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _write_video_job(root: str, config: SyntheticConfig, split: str, video: int) -> tuple[str, int]:
    """Pool entry point: write one video and say which."""
    write_video(Path(root), config, split, video)
    return split, video


def _manifest_text(config: SyntheticConfig) -> str:
    """The text of ``synthetic.json``: the config's fields, format version, fps, conventions."""
    record = {
        **asdict(config),
        "format_version": FORMAT_VERSION,
        "fps": FPS,
        "convention": CONVENTION,
    }
    return json.dumps(record, indent=1) + "\n"


def _check_manifest(root: Path, config: SyntheticConfig) -> None:
    """Refuse to mix datasets: an existing ``synthetic.json`` must hold the same config."""
    path = manifest_path(root)
    if not path.exists():
        return
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable dataset manifest ({exc})") from None
    wanted = asdict(config)
    existing = {key: record.get(key) for key in wanted} if isinstance(record, dict) else None
    if existing != wanted:
        raise InputError(
            path,
            f"holds a dataset generated with {existing}, not {asdict(config)}; use another root",
        )


def write_dataset(
    root: Path,
    config: SyntheticConfig,
    splits: Sequence[str] = ("val",),
    workers: int = 1,
    progress: Progress | None = None,
) -> None:
    """Generate and write every video of ``splits`` under ``root``; finished videos are skipped.

    ``progress(split, videos_done, videos_total)`` is called once per video of each split as it
    completes (skipped videos first). ``synthetic.json`` is written when everything is done.
    """
    root = Path(root)
    for split in splits:
        split_code(split)
    _check_manifest(root, config)
    done = dict.fromkeys(splits, 0)
    pending: list[tuple[str, int]] = []
    for split in splits:
        for video in range(config.videos):
            if _is_complete(root, config, split, video):
                done[split] += 1
                if progress is not None:
                    progress(split, done[split], config.videos)
            else:
                pending.append((split, video))

    def finished(split: str) -> None:
        done[split] += 1
        if progress is not None:
            progress(split, done[split], config.videos)

    if workers <= 1 or len(pending) <= 1:
        for split, video in pending:
            write_video(root, config, split, video)
            finished(split)
    else:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(pending)), initializer=start_pool_worker
        ) as pool:
            futures = [
                pool.submit(_write_video_job, str(root), config, split, video)
                for split, video in pending
            ]
            for future in as_completed(futures):
                split, _ = future.result()
                finished(split)
    atomic_write_text(manifest_path(root), _manifest_text(config))
