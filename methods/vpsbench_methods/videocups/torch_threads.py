"""One torch intra-op thread per per-sequence task, so results cannot depend on where it ran.

A CPU product's float sums may depend on how many threads share it, and the executors give a
task different thread budgets (a local process uses torch's default, a Ray worker has
``OMP_NUM_THREADS=1``). Stage 1's labelling and the predict stage run each sequence on one
thread; their parallelism is their workers, which then do not spin on each other's cores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (torch is imported only here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
