"""Training batches: lhotse's duration-bucketed dynamic batching over random crops, as an endless,
seeded stream whose position is one integer (the number of batches consumed); and evaluation
batches (every cut once, in order).

Epoch e crops every cut longer than ``crop_seconds`` at a random offset drawn from
Random(seed, e), then lhotse's DynamicBucketingSampler (shuffle seed + e, this process's rank)
packs batches of at most ``max_duration`` seconds. Resuming at batch n replays the sampler's
metadata (no audio is read) and skips n batches, so the stream continues exactly.
"""

from __future__ import annotations

import random
import warnings
from functools import partial

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler
from torch.utils.data import DataLoader, Dataset, Sampler

from uniwav.data.audio import AudioError
from uniwav.utils import stable_seed


def _long_enough(min_seconds: float, cut) -> bool:
    return cut.duration >= min_seconds


class EndlessBatchSampler(Sampler):
    """Yields (batch_index, CutSet) forever, starting at ``start``. Deterministic for a seed/rank."""

    def __init__(self, cuts: CutSet, max_duration: float, crop_seconds: float, num_buckets: int = 10, seed: int = 0,
                 rank: int = 0, world_size: int = 1, start: int = 0, min_seconds: float = 0.0):
        self.cuts = cuts.filter(partial(_long_enough, min_seconds)) if min_seconds > 0 else cuts  # lazy CutSets stay lazy
        self.max_duration, self.crop_seconds, self.num_buckets = max_duration, crop_seconds, num_buckets
        self.seed, self.rank, self.world_size, self.start = seed, rank, world_size, start

    def epoch_sampler(self, epoch: int) -> DynamicBucketingSampler:
        cropped = self.cuts.truncate(max_duration=self.crop_seconds, offset_type="random", preserve_id=True,
                                     rng=random.Random(stable_seed(self.seed, "crop", epoch)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
            sampler = DynamicBucketingSampler(
                cropped, max_duration=self.max_duration,
                num_buckets=self.num_buckets if self.cuts.is_lazy else max(2, min(self.num_buckets, len(self.cuts) // 4)),
                shuffle=True, drop_last=False, seed=stable_seed(self.seed, "shuffle") % (2**31), world_size=self.world_size, rank=self.rank,
            )
        sampler.set_epoch(epoch)
        return sampler

    def __iter__(self):
        index, epoch = 0, 0
        while True:
            produced = False
            for batch in self.epoch_sampler(epoch):
                produced = True
                if index >= self.start:
                    yield index, batch
                index += 1
            if not produced:
                raise ValueError("the sampler produced no batch in a whole epoch (no cuts long enough, or max_duration too small?)")
            epoch += 1


class AudioBatches(Dataset):
    """(batch_index, CutSet) -> {"audio": [B, S] float32, "audio_lens": [B], "index": int, "ids": [...], "texts": [...]}."""

    def __getitem__(self, item):
        index, cuts = item
        wavs = []
        for cut in cuts:
            try:
                wavs.append(cut.load_audio()[0])
            except Exception as e:
                raise AudioError(getattr(cut.recording.sources[0], "source", cut.id), f"cannot load cut {cut.id}: {e}") from e
        lens = torch.tensor([len(w) for w in wavs])
        audio = torch.zeros(len(wavs), int(lens.max()))
        for i, w in enumerate(wavs):
            audio[i, : len(w)] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        texts = [" ".join(s.text for s in c.supervisions if s.text) for c in cuts]
        return {"audio": audio, "audio_lens": lens, "index": index, "ids": [c.id for c in cuts], "texts": texts}


def training_loader(cuts: CutSet, max_duration: float, crop_seconds: float, num_buckets: int, seed: int, rank: int = 0,
                    world_size: int = 1, start: int = 0, num_workers: int = 0, min_seconds: float = 0.0) -> DataLoader:
    """The endless training stream of every task (``EndlessBatchSampler`` + ``AudioBatches``), from batch ``start``."""
    sampler = EndlessBatchSampler(cuts, max_duration, crop_seconds, num_buckets, seed, rank, world_size, start, min_seconds)
    return DataLoader(AudioBatches(), sampler=sampler, batch_size=None, num_workers=num_workers,
                      persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)


def eval_loader(cuts: CutSet, max_duration: float, num_workers: int = 0) -> DataLoader:
    """Every cut once, in a fixed order, in batches of at most ``max_duration`` seconds."""
    from lhotse.dataset import SimpleCutSampler

    batches = list(enumerate(SimpleCutSampler(cuts, max_duration=max_duration, shuffle=False)))
    return DataLoader(AudioBatches(), sampler=batches, batch_size=None, num_workers=num_workers)


def label_subset(cuts: CutSet, minutes: float, seed: int = 0) -> CutSet:
    """A deterministic subset of labelled cuts totalling about ``minutes`` (order: a hash of seed and id)."""
    ordered = sorted((c for c in cuts if any(s.text for s in c.supervisions)), key=lambda c: stable_seed(seed, "labels", c.id))
    chosen, total = [], 0.0
    for c in ordered:
        if total >= minutes * 60:
            break
        chosen.append(c)
        total += c.duration
    return CutSet.from_cuts(chosen)
