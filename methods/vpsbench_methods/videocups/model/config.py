"""Training configs of VideoCUPS stage 2: YAML files whose sections name every hyper-parameter.

A config file (``methods/vpsbench_methods/videocups/configs/{small,paper}.yaml``, or any path) has
the sections
``model``, ``data``, ``loss`` (:class:`~vpsbench_methods.videocups.model.losses.LossConfig`),
``augment``, ``copy_paste`` (:class:`~vpsbench_methods.videocups.model.copy_paste.CopyPasteConfig`),
``optim`` (:class:`~vpsbench_methods.videocups.model.trainer.TrainLoopConfig`), ``tracker``
(:class:`~vpsbench_methods.videocups.model.tracking.TrackerConfig`) and ``evaluation``. A missing
key takes
the dataclass default; an unknown key is an error. ``SECTION.KEY=VALUE`` overrides apply last.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpsbench.errors import VpsbenchError
from vpsbench.methods.base import build_config, read_config_file
from vpsbench_methods.videocups.model.copy_paste import CopyPasteConfig
from vpsbench_methods.videocups.model.losses import LossConfig
from vpsbench_methods.videocups.model.tracking import TrackerConfig
from vpsbench_methods.videocups.model.trainer import TrainLoopConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
ARCHITECTURES = ("small", "paper")
COPY_PASTE_MODES = ("none", "plain", "self-enhanced")


@dataclass(frozen=True)
class ModelSettings:
    """Which network, its initialisation, and the resolution it trains and predicts at."""

    architecture: str = "small"  # small | paper (ResNet-50 FPN, 3 cascade stages)
    backbone_weights: Path | None = None  # DINO ResNet-50 checkpoint (required by "paper")
    embed_dim: int = 1024  # tracking embedding (MaskTrack R-CNN: fc_out_channels 1024)
    track_norm_scale: float = 0.0  # > 0: unit embeddings times sqrt(scale) (ours); 0: MaskTrack
    input_height: int = 0  # network input size; 0 = the dataset's frame size
    input_width: int = 0
    # RPN anchor side per FPN level p2..p6; empty = detectron2's (32..512, for ~1000-px inputs).
    # Scale them with the input: objects smaller than a level's anchor are found only through
    # low-quality matches.
    anchor_sizes: tuple[float, ...] = ()
    score_threshold: float = 0.5  # detection and panoptic-fusion score threshold (CUPS: 0.5)
    stuff_area_threshold: int = 0  # panoptic fusion: smallest stuff region kept (pixels)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise VpsbenchError(f"model.architecture must be one of {ARCHITECTURES}")
        if (self.input_height == 0) != (self.input_width == 0):
            raise VpsbenchError("model.input_height and model.input_width: set both or neither")
        if self.input_height % 32 or self.input_width % 32:
            raise VpsbenchError("model.input_height/input_width must be multiples of 32")
        if self.anchor_sizes and (len(self.anchor_sizes) != 5 or min(self.anchor_sizes) <= 0):
            raise VpsbenchError("model.anchor_sizes: five positive sizes (p2..p6), or empty")


@dataclass(frozen=True)
class DataSettings:
    """How training clips are drawn from the pseudo-labelled split."""

    clip_length: int = 2  # consecutive frames per clip (Video DropLoss: two, Sec. 3.2)
    clips_per_step: int = 2  # clips per process and step
    epochs: float = 8.0  # passes over all clips (paper: eight epochs)
    horizontal_flip: float = 0.5  # probability of flipping a whole clip
    min_instance_area: int = 4  # instances smaller than this at input resolution are dropped
    # Ours: instances that hold no min_instance_width × min_instance_width square of pixels at
    # input resolution are dropped (0 or 1: off). Motion/depth region growing leaves 1-px
    # slivers along object boundaries; as targets they teach the detector to find lines.
    min_instance_width: int = 0
    # CUPS' augmentation, the same geometric transform for every frame of a clip: a random
    # resized crop of a fraction of the area in crop_scale (CUPS: 0.7 to 1; 1 to 1 = off), one
    # training size per step of input size × a scale from jitter_scales (CUPS RESOLUTIONS:
    # 640×1280 × 0.6, 0.65, …, 1.1; empty = off), and photometric augmentation (blur, colour
    # jitter, grayscale).
    crop_scale: tuple[float, float] = (1.0, 1.0)
    jitter_scales: tuple[float, ...] = ()
    photometric: bool = False

    def __post_init__(self) -> None:
        if self.clip_length < 1 or self.clips_per_step < 1 or self.epochs <= 0:
            raise VpsbenchError("data: clip_length, clips_per_step and epochs must be positive")
        if self.min_instance_area < 0 or self.min_instance_width < 0:
            raise VpsbenchError("data: min_instance_area and min_instance_width must be >= 0")
        low, high = (float(v) for v in self.crop_scale)
        if len(self.crop_scale) != 2 or not 0.0 < low <= high <= 1.0:
            raise VpsbenchError("data.crop_scale: two area fractions 0 < low <= high <= 1")
        if any(float(scale) <= 0.0 for scale in self.jitter_scales):
            raise VpsbenchError("data.jitter_scales: positive scales of the input size")


@dataclass(frozen=True)
class AugmentSettings:
    """Which copy-paste augmentation runs (the paper's Table 4 rows)."""

    copy_paste: str = (
        "self-enhanced"  # none | plain (pseudo-labels) | self-enhanced (+ predictions)
    )
    self_enhance_start: float = 0.25  # fraction of training before the model's own tracks are used

    def __post_init__(self) -> None:
        if self.copy_paste not in COPY_PASTE_MODES:
            raise VpsbenchError(f"augment.copy_paste must be one of {COPY_PASTE_MODES}")
        if not 0.0 <= self.self_enhance_start <= 1.0:
            raise VpsbenchError("augment.self_enhance_start must be in [0, 1]")


@dataclass(frozen=True)
class EvaluationSettings:
    """Periodic evaluation during training (every ``optim.eval_every`` steps)."""

    sequences: int = 2  # val sequences predicted and scored (0 = all)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything stage 2 needs; ``optim.steps = 0`` means "from ``data.epochs``"."""

    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    copy_paste: CopyPasteConfig = field(default_factory=CopyPasteConfig)
    optim: Mapping[str, Any] = field(default_factory=dict)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    source: str = ""

    def loop(self, num_clips: int, world_size: int = 1) -> TrainLoopConfig:
        """The training-loop config; without ``optim.steps`` the steps come from the epochs."""
        values = dict(self.optim)
        if int(values.get("steps", 0) or 0) <= 0:
            clips_per_step = self.data.clips_per_step * world_size
            values["steps"] = max(1, round(self.data.epochs * num_clips / clips_per_step))
        return build_config(TrainLoopConfig, values)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (for run.json and checkpoint fingerprints)."""
        plain: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self), default=str))
        return plain


_SECTIONS: dict[str, type[Any]] = {
    "model": ModelSettings,
    "data": DataSettings,
    "loss": LossConfig,
    "augment": AugmentSettings,
    "copy_paste": CopyPasteConfig,
    "tracker": TrackerConfig,
    "evaluation": EvaluationSettings,
}


def config_path(name_or_path: str) -> Path:
    """A bundled config by name (``small``, ``paper``) or a YAML file path."""
    bundled = CONFIG_DIR / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    path = Path(name_or_path)
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise VpsbenchError(f"training config {name_or_path!r}: no such file or bundled ({names})")
    return path


def load_training_config(name_or_path: str, overrides: Sequence[str] = ()) -> TrainingConfig:
    """Read a training config file and apply ``SECTION.KEY=VALUE`` overrides."""
    path = config_path(name_or_path)
    raw = read_config_file(path)
    unknown = set(raw) - set(_SECTIONS) - {"optim"}
    if unknown:
        raise VpsbenchError(f"{path}: unknown sections {sorted(unknown)}")
    per_section: dict[str, list[str]] = {name: [] for name in (*_SECTIONS, "optim")}
    for override in overrides:
        key, sep, value = override.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in per_section:
            raise VpsbenchError(
                f"training override {override!r}: expected SECTION.KEY=VALUE with SECTION one of "
                f"{sorted(per_section)}"
            )
        known = {item.name for item in dataclasses.fields(_SECTIONS.get(section, TrainLoopConfig))}
        if name not in known:
            raise VpsbenchError(
                f"training override {override!r}: section {section!r} has no setting {name!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        per_section[section].append(f"{name}={value}")
    built: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise VpsbenchError(f"{path}: section {section!r} must be a mapping")
        try:
            built[section] = build_config(cls, values, per_section[section])
        except TypeError as error:
            raise VpsbenchError(f"{path}: section {section!r}: {error}") from None
    raw_optim = raw.get("optim") or {}
    if not isinstance(raw_optim, dict):
        raise VpsbenchError(f"{path}: section 'optim' must be a mapping")
    optim: dict[str, Any] = dict(raw_optim)
    for pair in per_section["optim"]:
        name, _, value = pair.partition("=")
        optim[name] = value
    steps = int(optim.get("steps", 0) or 0)
    checked = build_config(TrainLoopConfig, {**optim, "steps": steps or 10**6})
    optim = dataclasses.asdict(checked) | {"steps": steps}  # typed values; 0 = from the epochs
    return TrainingConfig(**built, optim=optim, source=str(path))
