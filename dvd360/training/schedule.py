"""Which clip, and which random numbers, every training sample gets: a pure function of the seed.

Samples are numbered globally: at optimiser step s, process r of `world`, batch slot b draws
sample g = (s * world + r) * batch + b. Sample g is clip `perm_e[g mod n]` of epoch
e = g div n, with perm_e a permutation seeded by (seed, e); everything random about the
sample (augmentation, timestep, noise, dropouts) comes from generators seeded by (seed, g).

So resuming at step s needs no stored sampler state (the checkpoint still records the RNG
states), `world` processes with batch b see the same samples as one process with batch
world * b, and worker processes do not change what is drawn.
"""

from __future__ import annotations

import random
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def sample_seed(seed: int, sample: int, stream: int = 0) -> int:
    """A 63-bit seed for stream `stream` of sample `sample` (numpy SeedSequence of the triple)."""
    return int(np.random.SeedSequence([seed, sample, stream]).generate_state(1, np.uint64)[0] >> 1)


def sample_generator(seed: int, sample: int, stream: int = 0) -> torch.Generator:
    """A CPU torch.Generator for one stream of one sample."""
    return torch.Generator().manual_seed(sample_seed(seed, sample, stream))


def clip_for_sample(sample: int, num_clips: int, seed: int) -> int:
    """Index of the clip sample g reads: a fresh permutation of the clips each epoch."""
    epoch, position = divmod(sample, num_clips)
    return int(np.random.default_rng([seed, epoch]).permutation(num_clips)[position])


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Batches of (sample g, clip index) for steps `start`..`stop - 1` of process `rank`."""

    def __init__(self, num_clips: int, seed: int, start: int, stop: int, batch: int,
                 rank: int = 0, world: int = 1, overfit_batches: int = 0):
        if num_clips < 1:
            raise ValueError("no clips to train on")
        self.num_clips, self.seed, self.start, self.stop = num_clips, seed, start, stop
        self.batch, self.rank, self.world = batch, rank, world
        self.overfit_batches = overfit_batches

    def samples(self, step: int) -> list[int]:
        """The global sample numbers this process draws at `step` (with `overfit_batches` = k > 0,
        step s repeats the samples of step s mod k: a debugging check that the model can fit)."""
        if self.overfit_batches:
            step %= self.overfit_batches
        first = (step * self.world + self.rank) * self.batch
        return list(range(first, first + self.batch))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield [(g, clip_for_sample(g, self.num_clips, self.seed)) for g in self.samples(step)]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


class SeededSamples(Dataset):
    """`dataset[clip]` drawn with python/numpy/torch RNGs seeded by (seed, g), global RNGs untouched.

    The data layer's augmentations (roll, flip) use the global RNGs; seeding them per sample
    makes each sample's augmentation reproducible wherever and whenever it is drawn.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        sample, clip = key
        state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                seed = sample_seed(self.seed, sample, stream=1)
                random.seed(seed)
                np.random.seed(seed % 2**32)
                torch.manual_seed(seed)
                item = dict(self.dataset[clip])
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])
        item["sample"] = sample
        return item


def collate(items: Sequence[dict]) -> dict:
    """Stack tensors, keep strings and numbers as lists."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
