"""The training loop's faster paths compute what the plain ones did, and the loop's overhead is measured.

Equality: the multi-tensor EMA and the fused AdamW against the per-parameter loops they replaced
(within float rounding: lerp and a fused kernel round differently), the batched reflection padding
of the features against per-row ``F.pad`` (bit-exact), bf16 attention on a CPU against
``F.scaled_dot_product_attention`` in float32 (within bf16 rounding), and a whole bf16 training loss. Exact resume with these paths is
tests/test_training.py's. Speed itself is ``uniwav bench``'s, never a threshold here.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from uniwav.config import FeatureConfig, OptimConfig
from uniwav.features.mel import LogMel
from uniwav.models.ema import ema_update
from uniwav.models.layers import attention
from uniwav.models.uniwav import UniWav
from uniwav.training.schedule import adamw_warmup_cosine

from conftest import SMALL_OVERRIDES, small_model_config


def _loop_ema(teacher, student, decay, copy_prefixes=()):
    """The per-parameter EMA of uniwav 0.2."""
    t_params = dict(teacher.named_parameters())
    for name, p in student.named_parameters():
        t = t_params[name]
        if name.startswith(copy_prefixes):
            t.copy_(p.detach())
        else:
            t.mul_(decay).add_(p.detach().to(t.dtype), alpha=1.0 - decay)


@torch.no_grad()
def test_multi_tensor_ema_equals_the_per_parameter_loop():
    model = UniWav(small_model_config())
    student = model.backbone.encoder.context
    for p in student.parameters():
        p.add_(torch.randn_like(p))  # a student that moved away from its teacher
    fast, slow = copy.deepcopy(model.teacher), copy.deepcopy(model.teacher)
    for decay in (0.9, 0.999, 0.9999):
        ema_update(fast, student, decay, ("pos_conv.",))
        _loop_ema(slow, student, decay, ("pos_conv.",))
    for (name, a), b in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
        if name.startswith("pos_conv."):
            assert torch.equal(a, dict(student.named_parameters())[name])  # copied, not averaged
    assert not torch.equal(next(fast.parameters()), next(model.teacher.parameters()))  # it moved


def test_fused_adamw_follows_the_per_parameter_adamw():
    torch.manual_seed(0)
    model = UniWav(small_model_config())
    twin = copy.deepcopy(model)
    o = OptimConfig(lr=1e-3, weight_decay=0.01, warmup_steps=1)  # the schedule starts at the peak rate
    fused = adamw_warmup_cosine([p for p in model.parameters() if p.requires_grad], o)["optimizer"]
    plain = torch.optim.AdamW([p for p in twin.parameters() if p.requires_grad], lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                              weight_decay=o.weight_decay, foreach=False)
    assert fused.defaults["fused"]
    g = torch.Generator().manual_seed(0)
    for _ in range(5):  # the same gradients for both: the optimizers alone are compared
        for a, b in zip(model.parameters(), twin.parameters()):
            a.grad = torch.randn(a.shape, generator=g) * 10.0 ** float(torch.randint(-6, 1, (1,), generator=g))
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(next(model.parameters()), next(UniWav(small_model_config()).parameters()))


def _per_row_pad(wav, lengths, p):
    """The per-row padding of uniwav 0.2."""
    rows, width = [], wav.shape[1] + 2 * p
    for row, n in zip(wav, lengths.tolist()):
        x = F.pad(row[:n][None, None], (p, p), mode="reflect" if n > p else "constant")[0, 0]
        rows.append(F.pad(x, (0, width - x.shape[0])))
    return torch.stack(rows)


def test_batched_reflection_padding_is_bit_exact():
    mel = LogMel(FeatureConfig(n_fft=64, win_length=64, hop_length=16, n_mels=8))
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        B, S = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(1, 400, (1,), generator=g))
        wav = torch.randn(B, S, generator=g)
        lengths = torch.randint(1, S + 1, (B,), generator=g)
        lengths[0] = S  # the longest row fills the batch, as in a collated batch
        assert torch.equal(mel._pad(wav, lengths), _per_row_pad(wav, lengths, 32)), (B, S, lengths.tolist())


def test_loop_overhead_is_measured_on_the_same_batches(demo_data, tmp_path):
    from uniwav.bench.loop import loop_overhead

    rows = loop_overhead(demo_data, "cpu", updates=3, warmup=2, tasks=("pretrain",), overrides=tuple(SMALL_OVERRIDES), work_dir=tmp_path)
    row = rows["loop_overhead.pretrain"]
    assert row["updates"] == 3 and row["bare_update_seconds"] > 0 and row["real_update_seconds"] > 0
    assert row["ratio"] == pytest.approx(row["real_update_seconds"] / row["bare_update_seconds"])
    assert not any(tmp_path.iterdir())  # its runs are removed


def _qkv_and_mask(B=3, H=2, T=37, d=16):
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, T, d) for _ in range(3))
    mask = torch.ones(B, 1, 1, T, dtype=torch.bool)
    mask[1, ..., 30:] = False  # row 1 has 7 padded frames, row 2 one
    mask[2, ..., -1:] = False
    return q, k, v, mask


def test_bf16_cpu_attention_follows_float32_sdpa():
    q, k, v, mask = _qkv_and_mask()
    grad = torch.randn(q.shape)
    ref_in = [t.clone().requires_grad_(True) for t in (q, k, v)]
    ref = F.scaled_dot_product_attention(*ref_in, attn_mask=mask)
    ref.backward(grad)
    ours_in = [t.bfloat16().requires_grad_(True) for t in (q, k, v)]
    ours = attention(*ours_in, mask)
    assert ours.dtype == torch.bfloat16
    ours.float().backward(grad)
    # bf16 keeps 8 bits of mantissa: the inputs' rounding alone moves outputs by ~1e-2
    torch.testing.assert_close(ours.float(), ref, rtol=0, atol=3e-2)
    for a, b, name in zip(ours_in, ref_in, "qkv"):
        torch.testing.assert_close(a.grad.float(), b.grad, rtol=0, atol=6e-2, msg=name)


def test_bf16_cpu_attention_ignores_masked_keys():
    q, k, v, mask = (t.bfloat16() if t.dtype != torch.bool else t for t in _qkv_and_mask())
    out = attention(q, k, v, mask)
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 30:] = 1e3  # what stands at padded frames cannot leak into any output
    v2[1, :, 30:] = -1e3
    assert torch.equal(attention(q, k2, v2, mask), out)
    assert torch.isfinite(out).all()


def test_bf16_cpu_attention_dropout_is_unbiased():
    q, k, v, mask = (t.bfloat16() if t.dtype != torch.bool else t for t in _qkv_and_mask(T=8, d=8))
    clean = attention(q, k, v, mask).float()
    torch.manual_seed(1)
    draws = torch.stack([attention(q, k, v, mask, dropout_p=0.3).float() for _ in range(400)])
    assert not torch.allclose(draws[0], clean, atol=1e-2)  # weights were dropped
    torch.testing.assert_close(draws.mean(0), clean, rtol=0, atol=0.1)  # kept ones rescaled by 1/(1-p)


def test_bf16_training_loss_follows_float32():
    """A whole pre-training forward under bf16 autocast (the CPU attention path) against float32."""
    torch.manual_seed(0)
    cfg = small_model_config()
    model = UniWav(cfg).train()
    feats, lengths = torch.randn(2, 60, cfg.features.n_mels), torch.tensor([60, 41])
    mask = torch.zeros(2, 60, dtype=torch.bool)
    mask[:, 10:25] = True
    torch.manual_seed(1)
    full = model(feats, lengths, mask).loss
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = model(feats, lengths, mask).loss
    torch.testing.assert_close(half.float(), full, rtol=5e-3, atol=0)  # 4e-4 apart here


def test_bf16_cpu_attention_falls_back_to_sdpa_past_its_memory_budget(monkeypatch):
    import uniwav.models.layers as layers

    q, k, v, mask = (t.bfloat16() if t.dtype != torch.bool else t for t in _qkv_and_mask())
    eager = attention(q, k, v, mask)
    monkeypatch.setattr(layers, "MAX_EAGER_SCORES", q.shape[0] * q.shape[1] * q.shape[2] ** 2 - 1)
    flash = attention(q, k, v, mask)
    assert torch.equal(flash, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert not torch.equal(flash, eager)  # the two paths round differently: the switch is observable
