import itertools

from uniwav.data.batches import Blocks, EndlessBatchSampler, training_loader
from uniwav.data.manifests import load_cuts


def _ids(sampler, n):
    return [(i, tuple(c.id for c in cuts), tuple(round(c.start, 4) for c in cuts)) for i, cuts, _ in itertools.islice(iter(sampler), n)]


def test_sampler_is_seeded_and_resumes_at_any_batch(demo_data):
    cuts = load_cuts(demo_data, "train")
    a = _ids(EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=5), 40)  # several epochs
    assert a == _ids(EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=5), 40)
    assert a != _ids(EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=6), 40)
    assert _ids(EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=5, start=17), 10) == a[17:27]
    assert [i for i, *_ in a] == list(range(40))


def test_budget_crop_and_epochs(demo_data):
    cuts = load_cuts(demo_data, "train")
    sampler = EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=0)
    seen_ids = set()
    for _, batch, _ in itertools.islice(iter(sampler), 60):
        assert sum(c.duration for c in batch) <= 8.0 + 1e-6
        assert all(c.duration <= 2.0 + 1e-6 for c in batch)
        seen_ids.update(c.id for c in batch)
    assert seen_ids == {c.id for c in cuts}  # every utterance is visited
    long_cut = next(c for c in cuts if c.duration > 3.0)
    offsets = set()
    for epoch in range(4):
        for batch in sampler.epoch_sampler(epoch):
            offsets.update(round(c.start, 3) for c in batch if c.id == long_cut.id)
    assert len(offsets) > 1  # random crops move between epochs


def test_ranks_get_different_batches(demo_data):
    cuts = load_cuts(demo_data, "train")
    r0 = {c.id for b in EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=0, rank=0, world_size=2).epoch_sampler(0) for c in b}
    r1 = {c.id for b in EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=0, rank=1, world_size=2).epoch_sampler(0) for c in b}
    assert r0 and r1 and not (r0 & r1)


def test_loader_pads_audio_with_lengths(demo_data):
    cuts = load_cuts(demo_data, "train")
    batch = next(iter(training_loader(cuts, 8.0, 2.0, 2, seed=0)))
    audio, lens = batch["audio"], batch["audio_lens"]
    assert audio.shape[0] == len(batch["ids"]) == lens.shape[0] and audio.shape[1] == int(lens.max())
    for i, n in enumerate(lens.tolist()):
        assert audio[i, n:].abs().sum() == 0


def test_lazy_manifests_stream_deterministically(demo_data):
    cuts = load_cuts(demo_data, "train", lazy=True)
    assert cuts.is_lazy
    a = _ids(EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=5, min_seconds=0.5), 30)
    assert a == _ids(EndlessBatchSampler(load_cuts(demo_data, "train", lazy=True), 8.0, 2.0, 2, seed=5, min_seconds=0.5), 30)
    assert _ids(EndlessBatchSampler(cuts, 8.0, 2.0, 2, seed=5, start=12, min_seconds=0.5), 5) == a[12:17]


def _stream(sampler, n):
    return [(i, tuple(c.id for c in cuts), tuple(round(c.start, 4) for c in cuts), pos) for i, cuts, pos in itertools.islice(iter(sampler), n)]


class CountingBlocks(Blocks):
    def __init__(self, blocks):
        super().__init__(blocks.loaders, blocks.source)
        self.loaded = []

    def load(self, i):
        self.loaded.append(i)
        return super().load(i)


def test_a_saved_position_resumes_the_stream_exactly_without_replaying_it(demo_data):
    blocks = Blocks.from_cuts(load_cuts(demo_data, "train"), block_cuts=5)  # 26 cuts -> 6 blocks, 2 units per epoch
    full = _stream(EndlessBatchSampler(blocks, 8.0, 2.0, 2, seed=3), 60)  # several epochs
    assert len({pos[0] for *_, pos in full}) >= 3
    for k in (0, 7, 23, 41):
        index, position = full[k][0] + 1, full[k][3]
        counting = CountingBlocks(blocks)
        resumed = _stream(EndlessBatchSampler(counting, 8.0, 2.0, 2, seed=3, start=index, position=position), 12)
        assert resumed == full[k + 1: k + 13]
        epoch, unit, _ = position
        first_unit = EndlessBatchSampler(blocks, 8.0, 2.0, 2, seed=3).units(epoch)[unit]
        assert counting.loaded[: len(first_unit)] == first_unit  # the unit it resumes in is the first thing it reads


def test_resume_cost_does_not_grow_with_the_update_count(demo_data):
    blocks = CountingBlocks(Blocks.from_cuts(load_cuts(demo_data, "train"), block_cuts=5))
    next(iter(EndlessBatchSampler(blocks, 8.0, 2.0, 2, seed=3, start=400_000, position=(2_000, 1, 3))))
    assert len(blocks.loaded) <= 2 * 4  # one unit of at most MIX blocks (and the next one when the first is used up)


def test_large_manifests_are_read_in_cached_blocks_and_shar_shards_train_the_same(demo_data, tmp_path, monkeypatch):
    from uniwav.data import batches
    from uniwav.data.manifests import cuts_path

    cuts = load_cuts(demo_data, "train")
    expected = _ids(EndlessBatchSampler(Blocks.from_cuts(cuts, block_cuts=5), 8.0, 2.0, 2, seed=1), 15)
    monkeypatch.setattr(batches, "EAGER_MANIFEST_BYTES", 0)  # a "large" manifest
    path = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(path)
    from_disk = Blocks.from_manifest(path, block_cuts=5)
    assert len(list(tmp_path.glob("blocks-*/block*.jsonl.gz"))) == len(from_disk) == 6
    assert _ids(EndlessBatchSampler(from_disk, 8.0, 2.0, 2, seed=1), 15) == expected
    shar = tmp_path / "shar"
    shar.mkdir()
    cuts.to_shar(shar, fields={"recording": "flac"}, shard_size=5)
    from_shar = Blocks.from_shar(shar)
    assert _ids(EndlessBatchSampler(from_shar, 8.0, 2.0, 2, seed=1), 15) == expected
    batch = next(iter(training_loader(from_shar, 8.0, 2.0, 2, seed=1)))
    assert batch["audio"].abs().sum() > 0 and batch["position"] is not None
    assert cuts_path(demo_data, "train").is_file()
