"""A synthetic split with the demo's noisy predictions, for evaluate/rescore/executor tests."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vpsbench.datasets import open_dataset
from vpsbench.datasets.synthetic import prepare_synthetic
from vpsbench.demo import write_demo_predictions


def demo_split(
    folder: Path, videos: int, frames: int, height: int, width: int
) -> tuple[Path, Path]:
    """(dataset root, prediction folder) of a generated synthetic val split."""
    root = folder / "data"
    prepare_synthetic(
        root,
        videos=videos,
        frames=frames,
        height=height,
        width=width,
        seed=0,
        splits=["val"],
        workers=1,
    )
    predictions = write_demo_predictions(open_dataset("synthetic", root), "val", folder / "pred")
    return root, predictions


def without_timing(path: Path) -> dict[str, Any]:
    """A results JSON without its run time (the one field that differs between runs)."""
    document: dict[str, Any] = json.loads(path.read_text())
    del document["run"]["seconds"]
    return document


def assert_close(expected: Any, actual: Any, tolerance: float, where: str = "") -> None:
    """Recursive equality of JSON values, floats to ``tolerance`` (absolute)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), where
        for key in expected:
            assert_close(expected[key], actual[key], tolerance, f"{where}/{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), where
        for index, (a, b) in enumerate(zip(expected, actual, strict=True)):
            assert_close(a, b, tolerance, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(actual, str):
        both_nan = math.isnan(expected) and math.isnan(actual)
        assert both_nan or abs(expected - actual) <= tolerance, (where, expected, actual)
    else:
        assert expected == actual, (where, expected, actual)
