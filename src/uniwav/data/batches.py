"""Training batches: an endless, seeded stream that resumes at any position in constant time; and
evaluation batches (every cut once, in order).

The train cuts are a fixed sequence of ``Blocks``: slices of a small eager manifest, chunks of a
large lazy manifest (split once and cached beside it), or Shar shards. Epoch e visits the blocks
in an order drawn from (seed, e), ``MIX`` at a time as one unit; a unit's cuts longer than
``crop_seconds`` are cropped at offsets drawn from (seed, e, unit), and lhotse's
DynamicBucketingSampler (seeded by (seed, e, unit), this process's rank and world size) packs them
into batches of at most ``max_duration`` seconds. A position is (epoch, unit, batches done in the
unit): resuming loads one unit and skips the batches inside it, whatever the update count, and
the stream continues exactly. Each yielded batch carries the position of the one after it.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler
from torch.utils.data import DataLoader, Dataset, Sampler

from uniwav.data.audio import AudioError
from uniwav.utils import stable_seed

BLOCK_CUTS = 1000  # cuts per block (a Shar shard holds 1000 by default too)
MIX = 4  # blocks drawn together into one unit of shuffling and bucketing
EAGER_MANIFEST_BYTES = 64 << 10  # smaller manifests are read whole; larger ones are split into cached blocks once


def _long_enough(min_seconds: float, cut) -> bool:
    return cut.duration >= min_seconds


class Blocks:
    """The train cuts as ``len(blocks)`` blocks, each loaded on its own by ``load(i)``."""

    def __init__(self, loaders: list[Callable[[], CutSet]], source: str):
        if not loaders:
            raise ValueError(f"{source}: no cuts to train on")
        self.loaders, self.source = loaders, source

    def __len__(self) -> int:
        return len(self.loaders)

    def load(self, i: int) -> CutSet:
        return self.loaders[i]()

    @classmethod
    def from_cuts(cls, cuts: CutSet, block_cuts: int = BLOCK_CUTS) -> Blocks:
        """Slices of a CutSet held in memory (a lazy one is read once)."""
        cuts = list(cuts)
        slices = [CutSet.from_cuts(cuts[i: i + block_cuts]) for i in range(0, len(cuts), block_cuts)]
        return cls([(lambda s=s: s) for s in slices], f"{len(cuts)} cuts")

    @classmethod
    def from_manifest(cls, path, block_cuts: int = BLOCK_CUTS) -> Blocks:
        """A cuts manifest on disk: read whole when small, else split once into blocks cached beside it
        (``blocks-<hash>/``, rebuilt when the manifest changes) that are read one at a time."""
        path = Path(path)
        stat = path.stat()
        if stat.st_size <= EAGER_MANIFEST_BYTES:
            return cls.from_cuts(CutSet.from_file(path).to_eager(), block_cuts)
        key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{block_cuts}".encode()).hexdigest()[:12]
        cache = next((c for c in (path.parent / f"blocks-{key}", Path.home() / ".cache" / "uniwav" / f"blocks-{key}") if c.is_dir()), None)
        if cache is None:
            try:  # beside the manifest; a read-only data folder (shared storage) keeps them in ~/.cache/uniwav
                cache = _split(path, path.parent / f"blocks-{key}", block_cuts)
            except OSError:
                cache = _split(path, Path.home() / ".cache" / "uniwav" / f"blocks-{key}", block_cuts)
        files = sorted(cache.glob("block*.jsonl.gz"))
        return cls([(lambda f=f: CutSet.from_file(f).to_eager()) for f in files], str(path))

    @classmethod
    def from_shar(cls, shar_dir) -> Blocks:
        """Lhotse Shar shards (``cuts.NNNNNN.jsonl.gz`` + ``recording.NNNNNN.tar``): one block per shard."""
        shar_dir = Path(shar_dir)
        cuts = sorted(shar_dir.glob("cuts.*.jsonl.gz"))
        fields = {"recording": sorted(shar_dir.glob("recording.*.tar"))}
        if len(fields["recording"]) != len(cuts):
            raise ValueError(f"{shar_dir}: {len(cuts)} cut shards but {len(fields['recording'])} recording shards")

        def loader(i):
            return lambda: CutSet.from_shar({"cuts": [cuts[i]], "recording": [fields["recording"][i]]}).to_eager()

        return cls([loader(i) for i in range(len(cuts))], str(shar_dir))


def _split(path: Path, cache: Path, block_cuts: int) -> Path:
    tmp = cache.with_name(f".{cache.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    CutSet.from_file(path).split_lazy(tmp, chunk_size=block_cuts, prefix="block")
    tmp.rename(cache)
    return cache


Position = tuple[int, int, int]  # (epoch, unit, batches already taken from the unit)


class EndlessBatchSampler(Sampler):
    """Yields (batch index, CutSet, position of the next batch) forever, deterministic for a seed and
    rank. Starts at ``position`` (constant time), or replays ``start`` batches from the beginning
    (for runs written before positions were saved)."""

    def __init__(self, cuts, max_duration: float, crop_seconds: float, num_buckets: int = 10, seed: int = 0, rank: int = 0,
                 world_size: int = 1, start: int = 0, min_seconds: float = 0.0, position: Optional[Position] = None):
        self.blocks = cuts if isinstance(cuts, Blocks) else Blocks.from_cuts(cuts)
        self.max_duration, self.crop_seconds, self.num_buckets, self.min_seconds = max_duration, crop_seconds, num_buckets, min_seconds
        self.seed, self.rank, self.world_size, self.start, self.position = seed, rank, world_size, start, position

    def units(self, epoch: int) -> list[list[int]]:
        """The block indices of each unit of an epoch, in the order visited."""
        order = list(range(len(self.blocks)))
        random.Random(stable_seed(self.seed, "blocks", epoch)).shuffle(order)
        return [order[i: i + MIX] for i in range(0, len(order), MIX)]

    def unit_sampler(self, epoch: int, unit: int) -> DynamicBucketingSampler:
        blocks = self.units(epoch)[unit]
        cuts = CutSet.from_cuts(c for b in blocks for c in self.blocks.load(b))
        if self.min_seconds > 0:
            cuts = cuts.filter(partial(_long_enough, self.min_seconds)).to_eager()
        cropped = cuts.truncate(max_duration=self.crop_seconds, offset_type="random", preserve_id=True,
                                rng=random.Random(stable_seed(self.seed, "crop", epoch, unit)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
            return DynamicBucketingSampler(cropped, max_duration=self.max_duration, num_buckets=max(2, min(self.num_buckets, len(cuts) // 4)),
                                           shuffle=True, drop_last=False, seed=stable_seed(self.seed, "shuffle", epoch, unit) % (2**31),
                                           world_size=self.world_size, rank=self.rank)

    def epoch_sampler(self, epoch: int):
        """Every batch of one epoch, in order (all units)."""
        for unit in range(len(self.units(epoch))):
            yield from self.unit_sampler(epoch, unit)

    def __iter__(self):
        epoch, unit, skip = self.position or (0, 0, 0)
        index, replay = self.start, 0 if self.position else self.start
        while True:
            produced = False
            units = len(self.units(epoch))
            for u in range(unit, units):
                for k, batch in enumerate(self.unit_sampler(epoch, u)):
                    produced = True
                    if k < skip:
                        continue
                    if replay:
                        replay -= 1
                        continue
                    yield index, batch, (epoch, u, k + 1)
                    index += 1
                skip = 0
            if not produced and unit == 0:
                raise ValueError("the sampler produced no batch in a whole epoch (no cuts long enough, or max_duration too small?)")
            epoch, unit = epoch + 1, 0


class AudioBatches(Dataset):
    """(batch index, CutSet[, next position]) -> {"audio": [B, S] float32, "audio_lens": [B], "index": int, "ids": [...],
    "texts": [...], "position": the stream position after this batch or None}."""

    def __getitem__(self, item):
        index, cuts, position = item if len(item) == 3 else (*item, None)
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
        return {"audio": audio, "audio_lens": lens, "index": index, "ids": [c.id for c in cuts], "texts": texts, "position": position}


def _ignore_interrupts(worker_id: int) -> None:
    """Loader workers leave SIGTERM and Ctrl-C to the main process. A scheduler's pre-emption, ``kill -TERM -PGID``
    and a terminal's Ctrl-C signal the whole process group: a worker that died of it first would end the run in
    a traceback ("DataLoader worker ... is killed by signal") before the main process could write its checkpoint."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def training_loader(cuts, max_duration: float, crop_seconds: float, num_buckets: int, seed: int, rank: int = 0, world_size: int = 1,
                    start: int = 0, num_workers: int = 0, min_seconds: float = 0.0, position: Optional[Position] = None) -> DataLoader:
    """The endless training stream of every task (``EndlessBatchSampler`` + ``AudioBatches``): batches numbered from
    ``start``, read from ``position`` (or, without one, after replaying ``start`` batches). ``cuts``: a CutSet or Blocks."""
    sampler = EndlessBatchSampler(cuts, max_duration, crop_seconds, num_buckets, seed, rank, world_size, start, min_seconds, position)
    return DataLoader(AudioBatches(), sampler=sampler, batch_size=None, num_workers=num_workers, worker_init_fn=_ignore_interrupts,
                      persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)


def eval_loader(cuts: CutSet, max_duration: float, num_workers: int = 0) -> DataLoader:
    """Every cut once, in a fixed order, in batches of at most ``max_duration`` seconds."""
    from lhotse.dataset import SimpleCutSampler

    batches = list(enumerate(SimpleCutSampler(cuts, max_duration=max_duration, shuffle=False)))
    return DataLoader(AudioBatches(), sampler=batches, batch_size=None, num_workers=num_workers, worker_init_fn=_ignore_interrupts)


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
