"""The SORT baselines' settings: Bewley's SORT as published, no class vote unless asked for."""

from __future__ import annotations

import pytest
from vpsbench_baselines.sort_baselines import SortBaselineConfig

from vpsbench.errors import VpsbenchError
from vpsbench.methods.base import build_config
from vpsbench.tracking.sort import SortConfig


def test_defaults_are_bewleys_sort_without_class_vote() -> None:
    config = build_config(SortBaselineConfig)
    assert config.sort_config == SortConfig(max_age=1, min_hits=3, iou_threshold=0.3)
    assert config.sort_config.association == "bewley"
    assert config.class_vote is False


def test_overrides_reach_sort() -> None:
    config = build_config(
        SortBaselineConfig, overrides=["association=threshold-first", "class_vote=true"]
    )
    assert config.sort_config.association == "threshold-first"
    assert config.class_vote is True


def test_unknown_association_is_refused_when_the_config_is_built() -> None:
    with pytest.raises(VpsbenchError, match="association='hungarian'"):
        build_config(SortBaselineConfig, overrides=["association=hungarian"])
