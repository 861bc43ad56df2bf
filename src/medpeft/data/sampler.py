"""The order in which training samples are seen: one seeded permutation per epoch, cut into global batches.

The permutation depends only on (seed, epoch), and each optimizer step takes the next
``batch_size`` indices of it. A process takes its own contiguous slice of every micro-batch, in
rank order, so gathering embeddings across processes rebuilds exactly the batch a single process
would have seen. Resuming at step ``s`` of an epoch skips exactly the ``s`` consumed batches, and
each sample carries its own augmentation seed, so neither the worker count nor a resume changes
what the model sees.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from medpeft.errors import ConfigError
from medpeft.runtime import derive_seed

_PERMUTATION = 0x5EED
_AUGMENT = 0xA116


def micro_batch_size(batch_size: int, grad_accum: int, num_processes: int) -> int:
    """Samples per forward pass of one process; the global batch must split evenly."""
    parts = grad_accum * num_processes
    if batch_size % parts:
        raise ConfigError(
            f"batch_size {batch_size} (the global batch of one optimizer step) must be divisible by "
            f"grad_accum x processes = {grad_accum} x {num_processes} = {parts}"
        )
    return batch_size // parts


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """Full global batches per epoch (the last partial batch is dropped: a contrastive loss over a
    handful of samples has too few negatives, and every process must take the same number of steps)."""
    if num_samples < batch_size:
        raise ConfigError(
            f"the training manifest has {num_samples} rows, fewer than one batch of {batch_size}; "
            "lower batch_size or add data"
        )
    return num_samples // batch_size


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch, _PERMUTATION))
    return torch.randperm(num_samples, generator=generator)


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, processes: int, rank: int
) -> list[list[int]]:
    """This process's batches for ``epoch`` when every sample counts (dense transfer keeps the last partial
    batch): the same seeded permutation as :class:`GlobalBatchSampler`, cut into batches and dealt
    round-robin. The batch list is padded (wrapping around) to a multiple of ``processes`` so every process
    runs the same number of steps, as DistributedSampler does."""
    order = epoch_permutation(n, seed, epoch).tolist()
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if processes > 1 and len(batches) % processes:
        batches += batches[: processes - len(batches) % processes]
    return batches[rank::processes]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch."""
    return derive_seed(seed, epoch, index, _AUGMENT)


class GlobalBatchSampler:
    """Yields this process's micro-batches, as lists of ``(index, augmentation seed)``, for one epoch."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        grad_accum: int,
        num_processes: int,
        process_index: int,
        seed: int,
        epoch: int,
        start_step: int = 0,
        stop_step: int | None = None,
    ) -> None:
        self.micro = micro_batch_size(batch_size, grad_accum, num_processes)
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.num_processes = num_processes
        self.process_index = process_index
        self.seed = seed
        self.epoch = epoch
        self.steps = steps_per_epoch(num_samples, batch_size)
        self.start_step = start_step
        self.stop_step = self.steps if stop_step is None else min(stop_step, self.steps)

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step) * self.grad_accum

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_permutation(self.num_samples, self.seed, self.epoch).tolist()
        per_micro = self.micro * self.num_processes
        for step in range(self.start_step, self.stop_step):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            for m in range(self.grad_accum):
                micro = batch[m * per_micro : (m + 1) * per_micro]
                mine = micro[self.process_index * self.micro : (self.process_index + 1) * self.micro]
                yield [(i, sample_seed(self.seed, self.epoch, i)) for i in mine]
