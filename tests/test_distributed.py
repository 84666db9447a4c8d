"""Two CPU processes on gloo: teacher and codebooks stay identical across ranks and equal a
single-process run on the same global batch."""

import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from uniwav.models.uniwav import UniWav

from conftest import small_model_config

STEPS = 3


def _config(init_from_data=False):
    cfg = small_model_config()
    cfg.clustering.init_from_data = init_from_data
    cfg.decoder_loss_weight = 0.0  # flow noise is drawn per process; the encoder path is what is all-reduced
    return cfg


def _data():
    g = torch.Generator().manual_seed(7)
    feats = torch.randn(4, 24, 20, generator=g)
    lens = torch.full((4,), 24)
    mask = torch.zeros(4, 24, dtype=torch.bool)
    mask[:, 3:9] = True
    mask[:, 14:20] = True  # the same count on every utterance: per-rank means average to the global mean
    return feats, lens, mask


def _train(model, module, feats, lens, mask):
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.5)
    for step in range(STEPS):
        out = module(feats, lens, mask)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        model.after_optimizer_step(step)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(("teacher.", "codebooks."))}


def _init_worker(rank, world, init_file, out_dir):
    """Batch 1: rank 0 has fewer masked vectors than codewords; batch 2: rank 1 has."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)
    codebooks = UniWav(_config(init_from_data=True)).codebooks
    K, V, D = codebooks.codewords.shape
    for batch, counts in enumerate([(V - 1, V + 5), (V + 5, V - 3)]):
        codebooks.initialize_from(torch.randn(K, counts[rank], D))
        torch.save(codebooks.state_dict(), os.path.join(out_dir, f"rank{rank}-batch{batch}.pt"))
    dist.destroy_process_group()


def test_codebooks_initialise_together_when_a_process_has_too_few_vectors(tmp_path):
    """Every process makes the same collective calls whatever its vector count (before: a hang)."""
    ctx = mp.start_processes(_init_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=False, start_method="spawn")
    deadline = time.time() + 120
    while not ctx.join(timeout=5):
        assert time.time() < deadline, "the processes hang in a collective call"
    first = [torch.load(tmp_path / f"rank{r}-batch0.pt", weights_only=True) for r in (0, 1)]
    assert not any(bool(state["initialized"]) for state in first)  # rank 0 had too few: nobody initialised
    r0, r1 = (torch.load(tmp_path / f"rank{r}-batch1.pt", weights_only=True) for r in (0, 1))
    assert bool(r0["initialized"]) and bool(r1["initialized"])
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"


def _worker(rank, world, init_file, out_dir, init_from_data=False):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank if init_from_data else 0)  # different RNG per rank: the data init must still agree
    model = UniWav(_config(init_from_data))  # DDP broadcasts rank 0's parameters and buffers at wrap time
    ddp = DistributedDataParallel(model, find_unused_parameters=True)
    feats, lens, mask = _data()
    shard = slice(rank * 2, rank * 2 + 2)
    state = _train(model, ddp, feats[shard], lens[shard], mask[shard])
    torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_process_teacher_and_codebooks_match_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
    torch.manual_seed(0)
    model = UniWav(_config())
    single = _train(model, model, *_data())
    for k in single:
        torch.testing.assert_close(r0[k], single[k], atol=2e-5, rtol=1e-4, msg=f"{k}: 2 processes != 1 process")
    torch.manual_seed(0)
    initial = UniWav(_config()).state_dict()
    assert not torch.equal(single["codebooks.codewords"], initial["codebooks.codewords"])  # the test exercised updates


def test_two_process_data_initialised_codebooks_agree(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path), True), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert bool(r0["codebooks.initialized"])
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
