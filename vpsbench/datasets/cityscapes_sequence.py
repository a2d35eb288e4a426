"""Cityscapes ``leftImg8bit_sequence``: the unlabelled 30-frame snippets VideoCUPS trains on.

The paper (Sec. 4) pseudo-labels and trains on "the Cityscapes training sequences (2975 clips of
30 frames each)" and evaluates on Cityscapes-VPS val. ``leftImg8bit_sequence_trainvaltest.zip``
unpacks to::

    <root>/leftImg8bit_sequence/{train,val,test}/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png

``<root>`` is the Cityscapes root (the folder that holds ``leftImg8bit_sequence/``, as in
cityscapesScripts and CUPS), or the ``leftImg8bit_sequence`` folder itself. Resolve it like every
dataset root: ``--root``, then ``cityscapes-sequence = "/data/cityscapes"`` under ``[datasets]`` in
the config file, then ``$VPSBENCH_DATA/cityscapes-sequence``; ``run-method videocups`` also takes
``--set train_root=DIR``. Nothing is guessed from the Cityscapes-VPS root.

A *snippet* is the 30 consecutive frames around one gtFine image: gtFine frame F is the 20th
(index 19), so the snippet holds frames F−19 … F+10 (frame numbers are Cityscapes', not 0-based).
A sequence here is one snippet, named by its gtFine frame (``aachen_000000_000019``), with its
frames ordered by frame number; a frame's name is ``<city>_<seq>_<frame>`` (the file name without
``_leftImg8bit.png``). Snippets are found from the files alone: per city and sequence id the sorted
frame numbers are cut into windows of 30 that start at the first frame not yet taken. In train,
snippets of one sequence id are at least 31 frames apart, so on a complete copy this is exact (and
equals CUPS' cutting of the sorted files into 30s); a snippet that lost frames keeps the frames it
has and ``verify`` names the missing ones (one that lost its first frames starts later, so the
frames named missing are those after its end: the snippet is flagged either way).

There is no ground truth (unlabelled video): the loader yields images for the cue providers and
training, ``load_ground_truth`` refuses, and no class is evaluated. ``verify`` checks the snippet
counts per split (train 2975, val 500, test 1525; train per city from the 2975 gtFine train names
that CUPS lists in ``cups/data/utils.py``), missing frames, stray files, and that every frame
decodes and is 2048x1024 — it reads all 89,250 train files, so it takes a while on the real set.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from vpsbench.datasets.base import (
    ClassMappingRow,
    Dataset,
    DatasetFacts,
    LabelSpace,
    Problem,
)
from vpsbench.datasets.cityscapes_labels import cs19_label_space
from vpsbench.datasets.common import (
    check_split,
    image_size,
    problem,
    require_directory,
    require_root,
    size_text,
    subdirectories,
)
from vpsbench.datasets.registry import register_dataset
from vpsbench.errors import InputError, VpsbenchError
from vpsbench.video import FrameRef, PanopticFrame, SequenceRef

#: (height, width) of every Cityscapes frame.
RESOLUTION = (1024, 2048)
#: Frames per snippet, and the index of the gtFine (annotated) frame among them.
SNIPPET_LENGTH = 30
ANNOTATED_INDEX = 19
#: Official number of snippets (= gtFine images) per split.
SNIPPETS_PER_SPLIT = {"train": 2975, "val": 500, "test": 1525}
#: Snippets per city of the train split (counted from CUPS' list of the 2975 gtFine train images).
TRAIN_SNIPPETS_PER_CITY = {
    "aachen": 174,
    "bochum": 96,
    "bremen": 316,
    "cologne": 154,
    "darmstadt": 85,
    "dusseldorf": 221,
    "erfurt": 109,
    "hamburg": 248,
    "hanover": 196,
    "jena": 119,
    "krefeld": 99,
    "monchengladbach": 94,
    "strasbourg": 365,
    "stuttgart": 196,
    "tubingen": 144,
    "ulm": 95,
    "weimar": 142,
    "zurich": 122,
}
SEQUENCE_FOLDER = "leftImg8bit_sequence"
SUFFIX = "_leftImg8bit.png"
LAYOUT = f"{SEQUENCE_FOLDER}/{{train,val,test}}/<city>/<city>_<seq:06d>_<frame:06d>{SUFFIX}"

_FRAME_FILE = re.compile(r"(.+)_(\d{6})_(\d{6})_leftImg8bit\.png")


def frame_name(city: str, sequence_id: int, frame_number: int) -> str:
    """``<city>_<seq:06d>_<frame:06d>``: the Cityscapes name of a frame (file minus suffix)."""
    return f"{city}_{sequence_id:06d}_{frame_number:06d}"


@dataclass(frozen=True)
class Snippet:
    """One 30-frame window of a city's sequence id: where it starts and the frames on disk."""

    city: str
    sequence_id: int
    start: int
    frames: tuple[int, ...]  # frame numbers present, sorted, all in [start, start + 30)

    @property
    def name(self) -> str:
        """The snippet's id: the name of its gtFine frame (the 20th)."""
        return frame_name(self.city, self.sequence_id, self.start + ANNOTATED_INDEX)

    @property
    def missing(self) -> list[int]:
        """Frame numbers of the window that are not on disk."""
        present = set(self.frames)
        window = range(self.start, self.start + SNIPPET_LENGTH)
        return [number for number in window if number not in present]


def cut_snippets(city: str, sequence_id: int, frame_numbers: Iterable[int]) -> list[Snippet]:
    """Cut one sequence id's frames into 30-frame windows, each starting at the next free frame."""
    numbers = sorted(set(frame_numbers))
    snippets: list[Snippet] = []
    first = 0
    while first < len(numbers):
        start = numbers[first]
        end = first
        while end < len(numbers) and numbers[end] < start + SNIPPET_LENGTH:
            end += 1
        snippets.append(Snippet(city, sequence_id, start, tuple(numbers[first:end])))
        first = end
    return snippets


def list_city(folder: Path) -> tuple[list[Snippet], list[Path]]:
    """The snippets of one city folder, in name order, and the entries that are not its frames."""
    city = folder.name
    by_sequence: dict[int, list[int]] = defaultdict(list)
    strays: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _FRAME_FILE.fullmatch(entry.name)
            if match is None or match.group(1) != city or not entry.is_file():
                strays.append(Path(entry.path))
                continue
            by_sequence[int(match.group(2))].append(int(match.group(3)))
    snippets = [
        snippet
        for sequence_id in sorted(by_sequence)
        for snippet in cut_snippets(city, sequence_id, by_sequence[sequence_id])
    ]
    return snippets, sorted(strays)


def _frame_ranges(numbers: Sequence[int], limit: int = 6) -> str:
    """``000005, 000020–000029`` for a sorted list of frame numbers (first ``limit`` runs)."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    shown = ", ".join(f"{a:06d}" if a == b else f"{a:06d}–{b:06d}" for a, b in runs[:limit])
    return shown if len(runs) <= limit else f"{shown} … ({len(numbers)} frames in all)"


@register_dataset
class CityscapesSequence(Dataset):
    """Unlabelled Cityscapes video: 30-frame snippets around each gtFine image, no ground truth."""

    name = "cityscapes-sequence"
    description = (
        "Cityscapes leftImg8bit_sequence: unlabelled 30-frame snippets (VideoCUPS training video)"
    )
    facts = DatasetFacts(
        splits=("train", "val", "test"),
        resolution="2048x1024",
        annotated_frames="none (unlabelled video); the 20th frame of a snippet is the gtFine image",
        layout=LAYOUT,
        citation="Cordts et al., The Cityscapes Dataset for Semantic Urban Scene Understanding, "
        "CVPR 2016",
        extra={
            "snippets": "train 2975 (18 cities), val 500, test 1525; 30 frames each (17 Hz)",
            "sequence": "one snippet, named by its gtFine frame (aachen_000000_000019)",
            "root": "the Cityscapes root holding leftImg8bit_sequence/, or that folder itself",
            "used by": "videocups trains on its train split when evaluating cityscapes-vps",
        },
    )
    #: What ``verify`` expects: frame size (height, width) and snippet counts per split and city.
    resolution: ClassVar[tuple[int, int]] = RESOLUTION
    snippets_per_split: ClassVar[Mapping[str, int]] = SNIPPETS_PER_SPLIT
    snippets_per_city: ClassVar[Mapping[str, Mapping[str, int]]] = {
        "train": TRAIN_SNIPPETS_PER_CITY
    }

    def default_split(self) -> str:
        """``train``: the training video is what this dataset is for."""
        return "train"

    def label_space(self) -> LabelSpace:
        """Cityscapes' 19 trainIds with none evaluated: the frames carry no labels."""
        return cs19_label_space(evaluated=frozenset())

    def class_mapping(self) -> Sequence[ClassMappingRow]:
        """No native classes (unlabelled video)."""
        return []

    # -- layout ---------------------------------------------------------------------------------
    def sequence_dir(self) -> Path:
        """``<root>/leftImg8bit_sequence`` when it exists, else the root itself."""
        nested = self.root / SEQUENCE_FOLDER
        return nested if nested.is_dir() else self.root

    def _split_dir(self, split: str) -> Path:
        check_split(self.name, split, self.facts.splits)
        require_root(self.root, self.name, LAYOUT)
        return require_directory(self.sequence_dir() / split, self.name, LAYOUT)

    def snippets(self, split: str) -> dict[str, list[Snippet]]:
        """The snippets of every city folder of ``split`` (cities sorted by name)."""
        split_dir = self._split_dir(split)
        return {folder.name: list_city(folder)[0] for folder in subdirectories(split_dir)}

    def sequences(self, split: str) -> list[SequenceRef]:
        """One sequence per snippet, in name order; frames by frame number (index 0..29)."""
        return [
            SequenceRef(
                snippet.name,
                tuple(
                    FrameRef(
                        snippet.name,
                        frame_name(snippet.city, snippet.sequence_id, number),
                        number - snippet.start,
                    )
                    for number in snippet.frames
                ),
            )
            for snippets in self.snippets(split).values()
            for snippet in snippets
        ]

    def image_path(self, split: str, frame: FrameRef) -> Path | None:
        """``<split>/<city>/<name>_leftImg8bit.png``; the city is the name minus seq and frame."""
        check_split(self.name, split, self.facts.splits)
        city = frame.name.rsplit("_", 2)[0]
        return self.sequence_dir() / split / city / f"{frame.name}{SUFFIX}"

    def load_ground_truth(self, split: str, frame: FrameRef) -> PanopticFrame:
        """Refuse: the sequence frames are unlabelled (evaluate on cityscapes-vps instead)."""
        raise VpsbenchError(
            f"{self.name} is unlabelled training video: {frame.sequence}/{frame.name} has no "
            "ground truth (evaluate on cityscapes-vps)"
        )

    # -- verify ---------------------------------------------------------------------------------
    def verify(self, split: str) -> list[Problem]:
        """Snippet counts, missing frames, strays, and every frame readable at 2048x1024."""
        split_dir = self._split_dir(split)
        problems: list[Problem] = []
        by_city: dict[str, list[Snippet]] = {}
        for entry in sorted(split_dir.iterdir()):
            if not entry.is_dir():
                problems.append(Problem(str(entry), "not a city folder"))
                continue
            snippets, strays = list_city(entry)
            by_city[entry.name] = snippets
            expected_name = f"{entry.name}_<seq:06d>_<frame:06d>{SUFFIX}"
            problems += [Problem(str(path), f"not a frame ({expected_name})") for path in strays]
            for snippet in snippets:
                problems += self._check_snippet(entry, snippet)
        return problems + self._check_counts(split, split_dir, by_city)

    def _check_snippet(self, folder: Path, snippet: Snippet) -> list[Problem]:
        """All 30 frames present; each decodes and has the Cityscapes size."""
        problems: list[Problem] = []
        missing = snippet.missing
        if missing:
            first = folder / f"{frame_name(snippet.city, snippet.sequence_id, missing[0])}{SUFFIX}"
            problems.append(
                Problem(
                    str(first),
                    f"snippet {snippet.name} lacks {len(missing)} of its {SNIPPET_LENGTH} "
                    f"frames: {_frame_ranges(missing)}",
                )
            )
        for number in snippet.frames:
            path = folder / f"{frame_name(snippet.city, snippet.sequence_id, number)}{SUFFIX}"
            try:
                shape = image_size(path, check_data=True)
            except InputError as error:
                problems.append(problem(error))
                continue
            if shape != self.resolution:
                message = f"size {size_text(shape)}, expected {size_text(self.resolution)}"
                problems.append(Problem(str(path), message))
        return problems

    def _check_counts(
        self, split: str, split_dir: Path, by_city: Mapping[str, list[Snippet]]
    ) -> list[Problem]:
        """The split's snippet total and, where known, each city's count."""
        problems: list[Problem] = []
        total = sum(len(snippets) for snippets in by_city.values())
        expected_total = self.snippets_per_split.get(split)
        if expected_total is not None and total != expected_total:
            problems.append(
                Problem(
                    str(split_dir),
                    f"{total} snippets in {len(by_city)} cities, expected {expected_total}",
                )
            )
        per_city = self.snippets_per_city.get(split, {})
        for city, expected in sorted(per_city.items()):
            if city not in by_city:
                problems.append(
                    Problem(str(split_dir / city), f"missing city ({expected} snippets expected)")
                )
            elif len(by_city[city]) != expected:
                problems.append(
                    Problem(
                        str(split_dir / city),
                        f"{len(by_city[city])} snippets, expected {expected}",
                    )
                )
        if per_city:
            problems += [
                Problem(str(split_dir / city), f"not a Cityscapes {split} city")
                for city in sorted(set(by_city) - set(per_city))
            ]
        return problems
