import itertools

from uniwav.data.batches import EndlessBatchSampler, training_loader
from uniwav.data.manifests import load_cuts


def _ids(sampler, n):
    return [(i, tuple(c.id for c in cuts), tuple(round(c.start, 4) for c in cuts)) for i, cuts in itertools.islice(iter(sampler), n)]


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
    for _, batch in itertools.islice(iter(sampler), 60):
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
