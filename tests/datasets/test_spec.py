"""Datasets from spec files (TOML/YAML) and from plugins of the entry-point group vpsbench.datasets.

The spec loader is checked against hand-mapped frames and against the KITTI-STEP loader reading
the same files; plugins are found the way Python finds them: a ``*.dist-info`` folder with an
``entry_points.txt`` on ``sys.path``.
"""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_cli
from tests.layouts import write_image, write_kitti_step
from vpsbench.datasets import dataset_class, dataset_names, open_dataset
from vpsbench.datasets.cityscapes_labels import CS19_NAMES
from vpsbench.datasets.kitti_step import KittiStep
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats.divisor_png import write_divisor_png
from vpsbench.formats.step import write_step_png
from vpsbench.video import PanopticFrame

# Native ids in the files: 4 = road, 9 = car (thing), 7 = person (thing), 200 = void.
SEMANTIC = np.array([[4, 4, 9, 9], [7, 7, 9, 200], [4, 7, 7, 200]], dtype=np.int32)
INSTANCE = np.array([[0, 0, 3, 3], [1, 1, 3, 0], [5, 1, 0, 0]], dtype=np.int32)
SPEC = """
name = "my-streets"
description = "hand-made streets"
label_format = "{label_format}"
splits = ["val"]
ignore_ids = [200]
{extra}
[[classes]]
name = "road"
id = 4
[[classes]]
name = "car"
id = 9
thing = true
[[classes]]
name = "person"
id = 7
thing = true

[layout]
labels = "gt/{{split}}/{{sequence}}_{{frame}}.png"
images = "rgb/{{split}}/{{sequence}}/{{frame}}.png"
"""


def write_spec(folder: Path, label_format: str = "step", extra: str = "", name: str = "d") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(SPEC.format(label_format=label_format, extra=extra))
    return path


def write_streets(root: Path, frames: int = 11) -> None:
    """Sequences ``a`` and ``b``; frame t of ``a`` has its car shifted so frames differ."""
    for sequence in ("a", "b"):
        for t in range(frames):
            instance = INSTANCE + (t if sequence == "a" else 0) * (SEMANTIC == 9)
            write_step_png(
                root / "gt" / "val" / f"{sequence}_{t}.png", PanopticFrame(SEMANTIC, instance)
            )
            write_image(root / "rgb" / "val" / sequence / f"{t}.png", SEMANTIC.shape)


def test_spec_maps_native_ids_by_hand(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    write_streets(tmp_path / "data")
    dataset = open_dataset(str(spec), tmp_path / "data")
    assert dataset.name == "my-streets"
    space = dataset.label_space()
    assert space.class_names == ("road", "car", "person")
    assert space.thing_classes == frozenset({1, 2})
    sequences = dataset.sequences("val")
    assert [s.name for s in sequences] == ["a", "b"]
    # natural order: 10 after 9, indices 0..10
    assert [f.name for f in sequences[0].frames] == [str(t) for t in range(11)]
    frame = dataset.load_ground_truth("val", sequences[0].frames[10])
    expected_semantic = np.array([[0, 0, 1, 1], [2, 2, 1, 255], [0, 2, 2, 255]])
    expected_instance = np.array([[0, 0, 13, 13], [1, 1, 13, 0], [0, 1, 0, 0]])
    assert np.array_equal(frame.semantic, expected_semantic)
    assert np.array_equal(frame.instance, expected_instance)
    assert dataset.image_path("val", sequences[1].frames[2]) == (
        tmp_path / "data" / "rgb" / "val" / "b" / "2.png"
    )
    assert dataset.verify("val") == []


def test_spec_root_is_relative_to_the_file(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, extra='root = "data"')
    write_streets(tmp_path / "data", frames=2)
    assert open_dataset(str(spec)).root == (tmp_path / "data").resolve()


def test_spec_of_kitti_step_equals_the_kitti_step_loader(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = {
        seq: [
            PanopticFrame(
                rng.choice([*range(19), 255], size=(6, 8)).astype(np.int32),
                rng.integers(0, 4, size=(6, 8)).astype(np.int32),
            )
            for _ in range(3)
        ]
        for seq in ("0002", "0006")
    }
    write_kitti_step(tmp_path / "kitti", "val", frames)
    classes = "".join(
        f'[[classes]]\nname = "{name}"\nid = {i}\nthing = {str(i in (11, 13)).lower()}\n'
        for i, name in enumerate(CS19_NAMES)
    )
    spec = tmp_path / "kitti.yaml"
    import yaml

    document = {
        "name": "kitti-copy",
        "label_format": "step",
        "splits": ["train", "val"],
        "classes": [
            {"name": name, "id": i, "thing": i in (11, 13)} for i, name in enumerate(CS19_NAMES)
        ],
        "layout": {
            "labels": "panoptic_maps/{split}/{sequence}/{frame}.png",
            "images": "images/{split}/{sequence}/{frame}.png",
        },
    }
    spec.write_text(yaml.safe_dump(document))
    toml_spec = tmp_path / "kitti.toml"
    layout = document["layout"]
    toml_spec.write_text(
        'name = "kitti-copy"\nlabel_format = "step"\nsplits = ["train", "val"]\n'
        f'{classes}[layout]\nlabels = "{layout["labels"]}"\nimages = "{layout["images"]}"\n'
    )
    ours = KittiStep(tmp_path / "kitti")
    for path in (spec, toml_spec):
        described = open_dataset(str(path), tmp_path / "kitti")
        assert described.label_space().class_names == ours.label_space().class_names
        assert described.label_space().thing_classes == ours.label_space().thing_classes
        assert described.sequences("val") == ours.sequences("val")
        for sequence in ours.sequences("val"):
            for ref in sequence.frames:
                a = described.load_ground_truth("val", ref)
                b = ours.load_ground_truth("val", ref)
                assert np.array_equal(a.semantic, b.semantic)
                assert np.array_equal(a.instance, b.instance)


def test_divisor_format(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "divisor16", "divisor = 100")
    path = tmp_path / "gt" / "val" / "s_0.png"
    write_divisor_png(path, PanopticFrame(SEMANTIC, INSTANCE), 100)
    frame = open_dataset(str(spec), tmp_path).load_ground_truth(
        "val", open_dataset(str(spec), tmp_path).sequences("val")[0].frames[0]
    )
    assert np.array_equal(frame.semantic[0], [0, 0, 1, 1])
    assert np.array_equal(frame.instance[0], [0, 0, 3, 3])


def test_unknown_native_id_names_the_file(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    bad = SEMANTIC.copy()
    bad[0, 0] = 5
    path = tmp_path / "gt" / "val" / "s_0.png"
    write_step_png(path, PanopticFrame(bad, INSTANCE))
    dataset = open_dataset(str(spec), tmp_path)
    with pytest.raises(InputError, match=r"s_0\.png: class ids 5 are not in the native"):
        dataset.load_ground_truth("val", dataset.sequences("val")[0].frames[0])
    problems = dataset.verify("val")
    assert any("class ids 5 are not in the spec" in str(p) for p in problems)
    assert any("rgb/val/s/0.png" in str(p) for p in problems)  # the image is missing


def test_pickled_spec_dataset_reads_the_same(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    write_streets(tmp_path, frames=2)
    dataset = open_dataset(str(spec), tmp_path)
    copy = pickle.loads(pickle.dumps(dataset))
    ref = dataset.sequences("val")[0].frames[1]
    assert copy.name == dataset.name
    assert np.array_equal(
        copy.load_ground_truth("val", ref).instance, dataset.load_ground_truth("val", ref).instance
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('label_format = "step"', 'label_format = "jpeg"'), r"label_format: 'jpeg'; one of step"),
        (('name = "my-streets"', 'name = "My Streets"'), r"name: 'My Streets' is not a slug"),
        (('{frame}.png"\nimages', '.png"\nimages'), r"layout.labels: the template needs \{frame\}"),
        (("id = 7", "id = 9"), r"classes: id 9 is given to two classes"),
        (("ignore_ids = [200]", "ignore_ids = [4]"), r"ignore_ids: id 4 is also a class id"),
        (('splits = ["val"]', "splits = []"), r"splits: expected a list"),
        (("thing = true\n[[classes]]", 'thing = "yes"\n[[classes]]'), r"classes\[1\].thing"),
        (('description = "hand-made streets"', "colour = 3"), r"colour: unknown key"),
        (("{sequence}_", "{seq}_"), r"layout.labels: unknown field \{seq\}"),
        (("[layout]", "x = [\n[layout]"), r"invalid TOML"),
    ],
)
def test_bad_spec_is_one_line_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    spec = write_spec(tmp_path)
    text = spec.read_text()
    assert change[0] in text
    spec.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(VpsbenchError, match=message):
        dataset_class(str(spec))
    code, _, err = run_cli(["datasets", "info", str(spec)], capsys)
    assert code == 2
    assert err.startswith(f"error: {spec}: ")
    assert len(err.strip().splitlines()) == 1


def test_spec_everywhere_a_dataset_name_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path)
    data = tmp_path / "data"
    write_streets(data, frames=3)
    code, out, _ = run_cli(["datasets", "info", str(spec)], capsys)
    assert code == 0
    assert "my-streets" in out and "person" in out and "gt/{split}/{sequence}_{frame}.png" in out
    code, out, _ = run_cli(["datasets", "verify", str(spec), "--root", str(data)], capsys)
    assert code == 0, out
    # predictions = ground truth in native class ids relabelled to pseudo ids 10, 11, 12
    pred = tmp_path / "pred"
    dataset = open_dataset(str(spec), data)
    for sequence in dataset.sequences("val"):
        for ref in sequence.frames:
            truth = dataset.load_ground_truth("val", ref)
            semantic = np.where(truth.semantic == 255, 255, truth.semantic + 10)
            write_step_png(
                pred / ref.sequence / f"{ref.name}.png", PanopticFrame(semantic, truth.instance)
            )
    code, out, err = run_cli(
        ["validate", "--pred", str(pred), "-d", str(spec), "--root", str(data)], capsys
    )
    assert code == 0, err
    results = tmp_path / "results.json"
    args = ["evaluate", "--pred", str(pred), "-d", str(spec), "--root", str(data), "--quiet"]
    code, out, err = run_cli([*args, "--output", str(results), "--workers", "2"], capsys)
    assert code == 0, err
    numbers = json.loads(results.read_text())
    assert numbers["dataset"] == "my-streets"
    assert numbers["metrics"]["STQ"] == pytest.approx(1.0)


# -- plugins -------------------------------------------------------------------------------------
PLUGIN_MODULE = """
from vpsbench.datasets.kitti_step import KittiStep

class PluginSet(KittiStep):
    name = "plugin-set"
    description = "a KITTI-STEP copy from a plugin"
"""


def install_plugin(folder: Path, entry: str, module: str = PLUGIN_MODULE) -> None:
    """A module and a dist-info whose entry_points.txt registers it, as pip would leave them."""
    (folder / "tmp_vps_plugin.py").write_text(module)
    info = folder / "tmp_vps_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmp-vps-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[vpsbench.datasets]\n{entry}\n")


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "tmp_vps_plugin", raising=False)
    importlib.invalidate_caches()
    return folder


def test_plugin_dataset_is_found_and_opened(
    plugin_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_plugin(plugin_path, "plugin-set = tmp_vps_plugin:PluginSet")
    assert "plugin-set" in dataset_names()
    write_kitti_step(tmp_path / "k", "val", {"0002": [PanopticFrame(SEMANTIC * 0, INSTANCE)]})
    dataset = open_dataset("plugin-set", tmp_path / "k")
    assert type(dataset).__name__ == "PluginSet"
    assert [s.name for s in dataset.sequences("val")] == ["0002"]
    code, out, _ = run_cli(["datasets", "list"], capsys)
    assert code == 0 and "plugin-set" in out


@pytest.mark.parametrize(
    ("entry", "module", "message"),
    [
        (
            "broken = tmp_vps_plugin:PluginSet",
            "import no_such_module_xyz\n",
            r"dataset plugin 'broken' \(tmp_vps_plugin:PluginSet, entry-point group "
            r"vpsbench.datasets\) failed to load: ModuleNotFoundError",
        ),
        ("plugin-set = tmp_vps_plugin:OTHER", "OTHER = 3\n", r"is not a Dataset subclass"),
        (
            "other-name = tmp_vps_plugin:PluginSet",
            PLUGIN_MODULE,
            r"loads dataset 'plugin-set'; names must agree",
        ),
    ],
)
def test_broken_plugin_is_one_clear_line(
    plugin_path: Path, capsys: pytest.CaptureFixture[str], entry: str, module: str, message: str
) -> None:
    install_plugin(plugin_path, entry, module)
    name = entry.split(" =")[0]
    code, _, err = run_cli(["datasets", "info", name], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")
    assert re.search(message, err), err
    code, out, _ = run_cli(["datasets", "list"], capsys)  # the list still works
    assert code == 0 and name in out and "unavailable" in out
    assert importlib.metadata.entry_points(group="vpsbench.datasets")
