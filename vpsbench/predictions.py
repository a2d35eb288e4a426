"""Reading a submission: one prediction per annotated frame, mirroring the ground-truth names.

Layouts and encodings (``<pred>`` is the folder given to ``--pred``; ``<sequence>`` and
``<frame>`` are the names ``vpsbench datasets info`` and ``validate`` use for the dataset):

* ``step``: ``<pred>/<sequence>/<frame>.png``, RGB: R = class, G·256+B = instance; R=255 void.
* ``npz``: ``<pred>/<sequence>/<frame>.npz``, arrays ``semantic`` (−1 void) and ``instance``.
* ``divisor16``: ``<pred>/<sequence>/<frame>.png``, 16-bit gray: class·divisor + instance.
* ``mots``: ``<pred>/<sequence>/<frame>.png``, 16-bit MOTS: class·1000 + id, 10000 ignore.
* ``mots-txt``: ``<pred>/<sequence>.txt``, MOTS txt lines with a pycocotools RLE per object.
* ``coco``: ``<pred>/panoptic.json`` + ``<pred>/<sequence>/<frame>.png``, RGB segment ids and
  the JSON's ``segments_info`` (``file_name`` = ``<sequence>/<frame>.png``).

Classes are the method's pseudo-class ids (or ground-truth ids with ``--matching none``); use
``npz`` when there are more than 255 of them. Class ids must lie in 0..65535 (``MAX_CLASS_ID``;
the matching's cost grows with the largest id, so a larger one is refused, never slowly scored),
and the only negative class is −1, void. A pseudo-class counts as a *thing* when any of its
pixels carries an instance id (unless the thing set is given explicitly).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vpsbench.errors import InputError, VpsbenchError
from vpsbench.formats import coco_panoptic, divisor_png, mots, npz, png, step
from vpsbench.statistics import CodedFrame
from vpsbench.video import FrameRef, LabelMap, PanopticFrame

PNG_VOID_CLASS = 255
MOTS_IGNORE_CLASS = 10
#: The largest pseudo-class id a prediction may carry (the matching sizes its tables by it).
MAX_CLASS_ID = 65535


class PredictionFormat(StrEnum):
    """The encodings a submission may use (see the module docstring)."""

    STEP = "step"
    NPZ = "npz"
    DIVISOR16 = "divisor16"
    MOTS = "mots"
    MOTS_TXT = "mots-txt"
    COCO = "coco"


_EXTENSION = {
    PredictionFormat.STEP: ".png",
    PredictionFormat.NPZ: ".npz",
    PredictionFormat.DIVISOR16: ".png",
    PredictionFormat.MOTS: ".png",
    PredictionFormat.COCO: ".png",
}


def detect_format(root: Path) -> PredictionFormat:
    """Guess the format of a prediction folder from its files."""
    if not root.is_dir():
        raise InputError(root, "prediction folder does not exist")
    if (root / "panoptic.json").exists():
        return PredictionFormat.COCO
    if any(root.glob("*.txt")):
        return PredictionFormat.MOTS_TXT
    for sequence_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if any(sequence_dir.glob("*.npz")):
            return PredictionFormat.NPZ
        first_png = next(iter(sorted(sequence_dir.glob("*.png"))), None)
        if first_png is not None:
            array = png.read_png(first_png)
            return PredictionFormat.STEP if array.ndim == 3 else PredictionFormat.DIVISOR16
    raise InputError(root, "no prediction files found (expected <sequence>/<frame>.png or .npz)")


@dataclass
class PredictionSource:
    """A folder of predictions in one format; reads the prediction of a ground-truth frame."""

    root: Path
    format: PredictionFormat
    divisor: int = 1000
    num_classes: int | None = None
    _mots_cache: dict[str, dict[int, list[mots.MotsObject]]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def open(
        cls,
        root: str | Path,
        format: str | None = None,
        divisor: int = 1000,
        num_classes: int | None = None,
    ) -> PredictionSource:
        """Open a prediction folder, detecting the format unless it is given."""
        path = Path(root)
        known = [f.value for f in PredictionFormat]
        if format not in (None, "auto", *known):
            raise VpsbenchError(
                f"--pred-format {format!r} is not a format; use auto or one of: {', '.join(known)}"
            )
        if divisor < 1:
            raise VpsbenchError(f"--pred-divisor must be positive, got {divisor}")
        if num_classes is not None and not 1 <= num_classes <= MAX_CLASS_ID + 1:
            raise VpsbenchError(
                f"--num-classes must be in 1..{MAX_CLASS_ID + 1}, got {num_classes}"
            )
        chosen = detect_format(path) if format in (None, "auto") else PredictionFormat(format)
        return cls(path, chosen, divisor, num_classes)

    def path_of(self, frame: FrameRef) -> Path:
        """Where the prediction of ``frame`` must be."""
        if self.format is PredictionFormat.MOTS_TXT:
            return self.root / f"{frame.sequence}.txt"
        return self.root / frame.sequence / f"{frame.name}{_EXTENSION[self.format]}"

    @cached_property
    def _coco_segments(self) -> tuple[dict[str, list[coco_panoptic.SegmentInfo]], set[int]]:
        document = coco_panoptic.read_panoptic_json(self.root / "panoptic.json")
        by_file = {a.file_name: a.segments for a in document.annotations}
        things = {int(c["id"]) for c in document.categories if c.get("isthing")}
        return by_file, things

    def read(self, frame: FrameRef, shape: tuple[int, int]) -> tuple[PanopticFrame, str]:
        """The prediction of ``frame`` (void classes as −1) and the SHA-256 of its file.

        Checks that the file exists, decodes, has the ground truth's ``shape`` and that class ids
        lie in the declared range; any failure is an :class:`InputError` naming the file.
        """
        path, digest = self._existing_file(frame)
        prediction = self._decode(path, frame, shape)
        _check_shape(path, prediction.shape, shape)
        self._check_ids(path, prediction)
        return prediction, digest

    def read_codes(self, frame: FrameRef, shape: tuple[int, int]) -> tuple[CodedFrame, str] | None:
        """:meth:`read` as one code per pixel (STEP only; ``None`` for other formats).

        The file checks run at once; the id checks run in the decoder, on every distinct code.
        """
        if self.format is not PredictionFormat.STEP:
            return None
        path, digest = self._existing_file(frame)
        codes = png.read_rgb_codes(path, "STEP")
        _check_shape(path, codes.shape, shape)

        def decode(values: npt.NDArray[np.uint32]) -> tuple[LabelMap, LabelMap]:
            prediction = _void_where(step.decode_step_codes(values), PNG_VOID_CLASS)
            self._check_ids(path, prediction)
            return prediction.semantic[0], prediction.instance[0]

        return CodedFrame(codes, decode), digest

    def _existing_file(self, frame: FrameRef) -> tuple[Path, str]:
        """The prediction file of ``frame`` and its SHA-256; :class:`InputError` when missing."""
        path = self.path_of(frame)
        if not path.is_file():
            raise InputError(
                path, f"missing prediction for frame {frame.name!r} of sequence {frame.sequence!r}"
            )
        return path, _sha256(path)

    def _decode(self, path: Path, frame: FrameRef, shape: tuple[int, int]) -> PanopticFrame:
        if self.format is PredictionFormat.NPZ:
            return npz.read_npz(path)
        if self.format is PredictionFormat.STEP:
            return _void_where(step.read_step_png(path), PNG_VOID_CLASS)
        if self.format is PredictionFormat.DIVISOR16:
            return _void_where(divisor_png.read_divisor_png(path, self.divisor), PNG_VOID_CLASS)
        if self.format is PredictionFormat.MOTS:
            return _void_where(mots.read_mots_png(path), MOTS_IGNORE_CLASS)
        if self.format is PredictionFormat.COCO:
            by_file, things = self._coco_segments
            key = f"{frame.sequence}/{frame.name}.png"
            if key not in by_file:
                raise InputError(self.root / "panoptic.json", f"no annotation for {key}")
            return coco_panoptic.read_coco_panoptic_png(path, by_file[key], things, void_label=-1)
        return self._decode_mots_txt(path, frame, shape)

    def _decode_mots_txt(
        self, path: Path, frame: FrameRef, shape: tuple[int, int]
    ) -> PanopticFrame:
        if frame.sequence not in self._mots_cache:
            self._mots_cache.clear()  # one sequence at a time keeps memory flat
            self._mots_cache[frame.sequence] = mots.read_mots_txt(path)
        if not frame.name.isdigit():
            raise InputError(path, f"frame name {frame.name!r} is not a MOTS frame number")
        objects = self._mots_cache[frame.sequence].get(int(frame.name), [])
        decoded = mots.mots_objects_to_frame(objects, shape[0], shape[1], source=str(path))
        return _void_where(decoded, MOTS_IGNORE_CLASS)

    def _check_ids(self, path: Path, prediction: PanopticFrame) -> None:
        """Instance ids non-negative; class ids in −1..MAX_CLASS_ID and the declared range."""
        if int(prediction.instance.min(initial=0)) < 0:
            raise InputError(path, "negative instance id")
        lowest = int(prediction.semantic.min(initial=-1))
        if lowest < -1:
            raise InputError(path, f"class id {lowest}: the only negative class is -1 (void)")
        top = int(prediction.semantic.max(initial=-1))
        if top > MAX_CLASS_ID:
            raise InputError(
                path, f"class id {top} is beyond the largest supported class id {MAX_CLASS_ID}"
            )
        if self.num_classes is not None and top >= self.num_classes:
            raise InputError(
                path, f"class id {top} is beyond the declared range 0..{self.num_classes - 1}"
            )


def _void_where(frame: PanopticFrame, void_class: int) -> PanopticFrame:
    """Mark pixels of ``void_class`` as void (−1, instance 0)."""
    void = frame.semantic == void_class
    if not void.any():
        return frame
    return PanopticFrame(
        np.where(void, -1, frame.semantic).astype(np.int32),
        np.where(void, 0, frame.instance).astype(np.int32),
    )


def _check_shape(path: Path, actual: tuple[int, ...], shape: tuple[int, int]) -> None:
    """A prediction must have the ground truth's height and width."""
    if actual != shape:
        raise InputError(path, f"prediction shape {actual} does not match the ground truth {shape}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(file_digests: dict[str, str]) -> str:
    """One SHA-256 over the sorted ``<sha256>  <relative path>`` manifest of prediction files."""
    lines = "".join(f"{file_digests[name]}  {name}\n" for name in sorted(file_digests))
    return hashlib.sha256(lines.encode()).hexdigest()
