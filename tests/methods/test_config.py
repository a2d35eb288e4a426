"""Method configs: defaults, YAML files and --set overrides, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.methods.base import MethodConfig, build_config, config_fields, read_config_file


@dataclass(frozen=True)
class ExampleConfig(MethodConfig):
    alpha: float = field(default=0.15, metadata={"help": "motion threshold"})
    radius: int = 8
    weights: Path | None = None
    use_crf: bool = True
    scales: tuple[int, ...] = (1, 2)
    name: str = "x"


def test_defaults_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alpha: 0.3\nradius: 4\nscales: [1, 3]\n")
    config = build_config(ExampleConfig, read_config_file(path), ["radius=2", "use_crf=false"])
    assert config == ExampleConfig(alpha=0.3, radius=2, use_crf=False, scales=(1, 3))
    with_weights = build_config(ExampleConfig, {}, ["weights=/w.pth", "scales=4,5"])
    assert with_weights.weights == Path("/w.pth") and with_weights.scales == (4, 5)
    assert build_config(ExampleConfig, {}, ["weights=none"]).weights is None
    assert build_config(ExampleConfig, {}, ["scales="]).scales == ()


def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(VpsbenchError, match="no setting 'beta'"):
        build_config(ExampleConfig, {"beta": 1})
    with pytest.raises(VpsbenchError, match="radius"):
        build_config(ExampleConfig, {}, ["radius=eight"])
    with pytest.raises(VpsbenchError, match="scales"):
        build_config(ExampleConfig, {}, ["scales=4,,5"])
    with pytest.raises(VpsbenchError, match="KEY=VALUE"):
        build_config(ExampleConfig, {}, ["radius"])
    with pytest.raises(VpsbenchError, match="bool"):
        build_config(ExampleConfig, {}, ["use_crf=maybe"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("alpha: [1,\n")
    with pytest.raises(InputError, match="invalid YAML"):
        read_config_file(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="mapping"):
        read_config_file(listing)


def test_fields_are_described() -> None:
    rows = {
        name: (kind, default, help_text)
        for name, kind, default, help_text in config_fields(ExampleConfig)
    }
    assert rows["alpha"] == ("float", 0.15, "motion threshold")
    assert rows["radius"][1] == 8
