"""A model-agnostic training loop for VideoCUPS stage 2 (training on pseudo-labels).

The loop knows nothing about the network or the data: a :data:`StepFunction` computes the named
losses of one step for this rank's share of the batch, and the :class:`Trainer` does the rest —
AdamW, a warmup + decay learning-rate schedule, mixed precision on CUDA, gradient clipping,
checkpoints with exact resume, periodic evaluation, DDP (``torchrun``) and logs in the run folder.

Exact resume rests on one rule: everything random in step ``s`` on rank ``r`` comes from
:attr:`StepContext.generator`, seeded from ``(seed, s, r)`` alone, and the caller's data is a pure
function of ``(s, r, world_size)``. A resumed run therefore repeats the uninterrupted run bit for
bit (on the same hardware), however many steps ran before the interruption. The global RNGs
(``random``, numpy, torch) are checkpointed and restored as well, for code that still uses them.

Files in ``run_dir``: ``checkpoints/step_{step:08d}.pt`` (the newest ``keep_checkpoints``),
``model_final.pt`` (the final model's state dict), ``train.log`` (human lines) and
``metrics.jsonl`` (one JSON object per logged step or evaluation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR

from vpsbench.errors import VpsbenchError
from vpsbench.formats.atomic import atomic_write, atomic_write_text

SCHEDULES = ("constant", "cosine", "step", "poly")
AMP_DTYPES = ("float16", "bfloat16")
CHECKPOINT_FORMAT = 1
"""Version of the checkpoint dictionary layout (key ``format``)."""

# Loop settings that only change bookkeeping; the others change the numbers, so a resumed run
# must use the same values as the run that wrote the checkpoint.
_BOOKKEEPING_FIELDS = frozenset({"checkpoint_every", "keep_checkpoints", "eval_every", "log_every"})
_CHECKPOINT_NAME = re.compile(r"step_(\d{8,})\.pt")


@dataclass(frozen=True)
class TrainLoopConfig:
    """Optimiser, schedule and bookkeeping settings of a training run (all steps are updates).

    The learning rate of update ``s`` (0-based) is ``lr · warmup(s) · schedule(s)``:
    ``warmup(s) = warmup_factor + (1 - warmup_factor) · s / warmup_steps`` for
    ``s < warmup_steps`` (else 1), and ``schedule(s)`` is 1 (``constant``),
    ``(1 + cos(π s / steps)) / 2`` (``cosine``), ``gamma ** #{m in milestones: s ≥ m · steps}``
    (``step``) or ``(1 - s / steps) ** poly_power`` (``poly``).
    """

    steps: int
    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    warmup_factor: float = 0.001
    schedule: str = "constant"
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    poly_power: float = 0.9
    grad_clip_norm: float = 0.0
    amp: bool = True
    amp_dtype: str = "float16"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    eval_every: int = 0
    log_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject values the loop cannot run with, naming the setting."""
        ints = {
            "steps": 1,
            "warmup_steps": 0,
            "checkpoint_every": 1,
            "keep_checkpoints": 1,
            "eval_every": 0,
            "log_every": 1,
            "seed": 0,
        }
        for name, minimum in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise VpsbenchError(f"train loop: {name}={value!r} must be an integer ≥ {minimum}")
        floats = ("lr", "weight_decay", "warmup_factor", "gamma", "poly_power", "grad_clip_norm")
        for name in floats:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise VpsbenchError(f"train loop: {name}={value!r} must be a number")
            if not math.isfinite(value):
                raise VpsbenchError(f"train loop: {name}={value!r} must be finite")
        if self.lr <= 0:
            raise VpsbenchError(f"train loop: lr={self.lr!r} must be > 0")
        if self.weight_decay < 0:
            raise VpsbenchError(f"train loop: weight_decay={self.weight_decay!r} must be ≥ 0")
        if not 0 < self.warmup_factor <= 1:
            raise VpsbenchError(
                f"train loop: warmup_factor={self.warmup_factor!r} must be in (0, 1]"
            )
        if self.gamma <= 0:
            raise VpsbenchError(f"train loop: gamma={self.gamma!r} must be > 0")
        if self.poly_power <= 0:
            raise VpsbenchError(f"train loop: poly_power={self.poly_power!r} must be > 0")
        if self.grad_clip_norm < 0:
            raise VpsbenchError(
                f"train loop: grad_clip_norm={self.grad_clip_norm!r} must be ≥ 0 (0 = off)"
            )
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(
            isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 1 for b in betas
        ):
            raise VpsbenchError(f"train loop: betas={self.betas!r} must be two numbers in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise VpsbenchError(
                f"train loop: schedule={self.schedule!r} must be one of {', '.join(SCHEDULES)}"
            )
        milestones = tuple(self.milestones)
        if not all(
            isinstance(m, int | float) and not isinstance(m, bool) and 0 < m < 1 for m in milestones
        ) or list(milestones) != sorted(milestones):
            raise VpsbenchError(
                f"train loop: milestones={self.milestones!r} must be increasing fractions of "
                "steps in (0, 1)"
            )
        if self.schedule == "step" and not milestones:
            raise VpsbenchError("train loop: schedule='step' needs milestones (fractions of steps)")
        if not isinstance(self.amp, bool):
            raise VpsbenchError(f"train loop: amp={self.amp!r} must be true or false")
        if self.amp_dtype not in AMP_DTYPES:
            raise VpsbenchError(
                f"train loop: amp_dtype={self.amp_dtype!r} must be one of {', '.join(AMP_DTYPES)}"
            )


def lr_multiplier(config: TrainLoopConfig, step: int) -> float:
    """Factor of ``config.lr`` for the 0-based update ``step`` (warmup times the schedule)."""
    progress = step / config.steps
    if config.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif config.schedule == "step":
        factor = config.gamma ** sum(1 for m in config.milestones if step >= m * config.steps)
    elif config.schedule == "poly":
        factor = max(0.0, 1.0 - progress) ** config.poly_power
    else:
        factor = 1.0
    if step < config.warmup_steps:
        alpha = step / config.warmup_steps
        factor *= config.warmup_factor + (1.0 - config.warmup_factor) * alpha
    return factor


NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)
"""Layers whose parameters get no weight decay (torchvision's ``split_normalization_params``)."""


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups as CUPS builds them: norm-layer parameters without weight decay, the rest with.

    CUPS' ``configure_optimizers`` splits the parameters with torchvision's
    ``split_normalization_params`` (a leaf module's trainable parameters go to the norm group if
    it is a norm layer, a parent's own to the other group) and gives the norm group weight decay
    0; empty groups are left out.
    """
    norm: list[nn.Parameter] = []
    other: list[nn.Parameter] = []
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        is_leaf = next(module.children(), None) is None
        (norm if is_leaf and isinstance(module, NORM_LAYERS) else other).extend(own)
    groups = [
        {"params": params, "weight_decay": decay}
        for params, decay in ((norm, 0.0), (other, weight_decay))
        if params
    ]
    return groups


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """A CPU generator whose stream is a function of ``(seed, step, rank)`` only.

    The three numbers go through numpy's ``SeedSequence`` so that neighbouring steps and ranks
    get unrelated streams. Draw on the CPU and move the result to the device: the numbers are then
    the same on every kind of device.
    """
    state = np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0]
    generator = torch.Generator()
    generator.manual_seed(int(state))
    return generator


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from ``torchrun``'s environment; (0, 1, 0) without it."""

    def read(name: str, default: int) -> int:
        text = os.environ.get(name, "")
        try:
            return int(text) if text else default
        except ValueError:
            raise VpsbenchError(f"environment variable {name}={text!r} is not an integer") from None

    return read("RANK", 0), read("WORLD_SIZE", 1), read("LOCAL_RANK", 0)


@dataclass
class StepContext:
    """What a step function may use: the step, its rank, its seeded generator and the device."""

    step: int  # 0-based update index
    rank: int
    world_size: int
    generator: torch.Generator  # CPU, seeded from (seed, step, rank): all of the step's randomness
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]  # wrap the forward in it


StepFunction = Callable[[nn.Module, StepContext], dict[str, Tensor]]
"""Named scalar losses of one step for this rank's share of the batch.

The model may be wrapped in ``DistributedDataParallel``: call it (``model(...)``), not
``model.module``, so that the gradients are averaged over the ranks.
"""


@dataclass
class TrainSummary:
    """What one :meth:`Trainer.fit` call did."""

    final_step: int  # updates done in the whole run so far
    steps_run: int  # updates done in this call
    seconds: float
    images_per_second: float  # over all ranks
    last_losses: dict[str, float]  # this rank's losses of the last step of this call (+ "total")
    peak_memory_bytes: int  # CUDA max_memory_allocated, else the process's peak RSS
    checkpoint: Path | None  # the newest checkpoint


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT_NAME.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :class:`Trainer`, read with ``weights_only=True`` (no code runs)."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to read is the same problem for the user
        raise VpsbenchError(f"{path}: cannot read the checkpoint: {error}") from None
    if not isinstance(loaded, dict) or loaded.get("format") != CHECKPOINT_FORMAT:
        raise VpsbenchError(f"{path}: not a training checkpoint of this version")
    return loaded


def _canonical(value: Mapping[str, object] | None) -> str:
    """A stable text form of a fingerprint, for storing and comparing."""
    return json.dumps(dict(value or {}), sort_keys=True, default=str)


def _finite_or_none(value: float) -> float | None:
    """``value`` for JSON, with NaN and infinities as ``null`` (they are not JSON)."""
    return value if math.isfinite(value) else None


def _rng_state(cuda: bool) -> dict[str, Any]:
    """The global RNG states as tensors, lists and numbers (loadable with ``weights_only``)."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": [int(k) for k in numpy_state["state"]["key"]],
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else None,
    }


def _set_rng_state(state: Mapping[str, Any], cuda: bool) -> None:
    """Restore what :func:`_rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": saved["bit_generator"],
            "state": {"key": np.asarray(saved["key"], dtype=np.uint32), "pos": saved["pos"]},
            "has_gauss": saved["has_gauss"],
            "gauss": saved["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if cuda and state.get("cuda") is not None and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA memory of ``device``, else the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, else KiB


class Trainer:
    """Trains ``model`` with ``step_fn`` for ``config.steps`` updates, resuming from ``run_dir``.

    If ``run_dir/checkpoints`` holds checkpoints, construction loads the newest one (model,
    optimiser, scheduler, grad scaler, step); the first :meth:`fit` restores the global RNG
    states and rewrites ``metrics.jsonl`` to the checkpoint's history, then carries on.
    ``config_fingerprint`` (e.g. the data and model settings) must equal the checkpoint's.
    Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DDP and only rank 0 writes.
    ``images_per_step`` counts the images of one update over all ranks (for images/s only).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainLoopConfig,
        run_dir: Path,
        step_fn: StepFunction,
        *,
        evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None = None,
        images_per_step: int = 1,
        device: str | torch.device = "cpu",
        log: Callable[[str], None] = print,
        config_fingerprint: Mapping[str, object] | None = None,
    ) -> None:
        if images_per_step < 1:
            raise VpsbenchError(f"images_per_step={images_per_step} must be ≥ 1")
        self.config = config
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self._step_fn = step_fn
        self._evaluate = evaluate
        self._images_per_step = images_per_step
        self._log = log
        self._fingerprint = _canonical(config_fingerprint)

        self._owns_process_group = False
        self.device = torch.device(device)
        self.rank, self.world_size, local_rank = self._init_distributed(self.device.type == "cuda")
        self._saved_world_size = self.world_size
        if self.device.type == "cuda":
            if self.device.index is None:
                self.device = torch.device("cuda", local_rank if self.world_size > 1 else 0)
            torch.cuda.set_device(self.device)
        self.is_main = self.rank == 0

        self._model = model.to(self.device)
        use_amp = config.amp and self.device.type == "cuda"
        amp_dtype = torch.float16 if config.amp_dtype == "float16" else torch.bfloat16
        self._autocast: Callable[[], contextlib.AbstractContextManager[Any]] = (
            partial(torch.autocast, device_type="cuda", dtype=amp_dtype)
            if use_amp
            else contextlib.nullcontext
        )
        scaler_device = "cuda" if self.device.type == "cuda" else "cpu"
        self._scaler = torch.amp.GradScaler(
            scaler_device, enabled=use_amp and amp_dtype == torch.float16
        )
        self._params = [p for p in self._model.parameters() if p.requires_grad]
        if not self._params:
            raise VpsbenchError("the model has no trainable parameters")
        self._optimizer = torch.optim.AdamW(
            parameter_groups(self._model, config.weight_decay),
            lr=config.lr,
            betas=(float(config.betas[0]), float(config.betas[1])),
            weight_decay=config.weight_decay,
        )
        self._scheduler = LambdaLR(self._optimizer, partial(lr_multiplier, config))

        self._step = 0
        self._history: list[dict[str, Any]] = []
        self._resumed_from: Path | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._prepared = False
        found = list_checkpoints(self.checkpoint_dir)
        if found:
            self._load(found[-1][1])
        self._checkpoint: Path | None = found[-1][1] if found else None

        self._wrapped: nn.Module = self._model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self._wrapped = DistributedDataParallel(self._model, device_ids=device_ids)

    # -- public -----------------------------------------------------------------------------

    @property
    def unwrapped_model(self) -> nn.Module:
        """The model itself (not the DDP wrapper), e.g. for saving or evaluation."""
        return self._model

    @property
    def model(self) -> nn.Module:
        """The model the step function gets: DDP-wrapped under ``torchrun``, else the model."""
        return self._wrapped

    @property
    def step(self) -> int:
        """Updates done so far in the whole run."""
        return self._step

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The AdamW optimiser."""
        return self._optimizer

    @property
    def scheduler(self) -> LambdaLR:
        """The learning-rate scheduler (stepped once per update)."""
        return self._scheduler

    def fit(self, stop_after: int | None = None) -> TrainSummary:
        """Train up to ``config.steps`` updates (or ``stop_after`` more, to simulate a crash)."""
        if stop_after is not None and stop_after < 0:
            raise VpsbenchError(f"stop_after={stop_after} must be ≥ 0")
        self._prepare()
        config = self.config
        self._wrapped.train()
        start = window_start = time.perf_counter()
        steps_run = window_steps = 0
        last: dict[str, Tensor] = {}
        while self._step < config.steps and (stop_after is None or steps_run < stop_after):
            index = self._step
            losses, total, grad_norm, lr = self._run_step(index)
            self._step = done = index + 1
            steps_run += 1
            window_steps += 1
            last = {**losses, "total": total}
            final = done == config.steps
            if done % config.log_every == 0 or final:
                now = time.perf_counter()
                self._log_step(done, losses, total, grad_norm, lr, window_steps, now - window_start)
                window_start, window_steps = time.perf_counter(), 0
            if (
                self._evaluate is not None
                and config.eval_every
                and (done % config.eval_every == 0 or final)
            ):
                self._run_evaluation(done)
            if done % config.checkpoint_every == 0 or final:
                self._save_checkpoint()
        if self._step >= config.steps:
            if self.is_main:
                with atomic_write(self.run_dir / "model_final.pt") as handle:
                    torch.save(self._model.state_dict(), handle)
            self._barrier()
        seconds = time.perf_counter() - start
        images = steps_run * self._images_per_step
        return TrainSummary(
            final_step=self._step,
            steps_run=steps_run,
            seconds=seconds,
            images_per_second=images / seconds if seconds > 0 else 0.0,
            last_losses={name: float(value.item()) for name, value in last.items()},
            peak_memory_bytes=_peak_memory_bytes(self.device),
            checkpoint=self._checkpoint,
        )

    def close(self) -> None:
        """Destroy the process group if this trainer created it."""
        if self._owns_process_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_process_group = False

    # -- set-up and resume ------------------------------------------------------------------

    def _init_distributed(self, cuda: bool) -> tuple[int, int, int]:
        """(rank, world, local rank); starts the process group under ``torchrun`` if needed."""
        rank, world, local_rank = distributed_env()
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size(), local_rank
        if world > 1:
            if not dist.is_available():
                raise VpsbenchError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
            dist.init_process_group(backend="nccl" if cuda else "gloo")
            self._owns_process_group = True
            return dist.get_rank(), dist.get_world_size(), local_rank
        return rank, 1, local_rank

    def _load(self, path: Path) -> None:
        """Load a checkpoint into the model, optimiser, scheduler and scaler; checks it fits."""
        state = load_checkpoint(path)
        if state.get("fingerprint") != self._fingerprint:
            differences = _fingerprint_differences(str(state.get("fingerprint")), self._fingerprint)
            raise VpsbenchError(
                f"{path}: the checkpoint was written with another configuration "
                f"({differences}); use a new run directory or the original settings"
            )
        ours = self._math_config()
        theirs = {k: v for k, v in dict(state["config"]).items() if k not in _BOOKKEEPING_FIELDS}
        if json.loads(json.dumps(theirs)) != json.loads(json.dumps(ours)):
            changed = sorted(k for k in ours if theirs.get(k) != ours[k])
            raise VpsbenchError(
                f"{path}: the training-loop settings {', '.join(changed)} differ from the "
                "checkpoint's; resuming would not repeat the run"
            )
        self._model.load_state_dict(state["model"])
        try:
            self._optimizer.load_state_dict(state["optimizer"])
        except ValueError as error:  # e.g. one parameter group, from before the norm split
            raise VpsbenchError(f"{path}: the optimiser state does not fit ({error})") from None
        self._scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self._scaler.load_state_dict(state["scaler"])
        self._step = int(state["step"])
        self._history = list(state["history"])
        self._pending_rng = state["rng"]
        self._resumed_from = path
        self._saved_world_size = int(state.get("world_size", 1))

    def _math_config(self) -> dict[str, Any]:
        """The loop settings that change the numbers (a resume must keep them)."""
        values = dataclasses.asdict(self.config)
        return {k: v for k, v in values.items() if k not in _BOOKKEEPING_FIELDS}

    def _prepare(self) -> None:
        """Once per trainer: restore RNGs and rewrite metrics.jsonl to the checkpoint's history."""
        if self._prepared:
            return
        self._prepared = True
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng, self.device.type == "cuda")
            self._pending_rng = None
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            lines = "".join(json.dumps(record) + "\n" for record in self._history)
            atomic_write_text(self.run_dir / "metrics.jsonl", lines)
            if self._resumed_from is not None:
                self._write_log(f"resumed from {self._resumed_from} at step {self._step}")
                if self._saved_world_size != self.world_size:
                    self._write_log(
                        f"warning: the checkpoint was written with {self._saved_world_size} "
                        f"processes, this run has {self.world_size}: not an exact resume"
                    )
            else:
                self._write_log(
                    f"training {self.config.steps} steps on {self.world_size} process(es), "
                    f"device {self.device}"
                )
        self._barrier()

    # -- one update -------------------------------------------------------------------------

    def _run_step(self, index: int) -> tuple[dict[str, Tensor], Tensor, Tensor, float]:
        """Forward, checks, backward, unscale, clip and update; returns losses, norm and lr."""
        context = StepContext(
            step=index,
            rank=self.rank,
            world_size=self.world_size,
            generator=step_generator(self.config.seed, index, self.rank),
            device=self.device,
            autocast=self._autocast,
        )
        self._optimizer.zero_grad(set_to_none=True)
        losses = self._step_fn(self._wrapped, context)
        total = self._total_loss(losses, index)
        scaled: Tensor = self._scaler.scale(total)
        scaled.backward()  # type: ignore[no-untyped-call]
        self._scaler.unscale_(self._optimizer)
        grads = [p.grad for p in self._params if p.grad is not None]
        if self.config.grad_clip_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self._params, self.config.grad_clip_norm)
        elif grads:
            grad_norm = torch.nn.utils.get_total_norm(grads)
        else:
            grad_norm = torch.zeros((), device=self.device)
        lr = float(self._optimizer.param_groups[0]["lr"])
        self._scaler.step(self._optimizer)
        self._scaler.update()
        self._scheduler.step()
        detached = {name: value.detach() for name, value in losses.items()}
        return detached, total.detach(), grad_norm.detach(), lr

    def _total_loss(self, losses: Mapping[str, Tensor], index: int) -> Tensor:
        """The sum of the losses in float32; raises on a malformed or non-finite loss."""
        if not isinstance(losses, Mapping) or not losses:
            raise VpsbenchError(f"step {index}: the step function returned no losses")
        for name, value in losses.items():
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise VpsbenchError(f"step {index}: loss {name!r} is not a scalar tensor")
        values = [value.reshape(()).float() for value in losses.values()]
        total = torch.stack(values).sum()
        finite = torch.isfinite(total)
        if self.world_size > 1:  # every rank must stop, or the others hang in backward
            flag = (~finite).to(torch.int32)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            finite = flag == 0
        if not bool(finite.item()):
            bad = [name for name, value in zip(losses, values, strict=True) if not value.isfinite()]
            where = f"losses {', '.join(bad)}" if bad else "a loss on another rank"
            message = (
                f"step {index}: non-finite {where} (rank {self.rank}, 0-based step as in "
                f"StepContext.step); stopped before the update, last checkpoint {self._checkpoint}"
            )
            if self.is_main:
                self._write_log(message)
            raise VpsbenchError(message)
        return total

    # -- logs, evaluation, checkpoints ------------------------------------------------------

    def _log_step(
        self,
        done: int,
        losses: Mapping[str, Tensor],
        total: Tensor,
        grad_norm: Tensor,
        lr: float,
        window_steps: int,
        window_seconds: float,
    ) -> None:
        """Write a metrics record and a log line (losses averaged over the ranks)."""
        names = list(losses)
        values = torch.stack([*(losses[n].reshape(()).float() for n in names), total])
        if self.world_size > 1:
            dist.all_reduce(values)
            values = values / self.world_size
        numbers = [float(v) for v in values.tolist()]
        norm = float(grad_norm.item())
        images = window_steps * self._images_per_step
        ips = images / window_seconds if window_seconds > 0 else 0.0
        seconds = window_seconds / window_steps
        record = {
            "step": done,
            "losses": dict(zip(names, numbers[:-1], strict=True)),
            "total": numbers[-1],
            "lr": lr,
            "grad_norm": _finite_or_none(norm),
            "images_per_s": ips,
            "seconds": seconds,
        }
        parts = " ".join(f"{n} {v:.4f}" for n, v in zip(names, numbers[:-1], strict=True))
        self._record(
            record,
            f"step {done}/{self.config.steps}  total {numbers[-1]:.4f}  {parts}  lr {lr:.3e}  "
            f"grad_norm {norm:.3f}  {ips:.1f} img/s  {seconds:.3f} s/step",
        )

    def _run_evaluation(self, done: int) -> None:
        """Evaluate the unwrapped model on rank 0 (in eval mode, without gradients)."""
        if self.is_main and self._evaluate is not None:
            self._model.eval()
            try:
                with torch.no_grad():
                    results = {k: float(v) for k, v in self._evaluate(self._model, done).items()}
            finally:
                self._wrapped.train()
            text = "  ".join(f"{k} {v:.4f}" for k, v in results.items())
            self._record({"step": done, "eval": results}, f"eval at step {done}: {text}")
        self._barrier()

    def _record(self, record: dict[str, Any], line: str) -> None:
        """Keep ``record`` in the history (every rank) and append it to the logs (rank 0)."""
        self._history.append(record)
        if self.is_main:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            self._write_log(line)

    def _write_log(self, line: str) -> None:
        """Append a timestamped line to train.log and pass it to the ``log`` callback."""
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}"
        with open(self.run_dir / "train.log", "a", encoding="utf-8") as handle:
            handle.write(stamped + "\n")
        self._log(line)

    def _save_checkpoint(self) -> None:
        """Write ``step_{step:08d}.pt`` atomically (rank 0), drop old ones, then wait for all."""
        path = self.checkpoint_dir / f"step_{self._step:08d}.pt"
        if self.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "step": self._step,
                "model": self._model.state_dict(),
                "optimizer": self._optimizer.state_dict(),
                "scheduler": self._scheduler.state_dict(),
                "scaler": self._scaler.state_dict(),
                "config": dataclasses.asdict(self.config),
                "fingerprint": self._fingerprint,
                "world_size": self.world_size,
                "rng": _rng_state(self.device.type == "cuda"),
                "history": list(self._history),
            }
            with atomic_write(path) as handle:
                torch.save(state, handle)
            for _, old in list_checkpoints(self.checkpoint_dir)[: -self.config.keep_checkpoints]:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        self._checkpoint = path
        self._barrier()

    def _barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.world_size > 1:
            dist.barrier()


def _fingerprint_differences(saved: str, current: str, limit: int = 3) -> str:
    """The first settings that differ between two fingerprints, as ``key: old → new``."""

    def flatten(value: object, prefix: str = "") -> dict[str, object]:
        if isinstance(value, dict):
            flat: dict[str, object] = {}
            for key, item in value.items():
                flat |= flatten(item, f"{prefix}{key}.")
            return flat
        return {prefix.rstrip("."): value}

    try:
        old, new = flatten(json.loads(saved)), flatten(json.loads(current))
    except json.JSONDecodeError:
        return "fingerprints differ"
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k, "—") != new.get(k, "—"))
    shown = [f"{k}: {old.get(k, '—')} → {new.get(k, '—')}" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(shown) + more if shown else "fingerprints differ"
