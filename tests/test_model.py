import copy

import pytest
import torch

from uniwav.models.layers import masked_instance_norm
from uniwav.models.quantization import OnlineCodebooks, perplexity
from uniwav.models.ema import annealed_decay, ema_update
from uniwav.models.encoder import span_mask
from uniwav.models.flow import ot_path, solve_ode
from uniwav.models.layers import lengths_to_padding_mask
from uniwav.config import ConfigError
from uniwav.models.uniwav import UniWav

from conftest import small_model_config


def padded_batch(lengths, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), dim, generator=g)
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x, torch.tensor(lengths)


# ---------------------------------------------------------------- masking


def test_span_mask_statistics_and_padding():
    lengths = torch.tensor([500] * 20 + [120] * 20)
    mask = span_mask(lengths, 500, mask_prob=0.8, span=10, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (40, 500)
    assert not mask[20:, 120:].any()  # never in padding
    frac = mask[:20].float().mean().item()
    assert 0.4 < frac < 0.6, frac  # about half of the frames with overlapping spans
    # masked regions come in runs of at least one span
    row = mask[0].int()
    starts = torch.nonzero(torch.diff(torch.cat([torch.zeros(1, dtype=torch.int), row])) == 1).flatten()
    ends = torch.nonzero(torch.diff(torch.cat([row, torch.zeros(1, dtype=torch.int)])) == -1).flatten()
    assert ((ends - starts + 1) >= 10).all()
    again = span_mask(lengths, 500, 0.8, 10, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


# ---------------------------------------------------------------- EMA teacher


def test_ema_update_exact_rule():
    student = torch.nn.Linear(3, 2)
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        teacher.weight.fill_(1.0)
        teacher.bias.fill_(-1.0)
        student.weight.fill_(3.0)
        student.bias.fill_(1.0)
    ema_update(teacher, student, decay=0.9)
    torch.testing.assert_close(teacher.weight, torch.full((2, 3), 0.9 * 1.0 + 0.1 * 3.0))
    torch.testing.assert_close(teacher.bias, torch.full((2,), 0.9 * -1.0 + 0.1 * 1.0))
    ema_update(teacher, student, decay=0.0)
    torch.testing.assert_close(teacher.weight, student.weight)


def test_annealed_decay_schedule():
    assert annealed_decay(0, 0.999, 0.9999, 30000) == pytest.approx(0.999)
    assert annealed_decay(15000, 0.999, 0.9999, 30000) == pytest.approx(0.99945)
    assert annealed_decay(30000, 0.999, 0.9999, 30000) == pytest.approx(0.9999)
    assert annealed_decay(10**6, 0.999, 0.9999, 30000) == pytest.approx(0.9999)


def test_teacher_follows_student_by_ema_and_gets_no_gradient():
    model = UniWav(small_model_config())
    feats, lens = padded_batch([40, 30], 20)
    out = model(feats, lens)
    out.loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    with torch.no_grad():
        for p in model.backbone.encoder.context.parameters():
            p.add_(1.0)
    decay = model.after_optimizer_step(step=0)
    assert decay == pytest.approx(0.9)
    student = dict(model.backbone.encoder.context.named_parameters())
    for name, p in model.teacher.named_parameters():
        torch.testing.assert_close(p, decay * before[name] + (1 - decay) * student[name])


# ---------------------------------------------------------------- codebooks


def test_codebook_update_rule_with_empty_codewords():
    cb = OnlineCodebooks(num_codebooks=1, codebook_size=3, dim=2, decay=0.9)
    with torch.no_grad():
        cb.codewords.copy_(torch.tensor([[[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]]]))
        cb.sums.copy_(cb.codewords)
        cb.counts.fill_(1.0)
    x = torch.tensor([[[0.1, -0.1], [0.3, 0.1], [9.0, 11.0]]])  # two near codeword 0, one near codeword 1
    idx = cb.assign(x)
    assert idx.tolist() == [[0, 0, 1]]
    cb.accumulate(x, idx)
    cb.update()
    s0 = 0.9 * torch.tensor([0.0, 0.0]) + 0.1 * torch.tensor([0.4, 0.0])
    c0 = 0.9 * 1 + 0.1 * 2
    s1 = 0.9 * torch.tensor([10.0, 10.0]) + 0.1 * torch.tensor([9.0, 11.0])
    c1 = 0.9 * 1 + 0.1 * 1
    torch.testing.assert_close(cb.codewords[0, 0], s0 / c0)
    torch.testing.assert_close(cb.codewords[0, 1], s1 / c1)
    torch.testing.assert_close(cb.codewords[0, 2], torch.tensor([-10.0, 5.0]))  # empty: untouched
    torch.testing.assert_close(cb.counts[0], torch.tensor([c0, c1, 1.0]))
    # accumulation over micro-batches equals one update on the union
    a = OnlineCodebooks(2, 8, 4, 0.9)
    b = copy.deepcopy(a)
    y = torch.randn(2, 30, 4)
    for part in (y[:, :10], y[:, 10:]):
        a.accumulate(part, a.assign(part))
    b.accumulate(y, b.assign(y))
    a.update()
    b.update()
    torch.testing.assert_close(a.codewords, b.codewords)


def test_codebooks_initialised_from_data_once():
    cb = OnlineCodebooks(num_codebooks=2, codebook_size=4, dim=3, decay=0.9, init_from_data=True)
    assert not bool(cb.initialized)
    cb.initialize_from(torch.randn(2, 3, 3))  # fewer vectors than codewords: wait for a bigger batch
    assert not bool(cb.initialized)
    x = torch.randn(2, 10, 3)
    cb.initialize_from(x)
    assert bool(cb.initialized) and "initialized" in cb.state_dict()
    for k in range(2):
        rows = {tuple(r.tolist()) for r in x[k]}
        assert all(tuple(c.tolist()) in rows for c in cb.codewords[k])
        assert len({tuple(c.tolist()) for c in cb.codewords[k]}) == 4  # distinct rows
    torch.testing.assert_close(cb.sums, cb.codewords)
    cfg = small_model_config()
    cfg.clustering.init_from_data = True
    model = UniWav(cfg)
    feats, lens = padded_batch([40, 30], 20)
    model.eval()(feats, lens)
    assert not bool(model.codebooks.initialized)  # evaluation never initialises
    model.train()(feats, lens)
    assert bool(model.codebooks.initialized)


def test_condition_dropout_hides_the_utterance_from_the_encoder_and_its_loss():
    """A dropped utterance (cond_drop_prob) is encoded fully masked, as the TTS model's unconditional
    input: nothing of its audio reaches the decoder's condition or L_enc; the other rows are untouched."""
    cfg = small_model_config()
    cfg.cond_drop_prob = 0.5
    model = UniWav(cfg).eval()  # eval: no codebook statistics; dropout layers are 0 in this config
    feats, lens = padded_batch([40, 40], 20)
    mask = span_mask(lens, 40, 0.8, 4, torch.Generator().manual_seed(1))
    assert mask[0].any() and not mask[0].all()
    changed = feats.clone()
    changed[0, ~mask[0]] += 1.0  # row 0's context frames (not its targets)

    conds = []
    model.backbone.decoder.register_forward_pre_hook(lambda module, args: conds.append(args[2]))  # (x_t, t, cond, padding)

    def run(x, drop):
        torch.manual_seed(0)  # the flow's noise and times
        out = model(x, lens, mask, drop)
        return out.enc_loss, conds[-1]

    drop = torch.tensor([True, False])
    (enc, cond), (enc_changed, cond_changed) = run(feats, drop), run(changed, drop)
    torch.testing.assert_close(enc, enc_changed, rtol=0, atol=0)
    torch.testing.assert_close(cond[0], cond_changed[0], rtol=0, atol=0)
    keep = torch.tensor([False, False])
    assert not torch.allclose(run(feats, keep)[1][0], run(changed, keep)[1][0])
    torch.testing.assert_close(run(feats, keep)[1][1], cond[1], rtol=0, atol=0)
    # L_enc of the batch with row 0 dropped is L_enc of row 1 alone
    torch.manual_seed(0)
    alone = model(feats[1:], lens[1:], mask[1:], torch.tensor([False]))
    torch.testing.assert_close(enc, alone.enc_loss)
    # without cond_drop_prob nothing is drawn: the same masks, the same losses, as before the option existed
    model.cfg.cond_drop_prob = 0.0
    assert model.train().draw_condition_drop(4, torch.device("cpu")) is None
    model.cfg.cond_drop_prob = 0.9
    torch.manual_seed(3)
    assert all(not model.draw_condition_drop(2, torch.device("cpu")).all() for _ in range(50))  # one row keeps its condition


def test_perplexity_detects_collapse():
    assert perplexity(torch.zeros(1, 100, dtype=torch.long), 16).item() == pytest.approx(1.0)
    assert perplexity(torch.arange(16).repeat(4)[None], 16).item() == pytest.approx(16.0, rel=1e-4)


def test_masked_instance_norm_ignores_padding():
    x, lens = padded_batch([10, 6], 3)
    pad = lengths_to_padding_mask(lens)
    y = masked_instance_norm(x, pad)
    alone = masked_instance_norm(x[1:2, :6], None)
    torch.testing.assert_close(y[1, :6], alone[0])
    assert torch.all(y[1, 6:] == 0)
    torch.testing.assert_close(y[0].mean(0), torch.zeros(3), atol=1e-5, rtol=0)


def test_codebooks_are_persistent_buffers_that_round_trip():
    model = UniWav(small_model_config())
    feats, lens = padded_batch([40, 30], 20)
    model(feats, lens)
    model.after_optimizer_step(0)
    state = model.state_dict()
    assert {"codebooks.codewords", "codebooks.sums", "codebooks.counts"} <= set(state)
    other = UniWav(small_model_config())
    assert not torch.equal(other.codebooks.codewords, model.codebooks.codewords)
    other.load_state_dict(state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k
    assert model.codebooks.codewords.dtype == torch.float32
    older = {k: v for k, v in state.items() if k != "codebooks.initialized"}  # written before that buffer existed
    cfg = small_model_config()
    cfg.clustering.init_from_data = True
    fresh = UniWav(cfg)
    from uniwav.models.legacy import upgrade_state_dict

    fresh.load_state_dict(upgrade_state_dict("uniwav", older))  # as from_pretrained and a resume load it
    assert bool(fresh.codebooks.initialized)  # its codebooks are in use: never re-initialised from data


# ---------------------------------------------------------------- padding invariance


def test_encoder_and_decoder_are_padding_invariant():
    model = UniWav(small_model_config()).eval()
    feats, lens = padded_batch([37, 23], 20)
    pad = lengths_to_padding_mask(lens)
    with torch.no_grad():
        out = model.backbone.encoder(feats, pad)
        z = model.backbone.mix(out.hidden)
        t = torch.tensor([0.3, 0.7])
        v = model.backbone.decoder(feats, t, z, pad)
        # make the decoder's output depend on its input (the zero-initialised head would hide bugs)
        torch.nn.init.normal_(model.backbone.decoder.out_proj.weight)
        for blk in model.backbone.decoder.blocks:
            torch.nn.init.normal_(blk.modulation[1].weight, std=0.1)
        v = model.backbone.decoder(feats, t, z, pad)
        for i, n in enumerate(lens.tolist()):
            alone = model.backbone.encoder(feats[i: i + 1, :n])
            torch.testing.assert_close(out.final[i, :n], alone.final[0], atol=1e-5, rtol=1e-4)
            z1 = model.backbone.mix(alone.hidden)
            torch.testing.assert_close(v[i, :n], model.backbone.decoder(feats[i: i + 1, :n], t[i: i + 1], z1)[0], atol=1e-4, rtol=1e-4)
        targets = model.teacher_targets(feats, pad)
        alone = model.teacher_targets(feats[1:2, :23], None)
        torch.testing.assert_close(targets[:, 1, :23], alone[:, 0], atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- flow matching


def test_ot_path_endpoints_and_velocity():
    x0, x1 = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    xt, u = ot_path(x0, x1, torch.tensor([0.0, 1.0]), sigma_min=1e-5)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[1], x1[1] + 1e-5 * x0[1])
    torch.testing.assert_close(u, x1 - (1 - 1e-5) * x0)
    # the straight path's velocity integrates exactly from x0 to (almost) x1
    out = solve_ode(lambda x, t: u, x0, nfe=4, method="euler")
    torch.testing.assert_close(out, x0 + u)


def test_ode_solvers_on_linear_field():
    x0 = torch.ones(1, 1, 1)
    exact = torch.exp(torch.tensor(1.0))
    euler = solve_ode(lambda x, t: x, x0, nfe=64, method="euler").item()
    mid = solve_ode(lambda x, t: x, x0, nfe=64, method="midpoint").item()
    assert abs(mid - exact) < abs(euler - exact) and abs(mid - exact) < 1e-3
    with pytest.raises(ValueError, match="even"):
        solve_ode(lambda x, t: x, x0, nfe=3, method="midpoint")


def test_infill_keeps_context_and_is_seeded():
    model = UniWav(small_model_config()).eval()
    feats, lens = padded_batch([30, 30], 20)
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[:, 10:20] = True
    a = model.infill(feats, mask, lens, nfe=4, seed=3)
    b = model.infill(feats, mask, lens, nfe=4, seed=3)
    c = model.infill(feats, mask, lens, nfe=4, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[~mask], feats[~mask])


def test_guided_infill_needs_condition_dropout_and_guides_against_the_fully_masked_input():
    feats, lens = padded_batch([30, 30], 20)
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[:, 10:20] = True
    plain = UniWav(small_model_config()).eval()
    with pytest.raises(ConfigError, match="cannot be guided"):
        plain.infill(feats, mask, lens, nfe=2, guidance=2.0)
    cfg = small_model_config()
    cfg.cond_drop_prob = 0.1
    model = UniWav(cfg).eval()
    torch.nn.init.normal_(model.backbone.decoder.out_proj.weight)  # the zero-initialised head would hide the condition
    unguided = model.infill(feats, mask, lens, nfe=2, seed=3)
    assert torch.equal(model.infill(feats, mask, lens, nfe=2, seed=3, guidance=0.0), unguided)
    guided = model.infill(feats, mask, lens, nfe=2, seed=3, guidance=1.0)
    assert not torch.allclose(guided, unguided)
    # v = v(z) + w (v(z) - v(z of the fully masked input)): with the same condition for both, guidance changes nothing
    pad = lengths_to_padding_mask(lens, 30)
    everything = torch.ones_like(mask)
    z_none = model.backbone.represent(feats, pad, everything)
    a = model.backbone.generate(z_none, padding_mask=pad, seed=3, context=feats, known=~everything, nfe=2)
    b = model.backbone.generate(z_none, padding_mask=pad, uncond=z_none, seed=3, context=feats, known=~everything, nfe=2, guidance=1.0)
    torch.testing.assert_close(a, b)
    assert torch.equal(guided[~mask], feats[~mask])


# ---------------------------------------------------------------- the joint objective


def test_decoder_loss_reaches_encoder():
    """grad(L_enc + lambda * L_dec) - grad(L_enc) is non-zero in the encoder and the layer mixer."""
    feats, lens = padded_batch([30, 30], 20)
    grads = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        cfg = small_model_config()
        cfg.decoder_loss_weight = weight
        model = UniWav(cfg)
        torch.nn.init.normal_(model.backbone.decoder.out_proj.weight, std=0.1)  # zero-initialised head would block the gradient
        torch.manual_seed(1)
        model(feats, lens).loss.backward()
        grads[weight] = (model.backbone.encoder.context.blocks[0].attn.qkv.weight.grad.clone(), model.backbone.layer_weights.grad)
    assert grads[0.0][1] is None or grads[0.0][1].abs().sum() == 0
    assert grads[1.0][1].abs().sum() > 0
    assert (grads[1.0][0] - grads[0.0][0]).abs().sum() > 1e-6


def test_overfitting_one_batch_lowers_both_losses():
    torch.manual_seed(0)
    model = UniWav(small_model_config())
    feats, lens = padded_batch([60, 48, 40], 20, seed=1)
    feats = feats + torch.linspace(-1, 1, 60)[None, :, None] * torch.linspace(-2, 2, 20)  # some structure to learn
    feats = feats * (~lengths_to_padding_mask(lens))[..., None]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    mask = span_mask(lens, 60, 0.8, 4, torch.Generator().manual_seed(0))
    first = last = None
    for step in range(60):
        torch.manual_seed(step % 4)  # a few fixed noise draws: the flow loss can fall too
        out = model(feats, lens, mask)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        model.after_optimizer_step(step)
        if first is None:
            first = (out.enc_loss.item(), out.dec_loss.item())
        last = (out.enc_loss.item(), out.dec_loss.item())
    assert last[0] < 0.5 * first[0], (first, last)
    assert last[1] < 0.7 * first[1], (first, last)


def test_save_and_load_pretrained(tmp_path):
    model = UniWav(small_model_config())
    model.save_pretrained(tmp_path / "exp")
    assert (tmp_path / "exp" / "model.safetensors").is_file() and (tmp_path / "exp" / "config.json").is_file()
    loaded = UniWav.from_pretrained(tmp_path / "exp")
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    wav = torch.randn(16000)
    a = loaded.extract(wav, layers=[1, 3])
    assert set(a) == {"layer_1", "layer_3", "z", "lengths"} and a["layer_1"].shape == (1, 51, 32)
    with pytest.raises(ValueError, match="out of range"):
        loaded.extract(wav, layers=[4])


def test_effective_rank_and_layer_stats():
    from uniwav.evaluation.representation import effective_rank, layer_stats

    g = torch.Generator().manual_seed(0)
    line = torch.randn(200, 1, generator=g) * torch.randn(1, 16, generator=g)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    assert effective_rank(torch.randn(4000, 16, generator=g)) > 15.0
    h = torch.randn(2, 10, 16, generator=g)
    h[1, 6:] = 1e6  # padding must not count
    stats = layer_stats([h, 2 * h], torch.tensor([10, 6]))
    assert stats[1]["rms"] == pytest.approx(2 * stats[0]["rms"], rel=1e-5) and stats[0]["rms"] < 2


# ---------------------------------------------------------------- torch.compile


def test_compile_stacks_in_place_keeps_names_and_outputs():
    from uniwav.models.compile import compile_stacks

    torch.manual_seed(0)
    model = UniWav(small_model_config()).train()
    keys = list(model.state_dict())
    feats, lengths = padded_batch([40, 31], 20)
    mask = span_mask(lengths, 40, 0.8, 4, torch.Generator().manual_seed(0))
    twin = copy.deepcopy(model)
    assert compile_stacks(model) == 3  # student context network, EMA teacher, flow decoder
    assert list(model.state_dict()) == keys  # checkpoints are unchanged
    torch.manual_seed(1)
    out = model(feats, lengths, mask)
    out.loss.backward()
    torch.manual_seed(1)
    ref = twin(feats, lengths, mask)
    ref.loss.backward()
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-4)
    grad, grad_ref = model.backbone.encoder.context.blocks[0].ffn[0].weight.grad, twin.backbone.encoder.context.blocks[0].ffn[0].weight.grad
    torch.testing.assert_close(grad, grad_ref, rtol=1e-3, atol=1e-5)
    from torch._dynamo.utils import counters

    assert counters["stats"]["unique_graphs"] >= 3, dict(counters["stats"])  # really compiled, no eager fallback


# ---------------------------------------------------------------- bf16 autocast (trainer.precision=auto)


def test_bf16_autocast_keeps_features_targets_and_codebooks_float32():
    torch.manual_seed(0)
    model = UniWav(small_model_config()).train()
    wav, lengths = torch.randn(2, 8000) * 0.1, torch.tensor([8000, 6000])
    feats, frames = model.features(wav, lengths)
    mask = span_mask(frames, feats.shape[1], 0.8, 4, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats_bf, _ = model.features(wav, lengths)
        targets = model.teacher_targets(feats, None)[:, 0]  # [K, T, D]
        idx_bf = model.codebooks.assign(targets)
        torch.manual_seed(1)
        out = model(feats, frames, mask)
    assert torch.equal(feats_bf, feats)  # the decoder's target is not rounded to bf16
    assert torch.equal(idx_bf, model.codebooks.assign(targets))  # nearest codewords in float32
    assert model.codebooks._acc_sums.dtype == torch.float32
    torch.manual_seed(1)
    ref = model(feats, frames, mask)
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    assert out.enc_loss.item() == pytest.approx(ref.enc_loss.item(), rel=0.05)
