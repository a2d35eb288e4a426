"""Tests of the VideoCUPS stage-2 training loop on a tiny regression problem (CPU, real torch).

The problem: a small MLP regresses ``y = sin(x·w)`` from noisy 4-d inputs. The data of a step is
a pure function of (step, rank, world size); the input noise comes from the step's generator, so
every random number of a step is a function of (seed, step, rank).
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.multiprocessing.spawn import spawn
from vpsbench_methods.videocups.model.trainer import (
    StepContext,
    Trainer,
    TrainLoopConfig,
    list_checkpoints,
    load_checkpoint,
    step_generator,
)

from vpsbench.errors import VpsbenchError

GLOBAL_BATCH = 8
_W = torch.tensor([[0.7], [-1.2], [0.4], [2.0]])


def make_model(seed: int) -> nn.Module:
    """A tiny MLP with a dropout-free but noisy forward; ``seed`` fixes the initial weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


def share(step: int, rank: int, world: int) -> tuple[Tensor, Tensor]:
    """This rank's share of the step's global batch: a pure function of (step, rank, world)."""
    generator = torch.Generator().manual_seed(10_000 + step)
    x = torch.randn(GLOBAL_BATCH, 4, generator=generator)
    y = torch.sin(x @ _W)
    per_rank = GLOBAL_BATCH // world
    return x[rank * per_rank : (rank + 1) * per_rank], y[rank * per_rank : (rank + 1) * per_rank]


def share_losses(model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
    """Mean squared error of the model on inputs perturbed with noise from ``generator``."""
    noisy = x + 0.05 * torch.randn(x.shape, generator=generator)
    prediction: Tensor = model(noisy)
    return ((prediction - y) ** 2).mean()


def weight_penalty(model: nn.Module) -> Tensor:
    """A small L2 penalty on the weights (a second named loss)."""
    return 1e-3 * torch.stack([(p**2).sum() for p in model.parameters()]).sum()


def ddp_step(model: nn.Module, ctx: StepContext) -> dict[str, Tensor]:
    """The step function of the tiny problem: this rank's share, this step's noise."""
    x, y = share(ctx.step, ctx.rank, ctx.world_size)
    with ctx.autocast():
        mse = share_losses(model, x, y, ctx.generator)
        return {"mse": mse, "l2": weight_penalty(model)}


def global_rng_step(model: nn.Module, ctx: StepContext) -> dict[str, Tensor]:
    """Like :func:`ddp_step`, but also draws from the global RNGs (random, numpy, torch)."""
    losses = ddp_step(model, ctx)
    x, y = share(ctx.step, 0, 1)
    scale = 0.01 * (1.0 + random.random() + float(np.random.rand()))
    noisy = x + scale * torch.randn(x.shape)
    losses["extra"] = 0.1 * ((model(noisy) - y) ** 2).mean()
    return losses


def validation(model: nn.Module, step: int) -> dict[str, float]:
    """Mean squared error on a fixed validation batch."""
    x, y = share(99_999, 0, 1)
    return {"val_mse": float(((model(x) - y) ** 2).mean())}


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl without the timing fields (they differ between runs)."""
    records = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("images_per_s", None)
        record.pop("seconds", None)
        records.append(record)
    return records


def seed_globals(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quiet(_: str) -> None:
    """Swallow log lines."""


def loop(**overrides: Any) -> TrainLoopConfig:
    """A loop config for the tiny problem."""
    values: dict[str, Any] = {"steps": 20, "lr": 1e-2, "log_every": 1, "checkpoint_every": 5}
    values.update(overrides)
    return TrainLoopConfig(**values)


def params(model: nn.Module) -> list[Tensor]:
    """Detached copies of the parameters."""
    return [p.detach().clone() for p in model.parameters()]


def test_interrupted_and_resumed_run_repeats_the_uninterrupted_run(tmp_path: Path) -> None:
    config = loop(
        steps=23,
        schedule="cosine",
        warmup_steps=4,
        grad_clip_norm=0.5,
        weight_decay=0.05,
        eval_every=4,
        checkpoint_every=5,
        keep_checkpoints=2,
    )
    fingerprint = {"problem": "sin", "batch": GLOBAL_BATCH}

    seed_globals(7)
    straight = Trainer(
        make_model(0), config, tmp_path / "a", global_rng_step, evaluate=validation,
        log=quiet, config_fingerprint=fingerprint,
    )  # fmt: skip
    straight.fit()

    seed_globals(7)
    first = Trainer(
        make_model(0), config, tmp_path / "b", global_rng_step, evaluate=validation,
        log=quiet, config_fingerprint=fingerprint,
    )  # fmt: skip
    interrupted = first.fit(stop_after=13)  # the newest checkpoint is step 10
    assert interrupted.final_step == 13 and interrupted.steps_run == 13
    seed_globals(12345)  # the resumed run must not depend on the RNGs it starts with
    resumed = Trainer(
        make_model(1), config, tmp_path / "b", global_rng_step, evaluate=validation,
        log=quiet, config_fingerprint=fingerprint,
    )  # fmt: skip
    assert resumed.step == 10
    summary = resumed.fit()
    assert summary.final_step == 23 and summary.steps_run == 13

    metrics_a, metrics_b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert metrics_b == metrics_a  # losses, lr, grad norms and evaluations, bit for bit
    assert [r["step"] for r in metrics_a if "lr" in r] == list(range(1, 24))
    assert [r["lr"] for r in metrics_b if "lr" in r] == [r["lr"] for r in metrics_a if "lr" in r]
    assert [r["step"] for r in metrics_a if "eval" in r] == [4, 8, 12, 16, 20, 23]
    for a, b in zip(params(straight.unwrapped_model), params(resumed.unwrapped_model), strict=True):
        assert torch.equal(a, b)
    assert straight.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()
    final_a = torch.load(tmp_path / "a" / "model_final.pt", weights_only=True)
    final_b = torch.load(tmp_path / "b" / "model_final.pt", weights_only=True)
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert "resumed from" in (tmp_path / "b" / "train.log").read_text()


def _lrs(config: TrainLoopConfig, run_dir: Path) -> dict[int, float]:
    """The learning rate of each update (0-based), read from metrics.jsonl of a real run."""
    Trainer(make_model(0), config, run_dir, ddp_step, log=quiet).fit()
    return {r["step"] - 1: r["lr"] for r in read_metrics(run_dir) if "lr" in r}


def test_warmup_cosine_schedule(tmp_path: Path) -> None:
    lrs = _lrs(loop(lr=0.1, schedule="cosine", warmup_steps=4, warmup_factor=0.1), tmp_path)
    assert lrs[0] == pytest.approx(0.1 * 0.1 * 1.0, rel=1e-12)
    warm = 0.1 + 0.9 * 2 / 4
    assert lrs[2] == pytest.approx(0.1 * warm * 0.5 * (1 + math.cos(math.pi * 2 / 20)), rel=1e-12)
    assert lrs[4] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 4 / 20)), rel=1e-12)
    assert lrs[10] == pytest.approx(0.1 * 0.5, rel=1e-12)
    assert lrs[19] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 19 / 20)), rel=1e-12)


def test_step_schedule(tmp_path: Path) -> None:
    lrs = _lrs(loop(lr=0.1, schedule="step", milestones=(0.5, 0.75), gamma=0.1), tmp_path)
    assert [lrs[i] for i in (0, 9)] == pytest.approx([0.1, 0.1], rel=1e-12)
    assert [lrs[i] for i in (10, 14)] == pytest.approx([0.01, 0.01], rel=1e-12)
    assert [lrs[i] for i in (15, 19)] == pytest.approx([0.001, 0.001], rel=1e-12)


def test_poly_schedule_with_warmup(tmp_path: Path) -> None:
    config = loop(lr=0.1, schedule="poly", poly_power=2.0, warmup_steps=2, warmup_factor=0.5)
    lrs = _lrs(config, tmp_path)
    assert lrs[1] == pytest.approx(0.1 * 0.75 * (1 - 1 / 20) ** 2, rel=1e-12)
    assert lrs[5] == pytest.approx(0.1 * 0.75**2, rel=1e-12)
    assert lrs[19] == pytest.approx(0.1 * (1 / 20) ** 2, rel=1e-12)


def test_gradient_clipping_and_adamw_update_match_a_hand_computation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(3, 1).double()
    w0 = layer.weight.detach().clone().reshape(-1)
    b0 = layer.bias.detach().clone()
    x0 = torch.tensor([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]], dtype=torch.float64)
    xs = [x0, -2.0 * x0]
    ys = [torch.tensor([[10.0], [-4.0]], dtype=torch.float64)] * 2

    def step(model: nn.Module, ctx: StepContext) -> dict[str, Tensor]:
        x, y = xs[ctx.step], ys[ctx.step]
        return {"mse": ((model(x) - y) ** 2).mean()}

    lr, wd, (b1, b2), eps, clip = 0.1, 0.01, (0.9, 0.999), 1e-8, 0.5
    config = loop(steps=2, lr=lr, weight_decay=wd, betas=(b1, b2), grad_clip_norm=clip)
    trainer = Trainer(layer, config, tmp_path, step, log=quiet)
    trainer.fit()

    # By hand: the gradient of mean((w·x + b - y)²), clipped to norm 0.5, then AdamW.
    p = torch.cat([w0, b0])
    m = torch.zeros(4, dtype=torch.float64)
    v = torch.zeros(4, dtype=torch.float64)
    norms = []
    clipped = p
    for t in (1, 2):
        x, y = xs[t - 1], ys[t - 1]
        residual = x @ p[:3] + p[3] - y[:, 0]
        grad = torch.cat([2 * (residual[:, None] * x).mean(0), 2 * residual.mean()[None]])
        norm = float(grad.norm())
        norms.append(norm)
        clipped = grad * min(1.0, clip / (norm + 1e-6))
        p = p * (1 - lr * wd)
        m = b1 * m + (1 - b1) * clipped
        v = b2 * v + (1 - b2) * clipped**2
        p = p - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)

    assert all(n > clip for n in norms)  # clipping is active on both steps
    logged = [r["grad_norm"] for r in read_metrics(tmp_path) if "grad_norm" in r]
    assert logged == pytest.approx(norms, rel=1e-12)  # the pre-clip norm
    trained = torch.cat([layer.weight.detach().reshape(-1), layer.bias.detach()])
    torch.testing.assert_close(trained, p, rtol=0, atol=1e-12)
    assert layer.weight.grad is not None and layer.bias.grad is not None
    last_grad = torch.cat([layer.weight.grad.reshape(-1), layer.bias.grad])
    torch.testing.assert_close(last_grad, clipped, rtol=0, atol=1e-12)


def test_checkpoint_rotation_final_model_and_weights_only_loading(tmp_path: Path) -> None:
    trainer = Trainer(
        make_model(0), loop(steps=13, checkpoint_every=2, keep_checkpoints=3), tmp_path,
        ddp_step, log=quiet,
    )  # fmt: skip
    summary = trainer.fit()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000010.pt", "step_00000012.pt", "step_00000013.pt"]
    assert summary.checkpoint == tmp_path / "checkpoints" / "step_00000013.pt"
    assert summary.final_step == 13 and summary.peak_memory_bytes > 0
    assert set(summary.last_losses) == {"mse", "l2", "total"}
    state = load_checkpoint(summary.checkpoint)  # weights_only=True
    assert state["step"] == 13 and len(state["history"]) == 13
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    final = torch.load(tmp_path / "model_final.pt", weights_only=True)
    for name, value in trainer.unwrapped_model.state_dict().items():
        assert torch.equal(final[name], value)
    # A finished run resumes at its end and does nothing more.
    config = loop(steps=13, checkpoint_every=2)
    again = Trainer(make_model(3), config, tmp_path, ddp_step, log=quiet)
    assert again.fit().steps_run == 0
    assert len(read_metrics(tmp_path)) == 13


def test_resume_refuses_another_fingerprint_or_loop_setting(tmp_path: Path) -> None:
    config = loop(steps=4, checkpoint_every=2)
    Trainer(
        make_model(0), config, tmp_path, ddp_step, log=quiet, config_fingerprint={"data": "a"}
    ).fit(stop_after=3)
    with pytest.raises(VpsbenchError, match="data: a → b"):
        Trainer(make_model(0), config, tmp_path, ddp_step, config_fingerprint={"data": "b"})
    with pytest.raises(VpsbenchError, match="lr"):
        Trainer(
            make_model(0), loop(steps=4, lr=0.5), tmp_path, ddp_step,
            config_fingerprint={"data": "a"},
        )  # fmt: skip
    # Bookkeeping settings may change.
    resumed = Trainer(
        make_model(0), loop(steps=4, checkpoint_every=3, log_every=2), tmp_path, ddp_step,
        log=quiet, config_fingerprint={"data": "a"},
    )  # fmt: skip
    assert resumed.step == 2 and resumed.fit().final_step == 4


def test_non_finite_loss_raises_naming_the_step_and_loss(tmp_path: Path) -> None:
    def step(model: nn.Module, ctx: StepContext) -> dict[str, Tensor]:
        losses = ddp_step(model, ctx)
        if ctx.step == 3:
            losses["mask"] = losses["mse"] * float("nan")
        return losses

    trainer = Trainer(make_model(0), loop(checkpoint_every=1), tmp_path, step, log=quiet)
    before = params(trainer.unwrapped_model)
    with pytest.raises(VpsbenchError, match=r"step 3: non-finite losses mask \(") as caught:
        trainer.fit()
    assert "mse" not in str(caught.value)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [1, 2, 3]
    assert not (tmp_path / "model_final.pt").exists()
    state = load_checkpoint(tmp_path / "checkpoints" / "step_00000003.pt")
    for name, value in trainer.unwrapped_model.state_dict().items():
        assert torch.equal(state["model"][name], value)  # the failed step changed nothing
    assert not all(
        torch.equal(a, b) for a, b in zip(before, params(trainer.unwrapped_model), strict=True)
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("lr", 0.0),
        ("schedule", "linear"),
        ("milestones", (0.8, 0.2)),
        ("amp_dtype", "float8"),
        ("warmup_factor", 0.0),
        ("grad_clip_norm", -1.0),
        ("betas", (0.9, 1.0)),
        ("keep_checkpoints", 0),
        ("warmup_steps", -1),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(VpsbenchError, match=field):
        loop(**{field: value})


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ddp_worker(rank: int, world: int, port: int, run_dir: Path, config: TrainLoopConfig) -> None:
    """One torchrun-like process: the environment torchrun sets, then a plain Trainer."""
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    trainer = Trainer(
        make_model(0), config, run_dir, ddp_step, log=quiet, images_per_step=GLOBAL_BATCH
    )
    assert trainer.world_size == world and trainer.rank == rank
    trainer.fit()
    trainer.close()


def _averaged_step(seed: int) -> Callable[[nn.Module, StepContext], dict[str, Tensor]]:
    """One process doing what 2 DDP ranks do together: the mean of both ranks' share losses."""

    def step(model: nn.Module, ctx: StepContext) -> dict[str, Tensor]:
        shares = [share(ctx.step, r, 2) for r in (0, 1)]
        mses = [
            share_losses(model, x, y, step_generator(seed, ctx.step, r))
            for r, (x, y) in enumerate(shares)
        ]
        return {"mse": (mses[0] + mses[1]) / 2, "l2": weight_penalty(model)}

    return step


def test_ddp_on_two_cpu_processes_averages_gradients(tmp_path: Path) -> None:
    config = loop(steps=6, checkpoint_every=3, grad_clip_norm=1.0, seed=5)
    args = (2, _free_port(), tmp_path / "ddp", config)
    spawn(_ddp_worker, args=args, nprocs=2, join=True)  # type: ignore[no-untyped-call]

    single = Trainer(make_model(0), config, tmp_path / "single", _averaged_step(5), log=quiet)
    single.fit()

    ddp_final = torch.load(tmp_path / "ddp" / "model_final.pt", weights_only=True)
    for name, value in single.unwrapped_model.state_dict().items():
        torch.testing.assert_close(ddp_final[name], value, rtol=0, atol=1e-6)
    ddp_metrics, single_metrics = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "single")
    assert [r["step"] for r in ddp_metrics] == list(range(1, 7))
    for d, s in zip(ddp_metrics, single_metrics, strict=True):
        assert d["losses"]["mse"] == pytest.approx(s["losses"]["mse"], rel=1e-5)
    assert [p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()] != []


def test_norm_layer_parameters_get_no_weight_decay(tmp_path: Path) -> None:
    # CUPS' configure_optimizers: split_normalization_params → norm parameters weight decay 0.
    # A loss that ignores the model leaves every gradient zero: AdamW's update is then the
    # decoupled decay alone, p ← p · (1 − lr · wd), for exactly the non-norm parameters.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Conv1d(4, 4, 1), nn.GroupNorm(2, 4))
    with torch.no_grad():
        for norm in (model[1], model[3]):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1.0, 1.0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    def step(net: nn.Module, ctx: StepContext) -> dict[str, Tensor]:
        return {"zero": sum(0.0 * p.sum() for p in net.parameters())}  # type: ignore[dict-item]

    lr, wd = 0.1, 0.5
    trainer = Trainer(model, loop(steps=1, lr=lr, weight_decay=wd), tmp_path, step, log=quiet)
    decays = sorted(group["weight_decay"] for group in trainer.optimizer.param_groups)
    assert decays == [0.0, wd]
    trainer.fit()
    for name, p in model.named_parameters():
        is_norm = name.startswith(("1.", "3."))
        expected = before[name] if is_norm else before[name] * (1 - lr * wd)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7, msg=name)
