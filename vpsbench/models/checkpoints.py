"""Load detectron2-layout checkpoints (U2Seg, CUPS, DINO backbones) into the models here.

Accepted files:

* ``.pth`` / ``.pt`` — ``torch.save`` of ``{"model": state_dict, ...}`` (detectron2 trainer
  output, e.g. U2Seg's checkpoints) or of a bare state dict;
* ``.ckpt`` — a PyTorch Lightning checkpoint ``{"state_dict": {"model.<name>": ...}}`` (CUPS'
  ``cups.ckpt``): leading ``model.`` prefixes are stripped (the Lightning module's, and a
  test-time-augmentation wrapper's second one) and the self-training teacher's
  ``teacher_model.*`` weights are dropped, as CUPS' own loader does;
* ``.pkl`` — a pickled ``{"model": {name: numpy array}}`` (detectron2's converted weights, e.g.
  the DINO ResNet-50 ``dino_RN50_pretrain_d2_format.pkl``); arrays become tensors and bare
  backbone names (``stem.*``, ``res2.*`` …) get the ``backbone.bottom_up.`` prefix.

All formats are pickles. They are read without running pickled code
(:func:`read_checkpoint_safely`): tensors, numpy arrays and plain containers are built, any other
pickled object (the yacs ``CfgNode`` CUPS keeps in a ``.ckpt``'s ``hyper_parameters``, an
OmegaConf config, …) becomes an inert placeholder. ``trust_pickle=True`` unpickles with the
file's own classes instead (only for files from a source you trust).

Everything that does not fit is reported at once in one :class:`CheckpointMismatchError`:
missing, unexpected and misshaped keys (with both shapes), plus the class counts the checkpoint's
predictor layers imply. BatchNorm's ``num_batches_tracked`` counters and stored
``pixel_mean``/``pixel_std`` are ignored (inference uses the config's normalisation).
"""

from __future__ import annotations

import _compat_pickle
import functools
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from vpsbench.cues.base import MissingWeightsError
from vpsbench.errors import InputError
from vpsbench.models.panoptic_cascade_rcnn import PanopticCascadeConfig, PanopticCascadeRCNN

CUPS_WEIGHTS = (
    "https://tudatalib.ulb.tu-darmstadt.de/handle/tudatalib/4532 "
    "(cups.ckpt: CUPS' final 27-pseudo-class model, github.com/visinf/cups README)"
)
U2SEG_WEIGHTS = (
    "https://github.com/u2seg/U2Seg (README, 'Demonstration' checkpoint table; "
    "800 clusters trained on COCO: cocotrain_800_0089999.pth)"
)
PUBLISHED_WEIGHTS = f"{CUPS_WEIGHTS} for CUPS; {U2SEG_WEIGHTS} for U2Seg"
PROVIDER = "panoptic-cascade-rcnn"

THING_PREDICTOR_KEY = "roi_heads.box_predictor.0.cls_score.bias"
MASK_PREDICTOR_KEY = "roi_heads.mask_head.predictor.bias"
STUFF_PREDICTOR_KEY = "sem_seg_head.predictor.bias"
BACKBONE_PREFIX = "backbone.bottom_up."
BARE_BACKBONE_PREFIXES = ("stem.", "res2.", "res3.", "res4.", "res5.")
IGNORED_KEYS = ("pixel_mean", "pixel_std")
LIST_LIMIT = 10


class CheckpointMismatchError(InputError):
    """A checkpoint's keys or shapes do not fit the model; lists every problem in one message."""


@dataclass(frozen=True)
class LoadReport:
    """What a load did: keys loaded, model keys left at their values, keys ignored on purpose."""

    path: Path
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    ignored: tuple[str, ...]


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> dict[str, Tensor]:
    """The state dict of a checkpoint file, names normalised to this package's (detectron2's)."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(PROVIDER, path, PUBLISHED_WEIGHTS)
    raw = _read_file(path, trust_pickle)
    state, _ = normalize_state_dict(_unwrap(raw, path), path)
    return state


def normalize_state_dict(
    raw: Mapping[str, Any], path: str | Path = "<state dict>"
) -> tuple[dict[str, Tensor], list[str]]:
    """Tensors under detectron2 names, and the keys dropped on purpose (teacher, BN counters)."""
    state: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in raw.items():
        name = key.removeprefix("module.")
        if name.startswith("teacher_model.") or name.endswith("num_batches_tracked"):
            ignored.append(key)
            continue
        while name.startswith("model."):  # Lightning module, then a TTA wrapper's ``model``
            name = name.removeprefix("model.")
        if name in IGNORED_KEYS:
            ignored.append(key)
            continue
        if name.startswith(BARE_BACKBONE_PREFIXES):
            name = BACKBONE_PREFIX + name
        state[name] = _to_tensor(value, key, path)
    return state, ignored


def infer_class_counts(state: Mapping[str, Tensor]) -> tuple[int, int]:
    """(thing, stuff) class counts from the predictor shapes, as CUPS' loader reads them."""
    if STUFF_PREDICTOR_KEY not in state or (
        THING_PREDICTOR_KEY not in state and MASK_PREDICTOR_KEY not in state
    ):
        raise KeyError(
            f"need {STUFF_PREDICTOR_KEY} and {THING_PREDICTOR_KEY} (or {MASK_PREDICTOR_KEY}) "
            "to infer class counts"
        )
    if THING_PREDICTOR_KEY in state:
        things = int(state[THING_PREDICTOR_KEY].shape[0]) - 1
    else:
        things = int(state[MASK_PREDICTOR_KEY].shape[0])
    return things, int(state[STUFF_PREDICTOR_KEY].shape[0]) - 1


def load_state_dict_checked(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    path: str | Path = "<state dict>",
    strict: bool = True,
    ignored: tuple[str, ...] = (),
) -> LoadReport:
    """Copy ``state`` into ``model``; any misfit (and, if ``strict``, any gap) raises at once."""
    expected = model.state_dict()
    missing = tuple(key for key in expected if key not in state)
    unexpected = tuple(key for key in state if key not in expected)
    misshaped = tuple(
        f"{key} checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in state.items()
        if key in expected and tuple(value.shape) != tuple(expected[key].shape)
    )
    if misshaped or (strict and (missing or unexpected)):
        raise CheckpointMismatchError(
            path, _mismatch_message(state, missing, unexpected, misshaped, strict)
        )
    loadable = {key: value for key, value in state.items() if key in expected}
    model.load_state_dict(loadable, strict=False)
    return LoadReport(Path(path), tuple(loadable), missing, unexpected, ignored)


def load_detectron2_checkpoint(
    model: nn.Module, path: str | Path, *, strict: bool = True, trust_pickle: bool = False
) -> LoadReport:
    """Load a detectron2 / CUPS / U2Seg checkpoint file into ``model`` (formats: module doc)."""
    # strict=False allows partial checkpoints (e.g. a backbone only); misshaped keys always
    # raise. A missing file raises MissingWeightsError naming where the weights are published.
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(PROVIDER, path, PUBLISHED_WEIGHTS)
    state, ignored = normalize_state_dict(_unwrap(_read_file(path, trust_pickle), path), path)
    return load_state_dict_checked(model, state, path=path, strict=strict, ignored=tuple(ignored))


def build_from_checkpoint(
    path: str | Path,
    preset: Literal["cups", "u2seg"] = "cups",
    *,
    overrides: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
) -> PanopticCascadeRCNN:
    """A ``preset`` model (plus config ``overrides``) with the checkpoint's class counts, loaded."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(PROVIDER, path, PUBLISHED_WEIGHTS)
    state, ignored = normalize_state_dict(_unwrap(_read_file(path, trust_pickle), path), path)
    try:
        things, stuff = infer_class_counts(state)
    except KeyError as error:
        raise CheckpointMismatchError(path, str(error.args[0])) from None
    presets: dict[str, Callable[[int, int], PanopticCascadeConfig]] = {
        "cups": PanopticCascadeConfig.cups,
        "u2seg": PanopticCascadeConfig.u2seg,
    }
    config = replace(presets[preset](things, stuff), **dict(overrides or {}))
    model = PanopticCascadeRCNN(config)
    load_state_dict_checked(model, state, path=path, strict=True, ignored=tuple(ignored))
    return model


class _Placeholder(dict[Any, Any]):
    """Stand-in for a pickled object of a class the weights do not need (configs, loggers, …).

    A dict, so that a pickled dict subclass (yacs' ``CfgNode``) can store its items; a list
    subclass's items go to ``items``; any other state is kept in ``state``. ``pickled_class``
    names the class it replaces (set on the subclass made for each pickled class).
    """

    pickled_class: ClassVar[str] = "pickled object"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()
        self.args = args

    def __setstate__(self, state: object) -> None:
        self.state = state

    def __call__(self, *args: object, **kwargs: object) -> _Placeholder:
        """Another placeholder: a pickled call of a pickled callable (``getattr(cls, name)()``)."""
        return type(self)(*args)

    def append(self, item: object) -> None:
        """Keep an item a pickled list subclass appends (pickle's APPEND)."""
        self.__dict__.setdefault("items", []).append(item)

    def extend(self, items: Iterable[object]) -> None:
        """Keep the items a pickled list subclass appends (pickle's APPENDS)."""
        for item in items:
            self.append(item)


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),  # protocol 2 (torch.save) pickles bytes, e.g. array data, with it
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _WeightsUnpickler(pickle.Unpickler):
    """Unpickler that builds tensors and arrays and replaces every other class by a placeholder."""

    def find_class(self, module: str, name: str) -> Any:
        """Real class for tensor/array plumbing, :class:`_Placeholder` for anything else."""
        # Python 2 names in protocol <= 2 pickles (``__builtin__.set``), mapped as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.startswith("numpy") and name.endswith("DType"):
            return super().find_class(module, name)
        return _placeholder_class(module, name)


@functools.cache
def _placeholder_class(module: str, name: str) -> type[_Placeholder]:
    """A :class:`_Placeholder` subclass named after the pickled class it stands for."""
    return type(name, (_Placeholder,), {"pickled_class": f"{module}.{name}"})


class _WeightsPickleModule:
    """The ``pickle_module`` given to ``torch.load`` for checkpoints with non-tensor objects."""

    Unpickler: ClassVar[type[pickle.Unpickler]] = _WeightsUnpickler

    @staticmethod
    def load(file: IO[bytes], **kwargs: Any) -> Any:
        """Unpickle with :class:`_WeightsUnpickler`."""
        return _WeightsUnpickler(file, **kwargs).load()


def read_checkpoint_safely(path: Path) -> Any:
    """Unpickle a checkpoint without running its code: detectron2 ``.pkl`` or a torch file.

    Only tensors, numpy arrays and plain containers are built; any other pickled object (the
    hydra config a Lightning ``.ckpt`` keeps in ``hyper_parameters``, …) becomes an inert
    placeholder, so no ``trust_pickle`` is needed and the config's package need not exist.
    """
    try:
        if path.suffix == ".pkl":
            with path.open("rb") as handle:
                return _WeightsUnpickler(handle, encoding="latin1").load()
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_WeightsPickleModule
            )
    except (
        pickle.UnpicklingError,
        OSError,
        EOFError,
        RuntimeError,
        ValueError,
        TypeError,
        AttributeError,
    ) as error:
        raise InputError(path, f"cannot read checkpoint ({error})") from None


def tensor_state_dict(
    state: Mapping[Any, object], path: Path, ignore: Callable[[str], bool]
) -> dict[str, Tensor]:
    """String keys to tensors (numpy arrays converted), skipping ``ignore``d keys."""
    tensors: dict[str, Tensor] = {}
    for key, value in state.items():
        name = str(key)
        if ignore(name):
            continue
        if isinstance(value, Tensor):
            tensors[name] = value
        elif isinstance(value, np.ndarray | np.generic):
            tensors[name] = torch.from_numpy(np.array(value))
        else:
            raise CheckpointMismatchError(path, f"{name} is a {type(value).__name__}, not a tensor")
    return tensors


def _read_file(path: Path, trust_pickle: bool) -> object:
    """The unpickled file: safely (no pickled code runs) unless ``trust_pickle``."""
    if not trust_pickle:
        return read_checkpoint_safely(path)
    try:
        if path.suffix == ".pkl":
            with path.open("rb") as handle:
                return pickle.load(handle, encoding="latin1")
        return torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, OSError, EOFError, RuntimeError, ValueError) as error:
        raise InputError(path, f"cannot read checkpoint ({error})") from None


def _unwrap(raw: object, path: Path) -> Mapping[str, Any]:
    """The state dict inside a checkpoint: ``model``, Lightning's ``state_dict`` or the file."""
    if isinstance(raw, _Placeholder) or not isinstance(raw, Mapping):
        kind = getattr(raw, "pickled_class", type(raw).__name__)
        raise InputError(path, f"checkpoint is a {kind}, expected a dict of weights")
    for wrapper in ("model", "state_dict"):
        inner = raw.get(wrapper)
        if isinstance(inner, Mapping) and not isinstance(inner, _Placeholder):
            return inner
    return raw


def _to_tensor(value: object, key: str, path: str | Path) -> Tensor:
    """A tensor from a tensor or numpy array value of a state dict."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return torch.from_numpy(np.array(value))
    raise InputError(path, f"{key}: expected a tensor or numpy array, got {type(value).__name__}")


def _mismatch_message(
    state: Mapping[str, Tensor],
    missing: tuple[str, ...],
    unexpected: tuple[str, ...],
    misshaped: tuple[str, ...],
    strict: bool,
) -> str:
    """One line naming every problem (first ten of each kind) and the implied class counts."""
    parts = ["checkpoint does not fit the model"]
    problems = [("misshaped", misshaped)]
    if strict:
        problems = [("missing", missing), ("unexpected", unexpected), *problems]
    for kind, keys in problems:
        if keys:
            listed = ", ".join(keys[:LIST_LIMIT])
            more = f" … and {len(keys) - LIST_LIMIT} more" if len(keys) > LIST_LIMIT else ""
            parts.append(f"{kind} keys ({len(keys)}): {listed}{more}")
    try:
        things, stuff = infer_class_counts(state)
    except KeyError:
        pass
    else:
        parts.append(
            f"the checkpoint has {things} thing and {stuff} stuff classes — build the model with "
            f"num_thing_classes={things}, num_stuff_classes={stuff}"
        )
    return "; ".join(parts)
