"""Training configs: bundled files load, overrides apply, bad keys and values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from vpsbench_methods.videocups.model.config import load_training_config

from vpsbench.errors import VpsbenchError


@pytest.mark.parametrize("name", ["small", "paper"])
def test_bundled_configs_load_and_name_the_paper_values(name: str) -> None:
    config = load_training_config(name)
    assert config.model.architecture == name
    assert config.loss.drop_loss
    assert config.data.clip_length == 2
    assert config.loss.cascade_foreground_ious == (0.5, 0.6, 0.7)
    if name == "paper":  # the paper's recipe (Sec. 4): tau_IoU 0.5, self-enhanced copy-paste
        assert config.loss.drop_loss_iou == 0.5
        assert config.augment.copy_paste == "self-enhanced"
    else:  # the synthetic deviations of docs/fidelity.md: CutLER's tau, pseudo-label pastes
        assert config.loss.drop_loss_iou == 0.01
        assert config.augment.copy_paste == "plain"
        assert config.model.score_threshold == 0.05


def test_paper_config_trains_eight_epochs_of_its_clips() -> None:
    config = load_training_config("paper")
    assert config.data.epochs == 8
    # 1000 clips, 4 clips per GPU on 2 GPUs: 8 * 1000 / 8 = 1000 steps.
    assert config.loop(1000, world_size=2).steps == 1000
    assert config.loop(1000, world_size=1).steps == 2000


def test_overrides_apply_per_section_and_explicit_steps_win() -> None:
    config = load_training_config(
        "small", ["loss.drop_loss=false", "augment.copy_paste=plain", "optim.steps=7"]
    )
    assert not config.loss.drop_loss and config.augment.copy_paste == "plain"
    assert config.loop(10_000).steps == 7
    assert config.as_dict()["loss"]["drop_loss"] is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.nope=1", "section 'loss' has no setting 'nope'"),
        ("nope.x=1", "SECTION.KEY=VALUE"),
        ("augment.copy_paste=sometimes", "augment.copy_paste must be one of"),
        ("model.input_height=100", "multiples of 32"),
        ("optim.schedule=wobbly", "schedule"),
        ("model.anchor_sizes=8", "five positive sizes"),
        ("data.min_instance_width=-1", "must be >= 0"),
    ],
)
def test_bad_overrides_are_refused(override: str, message: str) -> None:
    with pytest.raises(VpsbenchError, match=message):
        load_training_config("small", [override])


def test_a_yaml_path_works_and_unknown_sections_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("model:\n  architecture: small\n  embed_dim: 8\noptim:\n  steps: 3\n")
    config = load_training_config(str(good))
    assert config.model.embed_dim == 8 and config.loop(1).steps == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle:\n  embed_dim: 8\n")
    with pytest.raises(VpsbenchError, match="unknown sections"):
        load_training_config(str(bad))
    with pytest.raises(VpsbenchError, match="no such file"):
        load_training_config(str(tmp_path / "missing.yaml"))
