"""Training throughput of a VideoCUPS config: images/s and peak memory of full training steps.

Builds the config's network (``paper``: ResNet-50 FPN; its DINO weights are not needed to time
it), feeds random clips with random rectangle instances at the config's (or ``--size``)
resolution, and times ``--steps`` AdamW steps after ``--warmup`` untimed ones, with mixed precision
on CUDA as the config says. Run: ``python benchmarks/bench_training.py --config paper --device
cuda --size 640x1280``; on a machine without a GPU use ``--device cpu`` and a small size.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from vpsbench_methods.videocups.model.config import load_training_config
from vpsbench_methods.videocups.model.data import ClassSpace
from vpsbench_methods.videocups.model.recipe import build_model
from vpsbench_methods.videocups.model.targets import IGNORE, Clip, FrameTargets, boxes_from_masks

SPACE = ClassSpace(things=tuple(range(17, 27)), stuff=tuple(range(17)))  # CUPS' 10 / 17 split


def random_clip(generator: torch.Generator, length: int, height: int, width: int) -> Clip:
    """A clip of noise images with four moving rectangles as pseudo-instances."""
    images = torch.rand((length, 3, height, width), generator=generator) * 255
    targets = []
    corners = torch.rand((4, 2), generator=generator) * torch.tensor([height / 2, width / 2])
    for t in range(length):
        masks = torch.zeros((4, height, width), dtype=torch.bool)
        for index, (y, x) in enumerate(corners.tolist()):
            top, left = int(y), int(x) + 4 * t
            masks[index, top : top + height // 4, left : left + width // 6] = True
        semantic = torch.randint(1, 1 + len(SPACE.stuff), (height, width), generator=generator)
        semantic[masks.any(dim=0)] = 0
        semantic[:2] = IGNORE
        targets.append(
            FrameTargets(
                boxes_from_masks(masks),
                torch.arange(4) % len(SPACE.things),
                torch.arange(1, 5),
                masks,
                semantic,
            )
        )
    return Clip(images, targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="HxW (default: the config's input size)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    config = load_training_config(args.config)
    if args.size:
        height, width = (int(v) for v in args.size.lower().split("x"))
    else:
        height, width = config.model.input_height or 640, config.model.input_width or 1280
    device = torch.device(args.device)
    model = build_model(config, SPACE, load_backbone=False).to(device).train()
    loop = config.loop(1000)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=loop.lr, weight_decay=loop.weight_decay, betas=loop.betas
    )
    use_amp = device.type == "cuda" and loop.amp
    dtype = torch.bfloat16 if loop.amp_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)
    generator = torch.Generator().manual_seed(0)
    batch = [
        random_clip(generator, config.data.clip_length, height, width)
        for _ in range(config.data.clips_per_step)
    ]
    batch = [Clip(c.images.to(device), [t.to(device) for t in c.targets]) for c in batch]
    images_per_step = config.data.clips_per_step * config.data.clip_length
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
            losses = model(batch, generator=torch.Generator().manual_seed(step))
        total = torch.stack([value.float() for value in losses.values()]).sum()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()  # type: ignore[no-untyped-call]
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), loop.grad_clip_norm or 1e9)
        scaler.step(optimizer)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "config": args.config,
                "device": str(device),
                "size": [height, width],
                "images_per_step": images_per_step,
                "amp": use_amp,
                "seconds_per_step": seconds / args.steps,
                "images_per_second": images_per_step * args.steps / seconds,
                "peak_memory_gib": peak / 2**30,
            }
        )
    )


if __name__ == "__main__":
    main()
