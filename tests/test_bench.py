"""The analytic FLOP count: against a hand count on a tiny config, and against torch's counter."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from uniwav.bench.flops import context_flops, pretrain_step_flops
from uniwav.config import ClusteringConfig, DecoderConfig, EncoderConfig, FeatureConfig, ModelConfig
from uniwav.models.uniwav import UniWav


def tiny(decoder_weight=1.0):
    return ModelConfig(
        features=FeatureConfig(n_mels=4),
        encoder=EncoderConfig(dim=8, layers=1, heads=2, ffn_dim=16, dropout=0.0, attention_dropout=0.0, pos_conv_kernel=3, pos_conv_groups=2),
        clustering=ClusteringConfig(top_layers=1, codebook_size=5),
        decoder=DecoderConfig(dim=8, layers=2, heads=2, ffn_dim=16, dropout=0.0, pos_conv_kernel=3, pos_conv_groups=2, time_embed_dim=4),
        decoder_loss_weight=decoder_weight,
    )


def test_encoder_count_by_hand():
    # B=1, T=10, D=8, F=16, one block, conv kernel 3 with 2 groups:
    # conv 2*10*8*4*3 = 1920; qkv 2*10*8*24 = 3840; scores + values 2 * 2*10*10*8 = 3200; out 2*10*8*8 = 1280;
    # ffn 2*10*8*16 * 2 = 5120  -> 15360
    assert context_flops(tiny().encoder, 1, 10) == 1920 + 3840 + 3200 + 1280 + 5120


def test_step_count_matches_torch_flop_counter_on_the_forward():
    cfg = tiny()
    model = UniWav(cfg).train()
    B, T = 2, 12
    feats = torch.randn(B, T, 4)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, 3:9] = True
    counter = FlopCounterMode(display=False)
    with counter:
        model(feats, torch.tensor([T, T]), mask)
    ours = pretrain_step_flops(cfg, B, T, int(mask.sum()))
    forward = ours["student_forward"] + ours["heads_forward"] + ours["decoder_forward"] + ours["teacher_forward"] + ours["assignment"]
    # torch's counter sees the same linear layers, convolutions and codebook bmm's, but not CPU attention
    # (scaled_dot_product_attention), whose 4*B*T^2*D per block is counted by hand above
    attention = 4 * B * T * T * 8 * (2 * cfg.encoder.layers + cfg.decoder.layers)
    assert counter.get_total_flops() + attention == forward, (counter.get_total_flops(), attention, forward)
    lam0 = pretrain_step_flops(tiny(0.0), B, T, 12)
    assert lam0["decoder_forward"] == 0 and lam0["total"] < ours["total"]


def test_benchmarks_run_and_report_ratios(tmp_path):
    import importlib.util

    from conftest import tone, write_wav
    from uniwav.bench import run as bench

    step = bench.train_step("tiny", "cpu", 1, 1.0, repeats=1)
    assert step["mfu"] > 0 and step["achieved_tflops"] * step["step_seconds"] == pytest.approx(step["model_tflops_per_step"])
    mem = bench.memory("tiny", "cpu", 1, 1.0)
    assert mem["peak_mb"] >= mem["step_mb"] > 0 and mem["params_m"] > 1
    files = [write_wav(tmp_path / f"{i}.wav", tone(1.0, seed=i)) for i in range(2)]
    feats = bench.features(files)
    assert feats["audio_seconds"] == pytest.approx(2.0) and feats["x_realtime_per_core"] > 0 and feats["ratio_vs_lhotse"] > 0
    if importlib.util.find_spec("transformers") is not None:
        enc = bench.encoder_vs_hubert("tiny", "cpu", 1, 1.0, repeats=1)
        assert enc["speedup"] > 0 and abs(enc["params_ours"] - enc["params_hubert"]) / enc["params_hubert"] < 0.01  # same shape
        assert enc["hubert_mfu"] > 0 and enc["speedup_bound"] > 0


def test_onnx_row_times_both_runtimes_on_the_same_models():
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from uniwav.bench import run as bench

    row = bench.onnx_runtime(1.0, repeats=1)
    for name in ("transcribe", "vocoder"):
        assert row[f"{name}_torch_rtf"] > 0 and row[f"{name}_onnx_rtf"] > 0 and row[f"{name}_onnx_speedup"] > 0
