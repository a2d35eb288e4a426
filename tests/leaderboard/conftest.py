"""Shared leaderboard fixtures: a store of real records and the site built from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.leaderboard.fixtures import write_store
from vpsbench.leaderboard.build import build_leaderboard


@dataclass(frozen=True)
class StoreLayout:
    """A store of three records, the predictions of its reproduced one and the data root."""

    store: Path
    pred_root: Path
    data_root: Path


@pytest.fixture(scope="session")
def store_layout(tmp_path_factory: pytest.TempPathFactory) -> StoreLayout:
    store, pred_root, data_root = write_store(tmp_path_factory.mktemp("leaderboard"))
    return StoreLayout(store, pred_root, data_root)


@pytest.fixture(scope="session")
def built_site(store_layout: StoreLayout, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site") / "leaderboard"
    build_leaderboard(store_layout.store, site)
    return site
