"""Waymo PVPS from raw TFRecords: CRC-32C, record framing, wire reader, conversion, CLI, errors.

Hand-built TFRecords (frames encoded field by field from ``dataset.proto``'s numbers, PNG/JPEG by
Pillow) cover the decoding rules and every bad input; the real test frame of the Waymo Open
Dataset (``../shared/reference-data/waymo``) is converted and checked when present.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from tests.cli_runner import run_cli
from vpsbench.datasets import open_dataset
from vpsbench.datasets.waymo_tfrecord import (
    WORK_FOLDER,
    marker_path,
    parse_frame,
    prepare_from_tfrecords,
)
from vpsbench.formats.crc32c import crc32c, masked_crc32c
from vpsbench.formats.npz import write_npz
from vpsbench.formats.png import read_png
from vpsbench.formats.protowire import Message, WireError, encode_field
from vpsbench.formats.tfrecord import RecordError, frame_record, read_records

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference-data" / "waymo"
REAL_FILE = REFERENCE / "pvps_data_one_frame.tfrecord"
FRAME_LIST = REFERENCE / "protos" / "tutorial" / "2d_pvps_validation_frames.txt"
needs_real_file = pytest.mark.skipif(
    not REAL_FILE.is_file(),
    reason="../shared/reference-data/waymo/pvps_data_one_frame.tfrecord is absent",
)
KINDS = ("image", "semantic", "instance", "cameras", "tracked")
CONTEXT = "1024360143612057520_3580_000_3600_000"


# -- CRC-32C and framing ----------------------------------------------------------------------


def _bitwise_crc32c(data: bytes) -> int:
    """CRC-32C bit by bit from the polynomial (no table): the independent reference."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_values_and_lanes() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283  # the CRC catalogue's check value
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xff
    assert crc32c(bytes(range(32))) == 0x46DD794E  # RFC 3720 B.4: incrementing
    rng = np.random.default_rng(0)
    for size in (4095, 4096, 4097, 9000, 65537, 300_001):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert crc32c(data) == _bitwise_crc32c(data), size
    # Leading zero bytes are where lane padding goes: they must still count.
    assert crc32c(bytes(5000) + b"x") == _bitwise_crc32c(bytes(5000) + b"x")


def test_masked_crc_matches_tensorflow_definition() -> None:
    crc = _bitwise_crc32c(b"abc")
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert masked_crc32c(b"abc") == (rotated + 0xA282EAD8) & 0xFFFFFFFF


def _write(path: Path, records: list[bytes]) -> Path:
    path.write_bytes(b"".join(frame_record(r) for r in records))
    return path


def test_records_round_trip(tmp_path: Path) -> None:
    records = [b"", b"a", bytes(range(256)) * 40]
    path = _write(tmp_path / "x.tfrecord", records)
    assert [data for _, data in read_records(path)] == records


@pytest.mark.parametrize(
    ("cut", "problem"),
    [(5, "header"), (12 + 3, "data bytes"), (12 + 10 + 2, "data CRC")],
)
def test_truncated_record_names_file_and_index(tmp_path: Path, cut: int, problem: str) -> None:
    second = frame_record(b"0123456789")
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(frame_record(b"first") + second[:cut])
    with pytest.raises(RecordError, match=rf"cut\.tfrecord: record 1: truncated .*{problem}"):
        list(read_records(path))


@pytest.mark.parametrize(
    ("offset", "problem"),
    [
        (3, "in the length field"),
        (9, "in the length field"),
        (13, "in the data"),
        (21, "in the data"),
    ],
)
def test_crc_mismatch_names_file_and_index(tmp_path: Path, offset: int, problem: str) -> None:
    data = bytearray(frame_record(b"payload"))
    data[offset] ^= 0x01
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(frame_record(b"ok") + bytes(data))
    with pytest.raises(RecordError, match=rf"bad\.tfrecord: record 1: CRC-32C mismatch {problem}"):
        list(read_records(path))


# -- wire format ------------------------------------------------------------------------------


def test_wire_reader_scalars_merging_and_errors() -> None:
    inner_a = encode_field(1, b"ctx") + encode_field(2, 7)
    inner_b = encode_field(2, 9)
    data = (
        encode_field(1, inner_a)
        + encode_field(3, -5)
        + encode_field(1, inner_b)
        + encode_field(4, 1)
        + encode_field(4, 2)
        + encode_field(5, b"\x01\x02")
    )
    message = Message(data)
    assert message.int32(3) == -5 and message.int64(3) == -5
    assert message.uint(4) == 2 and message.varints(4) == [1, 2]
    merged = message.message(1)  # two occurrences of a singular message field merge
    assert merged.string(1) == "ctx" and merged.uint(2) == 9
    assert message.bytes(5) == b"\x01\x02" and message.bytes(6) == b""
    with pytest.raises(WireError, match="field 5 is length-delimited, expected varint"):
        message.uint(5)
    with pytest.raises(WireError, match="runs past"):
        Message(encode_field(1, b"abcdef")[:-2])
    with pytest.raises(WireError, match="wire type 3"):
        Message(bytes([1 << 3 | 3]))


# -- hand-built frames ------------------------------------------------------------------------


def _png(array: npt.NDArray[np.generic]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(rgb: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def label_bytes(
    panoptic: npt.NDArray[np.uint16],
    divisor: int,
    mapping: list[tuple[int, int, bool]],
    sequence: str,
    cameras: npt.NDArray[np.uint8] | None,
) -> bytes:
    """A ``CameraSegmentationLabel`` encoded field by field (numbers from dataset.proto)."""
    out = encode_field(1, divisor) + encode_field(2, _png(panoptic))
    for local, global_id, tracked in mapping:
        entry = encode_field(1, local) + encode_field(2, global_id) + encode_field(3, int(tracked))
        out += encode_field(3, entry)
    out += encode_field(4, sequence.encode())
    if cameras is not None:
        out += encode_field(5, _png(cameras))
    return out


def frame_bytes(
    context: str, timestamp: int, images: list[tuple[int, bytes, bytes | None]]
) -> bytes:
    """A ``Frame`` with a context name, timestamp, calibration-free images and a laser stub."""
    out = encode_field(1, encode_field(1, context.encode())) + encode_field(2, timestamp)
    for camera, jpeg, label in images:
        image = encode_field(1, camera) + encode_field(2, jpeg) + encode_field(5, 123)
        if label is not None:
            image += encode_field(10, label)
        out += encode_field(4, image)
    out += encode_field(5, encode_field(1, 1) + encode_field(2, b"\x00" * 30))  # a Laser
    return out


H, W = 6, 8


def synthetic_camera(
    camera: int, seed: int
) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]:
    """A panoptic label (divisor 1000) with instances 1..3 and an RGB image for one camera."""
    rng = np.random.default_rng(seed)
    semantic = rng.choice([20, 24, 25], size=(H, W))
    instance = np.zeros((H, W), dtype=np.int64)
    semantic[:3, :3], instance[:3, :3] = 2, 1
    semantic[3:, :2], instance[3:, :2] = 9, 2
    semantic[:2, 5:], instance[:2, 5:] = 3, 3
    panoptic = (semantic * 1000 + instance).astype(np.uint16)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return panoptic, rgb


def synthetic_frame(
    index: int, *, labelled: bool = True, context: str = CONTEXT, drop: int | None = None
) -> bytes:
    """Five cameras; FRONT maps local 1 → 40 (tracked), 2 → 41 (untracked), 3 unmapped."""
    images = []
    for camera in (1, 2, 4, 3, 5):
        panoptic, rgb = synthetic_camera(camera, 10 * index + camera)
        mapping = [(1, 40 + camera - 1, True), (2, 41 + camera, camera != 1)]
        cameras = np.where(np.arange(W) < 4, 1, 2).astype(np.uint8)[None].repeat(H, 0)
        label = label_bytes(panoptic, 1000, mapping, "seq", cameras)
        images.append((camera, _jpeg(rgb), label if labelled and camera != drop else None))
    return frame_bytes(context, 1_000_000 + index, images)


def test_synthetic_frame_decodes_to_global_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.tfrecord", [synthetic_frame(0, labelled=False), synthetic_frame(1)])
    (outcome,) = prepare_from_tfrecords(path, tmp_path / "out")
    assert outcome.error is None and outcome.frames == 1
    folder = tmp_path / "out" / "validation" / CONTEXT
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"1_{k}.png" for k in KINDS)
    panoptic, rgb = synthetic_camera(1, 11)
    semantic = read_png(folder / "1_semantic.png")
    instance = read_png(folder / "1_instance.png")
    assert semantic.dtype == np.uint16 and instance.dtype == np.uint16
    np.testing.assert_array_equal(semantic, panoptic // 1000)
    local = panoptic.astype(np.int64) % 1000
    expected = np.select([local == 1, local == 2], [40, 42], default=local)  # 3 has no mapping
    np.testing.assert_array_equal(instance, expected)
    np.testing.assert_array_equal(read_png(folder / "1_tracked.png"), (local == 1).astype(np.uint8))
    np.testing.assert_array_equal(read_png(folder / "1_cameras.png")[0], [1] * 4 + [2] * 4)
    decoded = np.asarray(Image.open(io.BytesIO(_jpeg(rgb))).convert("RGB"))
    assert_same_picture(read_png(folder / "1_image.png"), decoded)


def test_sequences_in_one_frame_are_offset_in_panorama_order(tmp_path: Path) -> None:
    """As Waymo's remap_to_global: a later sequence's ids shift by the earlier maxima."""
    images = []
    cameras = ((1, "s2", 5), (2, "s1", 12), (4, "s1", 30), (3, "s2", 7), (5, "s3", 3))
    for camera, sequence, global_id in cameras:
        panoptic, rgb = synthetic_camera(camera, camera)
        label = label_bytes(panoptic, 1000, [(1, global_id, True)], sequence, None)
        images.append((camera, _jpeg(rgb), label))
    path = _write(tmp_path / "b.tfrecord", [frame_bytes(CONTEXT, 1, images)])
    (outcome,) = prepare_from_tfrecords(path, tmp_path / "out", cameras="all")
    assert outcome.error is None
    folder = tmp_path / "out" / "validation" / CONTEXT
    # Panorama order SIDE_LEFT, FRONT_LEFT, FRONT, FRONT_RIGHT, SIDE_RIGHT meets s1 (max 30),
    # then s2 (max 7), then s3: offsets 0, 30, 37.
    expected = {"side_left_": 30, "front_left_": 12, "": 35, "front_right_": 37, "side_right_": 40}
    for part, global_id in expected.items():
        assert sorted(np.unique(read_png(folder / f"0_{part}instance.png"))) == [0, 2, 3, global_id]
    assert (read_png(folder / "0_cameras.png") == 1).all()  # no map in the label: all 1


# -- bad input --------------------------------------------------------------------------------


def _bad_inputs(folder: Path) -> dict[str, str]:
    """One good and several bad files; the expected error text of each bad one."""
    good = frame_record(synthetic_frame(0))
    _write(folder / "good.tfrecord", [synthetic_frame(0), synthetic_frame(1)])
    (folder / "truncated.tfrecord").write_bytes(good + frame_record(synthetic_frame(1))[:-100])
    flipped = bytearray(frame_record(synthetic_frame(1)))
    flipped[500] ^= 0x40
    (folder / "crc.tfrecord").write_bytes(good + bytes(flipped))
    _write(folder / "notframe.tfrecord", [synthetic_frame(0), b"\x0a\x03abc\x12\x01"])
    _write(folder / "nolabels.tfrecord", [synthetic_frame(0, labelled=False)])
    _write(folder / "partial.tfrecord", [synthetic_frame(0), synthetic_frame(1, drop=4)])
    return {
        "truncated": "record 1: truncated",
        "crc": "record 1: CRC-32C mismatch in the data",
        "notframe": "record 1: not a Waymo Frame message",
        "nolabels": "record 0: frame without camera segmentation labels",
        "partial": "record 1: frame without camera segmentation labels for SIDE_LEFT",
    }


def test_bad_files_fail_alone_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "raw"
    source.mkdir()
    expected = _bad_inputs(source)
    root = tmp_path / "out"
    code, out, err = run_cli(
        ["datasets", "prepare", "waymo", "--from-tfrecords", str(source), "--root", str(root)],
        capsys,
    )
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == len(expected), err
    for name, problem in expected.items():
        (line,) = [line for line in lines if f"{name}.tfrecord" in line]
        assert line.startswith(str(source / f"{name}.tfrecord")) and problem in line, line
    assert "5 failed" in out and "2 labelled frames" in out
    # The good file converted; nothing of the bad ones (their frame 0 was fine) was left behind.
    folder = root / "validation" / CONTEXT
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{i}_{k}.png" for i in (0, 1) for k in KINDS
    )
    assert not (root / WORK_FOLDER / "staging").exists()
    assert [p.name for p in (root / WORK_FOLDER / "done" / "validation").iterdir()] == [
        "good.tfrecord.json"
    ]


# -- resumability and determinism -------------------------------------------------------------


def _three_files(folder: Path) -> list[Path]:
    folder.mkdir()
    contexts = [f"{n}_100_000_120_000" for n in (7, 8, 9)]
    return [
        _write(
            folder / f"segment-{context}_with_camera_labels.tfrecord",
            [synthetic_frame(2 * i + k, labelled=k == 1, context=context) for k in (0, 1, 0, 1)],
        )
        for i, context in enumerate(contexts)
    ]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and WORK_FOLDER not in p.parts
    }


def test_worker_count_gives_identical_bytes(tmp_path: Path) -> None:
    files = _three_files(tmp_path / "raw")
    one = prepare_from_tfrecords(tmp_path / "raw", tmp_path / "w1", cameras="all", workers=1)
    two = prepare_from_tfrecords(tmp_path / "raw", tmp_path / "w2", cameras="all", workers=2)
    assert [o.frames for o in one] == [o.frames for o in two] == [2, 2, 2]
    first, second = _tree(tmp_path / "w1"), _tree(tmp_path / "w2")
    assert len(first) == len(files) * 2 * 5 * 5 and first == second
    for path in files:
        a = json.loads(marker_path(tmp_path / "w1", "validation", path).read_text())
        b = json.loads(marker_path(tmp_path / "w2", "validation", path).read_text())
        assert a == b and [f[0] for f in a["frames"]] == [1, 3]


def test_resume_skips_done_files_and_redoes_half_done_ones(tmp_path: Path) -> None:
    files = _three_files(tmp_path / "raw")
    root = tmp_path / "out"
    prepare_from_tfrecords(tmp_path / "raw", root)
    reference = _tree(root)
    stamps = {p: p.stat().st_mtime_ns for p in (root / "validation").rglob("*.png")}
    # Interrupted file: its marker never written, one output missing, staging debris left.
    marker_path(root, "validation", files[1]).unlink()
    (root / "validation" / "8_100_000_120_000" / "3_instance.png").unlink()
    (root / "validation" / "8_100_000_120_000" / "1_semantic.png").write_bytes(b"half")
    debris = root / WORK_FOLDER / "staging" / "validation" / files[1].name / "8_100_000_120_000"
    debris.mkdir(parents=True)
    (debris / "1_image.png").write_bytes(b"junk")
    outcomes = prepare_from_tfrecords(tmp_path / "raw", root)
    assert [o.skipped for o in outcomes] == [True, False, True]
    assert _tree(root) == reference
    assert not (root / WORK_FOLDER / "staging").exists()
    for path, stamp in stamps.items():
        if "8_100" not in str(path):
            assert path.stat().st_mtime_ns == stamp, path  # finished files were not redone
    # A different camera setting is not "done".
    assert all(not o.skipped for o in prepare_from_tfrecords(files[0], root, cameras="all"))


# -- the real Waymo frame ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_frame() -> tuple[Message, bytes]:
    if not REAL_FILE.is_file():
        pytest.skip("../shared/reference-data/waymo/pvps_data_one_frame.tfrecord is absent")
    ((_, data),) = list(read_records(REAL_FILE))
    return Message(data), data


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not REAL_FILE.is_file():
        pytest.skip("../shared/reference-data/waymo/pvps_data_one_frame.tfrecord is absent")
    root = tmp_path_factory.mktemp("waymo")
    (outcome,) = prepare_from_tfrecords(REAL_FILE, root, cameras="all")
    assert outcome.error is None and outcome.frames == 1
    return root


def _raw_png(data: bytes) -> npt.NDArray[np.int64]:
    """Pillow's plain decode of PNG bytes (no vpsbench code involved)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image).astype(np.int64)


@needs_real_file
def test_real_frame_is_in_the_published_validation_list(real_frame: tuple[Message, bytes]) -> None:
    frame = parse_frame(real_frame[1])
    listed = {tuple(line.split(",")) for line in FRAME_LIST.read_text().split()}
    assert (frame.context, str(frame.timestamp_micros)) in listed
    assert frame.context == CONTEXT


@needs_real_file
def test_real_cameras_sizes_ids_and_divisor(
    real_frame: tuple[Message, bytes], converted: Path
) -> None:
    message, _ = real_frame
    folder = converted / "validation" / CONTEXT
    sizes = {}
    parts = {1: "", 2: "front_left_", 3: "front_right_", 4: "side_left_", 5: "side_right_"}
    for image in message.messages(4):
        camera = image.uint(1)
        label = image.message(10)
        divisor = label.int32(1)
        assert divisor == 1000
        panoptic = _raw_png(label.bytes(2))
        mapping = {m.int32(1): (m.int32(2), m.boolean(3)) for m in label.messages(3)}
        prefix = f"0_{parts[camera]}"
        semantic = read_png(folder / f"{prefix}semantic.png")
        instance = read_png(folder / f"{prefix}instance.png")
        tracked = read_png(folder / f"{prefix}tracked.png")
        np.testing.assert_array_equal(semantic, panoptic // divisor)
        local = panoptic % divisor
        for local_id in np.unique(local):
            where = local == local_id
            global_id, is_tracked = mapping.get(int(local_id), (int(local_id), False))
            assert (instance[where] == global_id).all()
            assert (tracked[where] == int(is_tracked)).all()
        np.testing.assert_array_equal(
            read_png(folder / f"{prefix}cameras.png"), _raw_png(label.bytes(5))
        )
        rgb = read_png(folder / f"{prefix}image.png")
        assert rgb.shape[:2] == semantic.shape
        sizes[camera] = (rgb.shape[1], rgb.shape[0])
    assert sizes == {
        1: (1920, 1280),
        2: (1920, 1280),
        3: (1920, 1280),
        4: (1920, 886),
        5: (1920, 886),
    }
    side_left = read_png(folder / "0_side_left_instance.png")
    assert (read_png(folder / "0_side_left_tracked.png")[side_left == 90] == 0).all()


IMAGE_PARTS = {1: "", 2: "front_left_", 3: "front_right_", 4: "side_left_", 5: "side_right_"}


def assert_same_picture(written: np.ndarray, accurate: np.ndarray) -> None:
    """The fast-DCT decode and an accurate-DCT decode of one JPEG: a few grey levels apart."""
    assert written.shape == accurate.shape and written.dtype == np.uint8
    difference = np.abs(written.astype(np.int16) - accurate.astype(np.int16))
    assert difference.max() <= 10 and difference.mean() < 1.5


@needs_real_file
def test_real_images_equal_tensorflows_default_jpeg_decode(
    real_frame: tuple[Message, bytes], converted: Path
) -> None:
    """``tf.io.decode_jpeg`` (Waymo's tools, CUPS' preprocessing) gives the written images."""
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed (the oracle)")
    folder = converted / "validation" / CONTEXT
    for image in real_frame[0].messages(4):
        expected = tf.io.decode_jpeg(image.bytes(2)).numpy()
        written = read_png(folder / f"0_{IMAGE_PARTS[image.uint(1)]}image.png")
        np.testing.assert_array_equal(written, expected)


@needs_real_file
def test_real_images_are_the_jpegs_an_independent_decoder_reads(
    real_frame: tuple[Message, bytes], converted: Path
) -> None:
    """OpenCV's accurate-DCT decode is the same picture: a few grey levels at most apart."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (independent JPEG decoder)")
    folder = converted / "validation" / CONTEXT
    for image in real_frame[0].messages(4):
        jpeg = np.frombuffer(image.bytes(2), dtype=np.uint8)
        accurate = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.int16)
        written = read_png(folder / f"0_{IMAGE_PARTS[image.uint(1)]}image.png")
        assert_same_picture(written, accurate)


@needs_real_file
def test_real_frame_cli_evaluate_and_verify(
    converted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "cli"
    args = ["datasets", "prepare", "waymo", "--from-tfrecords", str(REFERENCE), "--root", str(root)]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "1 labelled frames written from 1 file(s)" in out
    for kind in KINDS:
        name = f"validation/{CONTEXT}/0_{kind}.png"
        assert (root / name).read_bytes() == (converted / name).read_bytes()
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "1 already done" in out

    protocol = ["-p", "label_space=waymo", "-p", "weights=cameras", "-p", "untracked=crowd"]
    dataset = open_dataset("waymo", root, dict(p.split("=") for p in protocol[1::2]))
    (sequence,) = dataset.sequences("validation")
    preds = tmp_path / "preds"
    for frame in sequence.frames:
        write_npz(
            preds / frame.sequence / f"{frame.name}.npz",
            dataset.load_ground_truth("validation", frame),
        )
    results = tmp_path / "results.json"
    code, _, err = run_cli(
        [
            "evaluate",
            "--pred",
            str(preds),
            "--dataset",
            "waymo",
            "--root",
            str(root),
            *protocol,
            "--matching",
            "none",
            "--metrics",
            "stq",
            "--sequences",  # a one-context copy: the other 19 official contexts are absent
            sequence.name,
            "--quiet",
            "--output",
            str(results),
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads(results.read_text())["metrics"]
    assert metrics["STQ"] == metrics["AQ"] == metrics["SQ"] == 1.0

    code, _, err = run_cli(["datasets", "verify", "waymo", "--root", str(root)], capsys)
    assert code == 1
    lines = err.splitlines()
    assert any(line.endswith(f"{CONTEXT}: 1 labelled frames, expected 99") for line in lines)
    missing = [line for line in lines if line.endswith("frames)") and "missing context" in line]
    assert len(missing) == 19 and len(lines) == 19 + 1 + 1  # + the summary line


def test_training_split_and_other_cameras_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "t.tfrecord", [synthetic_frame(0), synthetic_frame(1)])
    root = tmp_path / "out"
    args = ["datasets", "prepare", "waymo", "--from-tfrecords", str(tmp_path / "t.tfrecord")]
    code, _, err = run_cli(
        [*args, "--root", str(root), "--split", "training", "--cameras", "all"], capsys
    )
    assert code == 0, err
    for camera in ("front", "side_left"):
        dataset = open_dataset("waymo", root, {"camera": camera, "label_space": "waymo"})
        (sequence,) = dataset.sequences("training")
        assert [f.name for f in sequence.frames] == ["0", "1"]
        truth = dataset.load_ground_truth("training", sequence.frames[1])
        assert truth.semantic.shape == (H, W)
        sizes = {1: "1920x1280", 4: "1920x886"}[1 if camera == "front" else 4]
        problems = dataset.verify("training")  # only the tiny test frames' size is flagged
        assert {p.message for p in problems} == {f"size 8x6, expected {sizes}"}, problems
        assert len(problems) == 2
    code, _, err = run_cli(["datasets", "prepare", "synthetic", "--from-tfrecords", "x"], capsys)
    assert code != 0 and "use it with waymo" in err
