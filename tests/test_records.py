"""Result records: schema, validation of strangers' input, canonical files and submission checks."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.leaderboard.fixtures import (
    SCRIPT_NAME,
    XSS_NAME,
    evaluated_results,
    reported_record,
    reproduced_record,
    write_predictions,
    write_tiny_kitti_step,
)
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.leaderboard.consistency import record_problems, stq_is_consistent
from vpsbench.leaderboard.exports import markdown_text
from vpsbench.leaderboard.plots import escape as svg_text
from vpsbench.leaderboard.site import display_name
from vpsbench.leaderboard.store import (
    check_for_submission,
    load_store,
    record_path,
    submit_file,
    submit_record,
)
from vpsbench.records import (
    MAX_RECORD_BYTES,
    ResultRecord,
    metric_values,
    neutralise_bidi,
    parse_record,
    read_record,
    record_from_results,
    record_to_json,
    write_record,
)

REPO = Path(__file__).resolve().parent.parent

#: The paper's Tables 1 and 2 in % (STQ, AQ, SQ), as the seeded store must hold them.
PAPER_TABLES: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {
    ("cityscapes-vps", "val"): {
        "supervised": (42.0, 27.0, 65.3),
        "depthg-videocutler": (9.9, 3.4, 28.2),
        "u2seg-sort": (11.4, 5.6, 23.0),
        "cups-sort": (20.6, 13.3, 31.8),
        "cups-mono-sort": (17.8, 10.6, 29.9),
        "videocups": (22.2, 15.3, 32.3),
    },
    ("kitti-step", "val"): {
        "supervised": (53.9, 59.9, 48.4),
        "depthg-videocutler": (13.2, 8.7, 20.1),
        "u2seg-sort": (24.0, 21.1, 27.2),
        "cups-sort": (34.2, 37.7, 31.1),
        "cups-mono-sort": (32.9, 35.4, 30.5),
        "videocups": (37.3, 43.6, 32.0),
    },
    ("waymo", "validation"): {
        "supervised": (22.3, 12.6, 39.4),
        "depthg-videocutler": (7.9, 2.6, 23.9),
        "u2seg-sort": (10.4, 4.8, 22.6),
        "cups-sort": (17.5, 9.9, 30.8),
        "cups-mono-sort": (16.6, 9.3, 29.8),
        "videocups": (18.4, 10.7, 31.6),
    },
    ("mots", "train"): {
        "supervised": (20.5, 12.7, 33.1),
        "depthg-videocutler": (14.5, 6.8, 30.7),
        "u2seg-sort": (14.9, 7.2, 30.8),
        "cups-sort": (16.7, 10.4, 27.0),
        "cups-mono-sort": (14.9, 7.8, 28.3),
        "videocups": (18.6, 10.5, 33.0),
    },
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The evaluator's document for a real evaluation of the tiny KITTI-STEP split."""
    folder = tmp_path_factory.mktemp("records")
    root = write_tiny_kitti_step(folder / "data")
    return evaluated_results(root, write_predictions(root, folder / "preds"))


def _document(record: ResultRecord) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(record_to_json(record))
    return loaded


def _write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# -- schema ----------------------------------------------------------------------------------------
def test_record_from_results_keeps_every_number(results: dict[str, Any]) -> None:
    record = reproduced_record(results)
    assert record.provenance == "reproduced"
    assert record.metrics.stq == results["metrics"]["STQ"]
    assert record.metrics.aq == results["metrics"]["AQ"]
    assert record.metrics.vpq == results["metrics"]["VPQ"]
    assert record.metrics.pq == results["metrics"]["PQ"]["PQ"]
    assert record.metrics.iou_per_class == results["metrics"]["IoU_per_class"]
    assert [s.sequence for s in record.metrics.per_sequence] == ["0002", "0006"]
    assert [s.tubes for s in record.metrics.per_sequence] == [
        s["tubes"] for s in results["per_sequence"]
    ]
    assert record.predictions is not None
    assert record.predictions.sha256 == results["predictions"]["sha256"]
    assert record.mapping == results["mapping"]
    assert record.protocol.matching == "hungarian-thing-stuff"
    assert record.protocol.thing_classes == results["protocol"]["thing_classes"]
    assert record.protocol.vpq_windows == [1, 2, 3]  # window 4 exceeds the 3-frame videos
    dataset_options = {k: v for k, v in results["protocol"].items() if isinstance(v, str)}
    dataset_options.pop("label_space")
    dataset_options.pop("matching")
    assert record.protocol.options == dataset_options and dataset_options
    assert record.vpsbench_version == results["vpsbench_version"]
    assert record_problems(record) == []


def test_round_trip_is_exact_and_canonical(tmp_path: Path, results: dict[str, Any]) -> None:
    record = reproduced_record(results)
    path = tmp_path / "record.json"
    write_record(path, record)
    text = path.read_text(encoding="utf-8")
    assert read_record(path) == record
    assert text.endswith("}\n") and text.startswith("{\n  ")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_record(tmp_path / "again.json", read_record(path))
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    assert metric_values(read_record(path)) == metric_values(record)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("metrics", "stq"), 1.5),
        (("metrics", "aq"), -0.01),
        (("metrics", "sq"), "0.5"),
        (("metrics", "iou_per_class", "road"), 42.0),
        (("metrics", "per_sequence", 0, "aq"), 2.0),
        (("precision",), 0.0),
    ],
)
def test_bad_numbers_are_rejected(
    tmp_path: Path, results: dict[str, Any], where: tuple[Any, ...], value: object
) -> None:
    document = _document(reproduced_record(results))
    target = document
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(InputError) as caught:
        read_record(_write_json(tmp_path / "bad.json", document))
    assert str(caught.value).startswith(f"{tmp_path / 'bad.json'}: invalid record: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(tmp_path: Path, constant: str) -> None:
    text = record_to_json(reported_record()).replace('"stq": 0.373', f'"stq": {constant}')
    path = tmp_path / "nan.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="not allowed"):
        read_record(path)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.org/file",
        "file:///etc/passwd",
        "//example.org/no-scheme",
        "/relative/path",
        'https://example.org/"onmouseover="alert(1)',
        "https://example.org/a b",
        " https://example.org/",
        "https://",
    ],
)
def test_links_must_be_http(tmp_path: Path, url: str) -> None:
    document = _document(reported_record())
    document["links"] = [{"label": "code", "url": url}]
    with pytest.raises(InputError, match=r"invalid record: links\.0\.url"):
        read_record(_write_json(tmp_path / "link.json", document))
    document["links"] = []
    document["citation"]["url"] = url
    with pytest.raises(InputError, match=r"citation\.url"):
        read_record(_write_json(tmp_path / "citation.json", document))


def test_script_named_record_with_javascript_link_is_rejected(tmp_path: Path) -> None:
    document = _document(reported_record(method="script", name=SCRIPT_NAME))
    document["links"] = [{"label": SCRIPT_NAME, "url": "javascript:alert(1)"}]
    with pytest.raises(InputError, match="only absolute http"):
        read_record(_write_json(tmp_path / "script.json", document))


def test_markup_in_a_name_is_valid_text(tmp_path: Path) -> None:
    record = reported_record(method="xss-probe", name=XSS_NAME)
    write_record(tmp_path / "xss.json", record)
    assert read_record(tmp_path / "xss.json").method_name == XSS_NAME


def test_oversized_record_is_rejected_before_parsing(tmp_path: Path) -> None:
    document = _document(reported_record())
    document["notes"] = "x" * (MAX_RECORD_BYTES + 10)
    path = _write_json(tmp_path / "big.json", document)
    with pytest.raises(InputError, match="larger than 1048576 bytes"):
        read_record(path)


def test_oversized_record_is_never_written(tmp_path: Path, results: dict[str, Any]) -> None:
    base = reproduced_record(results)
    row = base.metrics.per_sequence[0]
    many = [row.model_copy(update={"sequence": f"{i:05d}" + "y" * 150}) for i in range(8000)]
    big = base.model_copy(
        update={"metrics": base.metrics.model_copy(update={"per_sequence": many})}
    )
    with pytest.raises(InputError, match="would be larger"):
        write_record(tmp_path / "big.json", big)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"method": "x",', "not valid JSON: Expecting"),
        ("[1, 2, 3]", "invalid record"),
        ('{"method": "a", "method": "b"}', "duplicate key 'method'"),
        ("\ufeff{}", "not valid JSON"),
        ("", "not valid JSON"),
        ('{"unexpected": 1}', "invalid record"),
    ],
)
def test_malformed_records_give_one_line(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "malformed.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_record(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message


def test_non_utf8_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.json").write_bytes(b'{"notes": "caf\xe9"}')
    with pytest.raises(InputError, match="not UTF-8"):
        read_record(tmp_path / "latin1.json")
    with pytest.raises(InputError, match="cannot read the record"):
        read_record(tmp_path / "absent.json")


@pytest.mark.parametrize("version", [3, 0, True, 1.0, "1"])
def test_unknown_fields_and_versions_are_rejected(tmp_path: Path, version: object) -> None:
    document = _document(reported_record())
    document["schema_version"] = version
    with pytest.raises(InputError, match="schema_version"):
        read_record(_write_json(tmp_path / "future.json", document))


def test_version_1_records_are_migrated(tmp_path: Path, results: dict[str, Any]) -> None:
    current = reproduced_record(results)
    document = _document(current)
    assert document["schema_version"] == 2 and "model" not in document
    document["schema_version"] = 1
    migrated = read_record(_write_json(tmp_path / "v1.json", document))
    assert migrated == current and migrated.schema_version == 2
    assert migrated.model is None and migrated.command is None and not migrated.is_stand_in
    write_record(tmp_path / "now-v2.json", migrated)
    assert json.loads((tmp_path / "now-v2.json").read_text())["schema_version"] == 2
    for field, value in (("model", "stand-in"), ("command", "vpsbench demo")):
        with pytest.raises(InputError, match=f"schema_version 1 has no field '{field}'"):
            read_record(_write_json(tmp_path / "v1-bad.json", document | {field: value}))


def test_model_and_command_round_trip(tmp_path: Path, results: dict[str, Any]) -> None:
    command = "vpsbench run-method tiny-method --dataset kitti-step --set 'name=a b'"
    record = record_from_results(results, "tiny-method", "1", model="stand-in", command=command)
    assert record.schema_version == 2 and record.is_stand_in and record.command == command
    write_record(tmp_path / "r.json", record)
    assert read_record(tmp_path / "r.json") == record
    assert record_problems(record) == []
    assert not record_from_results(results, "tiny-method", "1", model="trained").is_stand_in


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("model", "the-real-one", "model"),
        ("model", "Stand-In", "model"),
        ("command", "vpsbench demo\nrm -rf /", "command"),
        ("command", "", "command"),
        ("command", "x" * 2001, "command"),
    ],
)
def test_bad_model_and_command_are_rejected(
    tmp_path: Path, results: dict[str, Any], field: str, value: str, message: str
) -> None:
    document = _document(reproduced_record(results)) | {field: value}
    with pytest.raises(InputError, match=f"invalid record: {message}"):
        read_record(_write_json(tmp_path / "bad.json", document))


def test_a_reported_record_is_never_a_stand_in(tmp_path: Path) -> None:
    document = _document(reported_record()) | {"model": "stand-in"}
    with pytest.raises(InputError, match="only a reproduced record can come from a weight-free"):
        read_record(_write_json(tmp_path / "reported-stand-in.json", document))
    assert read_record(_write_json(tmp_path / "ok.json", document | {"model": "published"}))


def test_reported_needs_citation_and_reproduced_needs_digest(results: dict[str, Any]) -> None:
    document = _document(reported_record())
    del document["citation"]
    with pytest.raises(InputError, match="needs a citation"):
        parse_record(json.dumps(document), "x.json")
    broken = dict(results, predictions={"format": "step", "sha256": "not-a-digest"})
    with pytest.raises(VpsbenchError, match=r"predictions\.sha256"):
        record_from_results(broken, "m", "1")
    with pytest.raises(VpsbenchError, match="not an evaluation results document"):
        record_from_results({"dataset": "kitti-step"}, "m", "1")


# -- paths -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "../escape"),
        ("method", "a/b"),
        ("method", ".."),
        ("method", ".hidden"),
        ("method", "Upper"),
        ("method", "x\\y"),
        ("dataset", "../../etc"),
        ("split", "val/../../x"),
        ("method", ""),
    ],
)
def test_ids_that_could_escape_the_store_are_rejected(
    tmp_path: Path, field: str, value: str
) -> None:
    document = _document(reported_record())
    document[field] = value
    with pytest.raises(InputError, match=f"invalid record: {field}"):
        read_record(_write_json(tmp_path / "escape.json", document))


def test_unvalidated_escape_is_still_caught(tmp_path: Path) -> None:
    sneaky = reported_record().model_copy(update={"method": "../../outside"})
    with pytest.raises(VpsbenchError, match="not a slug"):
        record_path(tmp_path / "store", sneaky)
    with pytest.raises(VpsbenchError):
        submit_record(tmp_path / "store", sneaky)
    assert not (tmp_path / "outside").exists()


# -- submission checks -----------------------------------------------------------------------------
def test_stq_consistency_within_rounding() -> None:
    assert stq_is_consistent(0.539, 0.599, 0.484, 0.001)  # KITTI-STEP supervised: sqrt → 53.84
    assert not stq_is_consistent(0.539, 0.599, 0.484, None)
    assert not stq_is_consistent(0.300, 0.599, 0.484, 0.001)
    assert stq_is_consistent(math.sqrt(0.25 * 0.36), 0.25, 0.36, None)


def test_inconsistent_stq_is_rejected(tmp_path: Path) -> None:
    record = reported_record(numbers=(0.300, 0.436, 0.32))
    path = tmp_path / "incoming.json"
    write_record(path, record)
    with pytest.raises(InputError, match=r"STQ 0\.3 != sqrt\(AQ 0\.436 · SQ 0\.32\)"):
        submit_file(tmp_path / "store", path)
    assert not (tmp_path / "store").exists()


def test_per_sequence_aggregates_are_checked(results: dict[str, Any]) -> None:
    record = reproduced_record(results)
    rows = list(record.metrics.per_sequence)
    first = rows[0]
    changed_aq = min(1.0, first.aq + 0.05)
    rows[0] = first.model_copy(update={"aq": changed_aq, "stq": math.sqrt(changed_aq * first.sq)})
    tampered = record.model_copy(
        update={"metrics": record.metrics.model_copy(update={"per_sequence": rows})}
    )
    problems = record_problems(tampered)
    assert any("tube-weighted" in problem for problem in problems)
    with pytest.raises(VpsbenchError, match="tube-weighted"):
        check_for_submission(tampered)
    rows[0] = first.model_copy(update={"stq": first.stq / 2})
    halved = record.model_copy(
        update={"metrics": record.metrics.model_copy(update={"per_sequence": rows})}
    )
    assert any(problem.startswith("sequence 0002: STQ") for problem in record_problems(halved))


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("vpsbench run-method tiny-method --dataset kitti-step", None),
        ("OMP_NUM_THREADS=1 python3 -m vpsbench run-method tiny-method -d kitti-step", None),
        ("vpsbench run-method tiny --dataset=kitti-step --split val --stage predict", None),
        ("vpsbench evaluate --pred p --dataset kitti-step --save-record r.json", None),
        ("rm -rf / # vpsbench", "does not run vpsbench"),
        ("vpsbench", "does not run vpsbench"),
        ("vpsbench run-method 'tiny-method --dataset kitti-step", "not a shell command line"),
        ("vpsbench run-method other --dataset kitti-step", "runs method 'other'"),
        ("vpsbench run-method tiny-method --dataset waymo", "is not the record's 'kitti-step'"),
        ("vpsbench run-method tiny-method", "--dataset [] is not the record's"),
        ("vpsbench run-method tiny-method -d kitti-step --split train", "--split ['train']"),
    ],
)
def test_the_command_must_agree_with_the_record(
    results: dict[str, Any], command: str, problem: str | None
) -> None:
    record = record_from_results(results, "tiny-method", "1", command=command)
    problems = record_problems(record)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]
        with pytest.raises(VpsbenchError, match="record rejected"):
            check_for_submission(record)


@pytest.mark.parametrize("setting", ["weights=cups.ckpt", "per_frame=preds", "depthg_weights=d"])
def test_a_stand_in_command_loads_no_weights(results: dict[str, Any], setting: str) -> None:
    command = f"vpsbench run-method tiny-method --dataset kitti-step --set {setting}"
    stand_in = record_from_results(results, "tiny-method", "1", model="stand-in", command=command)
    assert any(
        "weight-free stand-in record whose command loads" in p for p in record_problems(stand_in)
    )
    published = stand_in.model_copy(update={"model": "published"})
    assert record_problems(published) == []


def test_unknown_dataset_and_split_are_rejected() -> None:
    with pytest.raises(VpsbenchError, match="unknown dataset 'imagenet'"):
        check_for_submission(reported_record(dataset="imagenet"))
    with pytest.raises(VpsbenchError, match="kitti-step has no split 'test'"):
        check_for_submission(reported_record(split="test"))


def test_submit_files_at_the_right_path(tmp_path: Path, results: dict[str, Any]) -> None:
    incoming = tmp_path / "incoming.json"
    incoming.write_text(json.dumps(_document(reproduced_record(results))), encoding="utf-8")
    target = submit_file(tmp_path / "store", incoming)
    assert target == (tmp_path / "store" / "tiny-method" / "kitti-step-val.json").resolve()
    assert read_record(target) == read_record(incoming)
    assert [s.relative_path for s in load_store(tmp_path / "store")] == [
        "tiny-method/kitti-step-val.json"
    ]


def test_store_refuses_a_record_at_the_wrong_path(tmp_path: Path) -> None:
    wrong = tmp_path / "store" / "other-method" / "kitti-step-val.json"
    wrong.parent.mkdir(parents=True)
    write_record(wrong, reported_record())
    with pytest.raises(InputError, match=r"belongs at paper-method/kitti-step-val\.json"):
        load_store(tmp_path / "store")


def test_seeded_paper_records_pass_and_match_the_tables() -> None:
    stored = load_store(REPO / "submissions")
    found = {(s.record.dataset, s.record.split, s.record.method): s.record for s in stored}
    expected = {
        (dataset, split, method): numbers
        for (dataset, split), rows in PAPER_TABLES.items()
        for method, numbers in rows.items()
    }
    assert set(expected) <= set(found)
    for key, (stq, aq, sq) in expected.items():
        record = found[key]
        check_for_submission(record)
        assert record.provenance == "reported"
        assert record.citation is not None and "VideoCUPS" in (record.citation.locator or "")
        assert record.precision == 0.001
        assert (record.metrics.stq, record.metrics.aq, record.metrics.sq) == pytest.approx(
            (stq / 100, aq / 100, sq / 100), abs=1e-12
        )
        assert record.metrics.iou_per_class == {} and record.metrics.per_sequence == []
        assert record.notes is not None and "not reproduced" in record.notes


@pytest.mark.parametrize("name", ["line\nbreak", "escape \x1b[31m", "c1 \x9b31m", ""])
def test_names_are_single_printable_lines(tmp_path: Path, name: str) -> None:
    document = _document(reported_record())
    document["method_name"] = name
    with pytest.raises(InputError, match="invalid record: method_name") as caught:
        read_record(_write_json(tmp_path / "name.json", document))
    assert str(caught.value).isprintable()


#: Unicode's bidirectional controls: U+202E makes "VideoCUPS\u202e(reproduced)" read backwards.
BIDI = ["\u202e", "\u202d", "\u202a", "\u202b", "\u202c", "\u2066", "\u2067", "\u2068", "\u2069"]
BIDI_MARKS = ["\u200e", "\u200f", "\u061c"]


@pytest.mark.parametrize("control", BIDI + BIDI_MARKS)
@pytest.mark.parametrize(
    "field",
    [
        ("method_name",),
        ("method_version",),
        ("notes",),
        ("citation", "text"),
        ("citation", "locator"),
    ],
)
def test_bidirectional_controls_are_refused_in_every_displayed_field(
    tmp_path: Path, control: str, field: tuple[str, ...]
) -> None:
    document = _document(reported_record())
    parent = document
    for key in field[:-1]:
        parent = parent[key]
    parent[field[-1]] = f"Paper{control}Method"
    with pytest.raises(InputError, match=f"{'.'.join(field)}: .*bidirectional control") as caught:
        read_record(_write_json(tmp_path / "bidi.json", document))
    assert str(caught.value).isprintable() and f"U+{ord(control):04X}" in str(caught.value)


def test_bidirectional_controls_are_refused_in_keys_links_and_commands(
    tmp_path: Path, results: dict[str, Any]
) -> None:
    document = _document(reported_record())
    document["links"] = [{"label": "code\u202e", "url": "https://example.org/"}]
    with pytest.raises(InputError, match=r"links\.0\.label: .*bidirectional"):
        read_record(_write_json(tmp_path / "label.json", document))
    document["links"] = [{"label": "code", "url": "https://example.org/\u202egnp.exe"}]
    with pytest.raises(InputError, match=r"links\.0\.url"):
        read_record(_write_json(tmp_path / "url.json", document))
    document["links"] = []
    document["protocol"]["options"] = {"root\u2067": "x"}
    with pytest.raises(InputError, match="bidirectional"):
        read_record(_write_json(tmp_path / "key.json", document))
    with pytest.raises(VpsbenchError, match="bidirectional"):
        record_from_results(
            results, "tiny-method", "1.0", command="vpsbench run-method tiny-method\u202e"
        )


def test_bidirectional_controls_are_neutralised_in_displayed_text() -> None:
    disguised = "evil\u202egnp.exe"
    for shown in (
        neutralise_bidi(disguised),
        markdown_text(disguised),
        svg_text(disguised),
        display_name(disguised, stand_in=True),
    ):
        assert "\u202e" not in shown and "U+202E" in shown
    assert neutralise_bidi("Ünïcode names stay") == "Ünïcode names stay"


def test_error_lines_show_bidirectional_controls(tmp_path: Path) -> None:
    disguised = tmp_path / "record\u202enosj.exe"
    completed = subprocess.run(
        [sys.executable, "-m", "vpsbench", "submit", str(disguised), "--store", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2 and completed.stderr.count("\n") == 1
    assert "\u202e" not in completed.stderr and "record[U+202E]nosj.exe" in completed.stderr
