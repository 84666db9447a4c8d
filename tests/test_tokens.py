"""Speech tokens (residual VQ, codes files, tokenizer fine-tuning) and the vocoder."""

import json

import numpy as np
import pytest
import torch
import yaml

from uniwav.config import ConfigError, FeatureConfig, QuantizerConfig, TokenizerModelConfig, VocoderModelConfig
from uniwav.inference.codes import CodesError, load_codes, save_codes
from uniwav.inference.vocoders import Synthesizer, VocoderMismatchError, check_features_match, load_vocoder_model
from uniwav.models.quantization import ResidualVQ, VectorQuantizer, kmeans
from uniwav.models.tokenizer import SpeechTokenizer
from uniwav.models.uniwav import UniWav
from uniwav.models.vocoder import Vocoder

from conftest import SMALL_OVERRIDES, small_model_config, tone


def clustered(n=600, dim=8, k=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 5 * torch.randn(k, dim, generator=g)
    return centres[torch.randint(k, (n,), generator=g)] + 0.1 * torch.randn(n, dim, generator=g)


def small_tokenizer(num_quantizers=2, size=16, semantic_layer=None):
    cfg = TokenizerModelConfig(quantizer=QuantizerConfig(num_quantizers=num_quantizers, codebook_size=size, semantic_layer=semantic_layer))
    return SpeechTokenizer.from_pretrained_backbone(UniWav(small_model_config()), cfg)


def test_kmeans_finds_planted_clusters():
    x = clustered()
    centres = kmeans(x, 12, iters=20, generator=torch.Generator().manual_seed(0))
    err = ((x[:, None] - centres[None]) ** 2).sum(-1).min(1).values.mean()
    assert err < 0.5  # within-cluster spread is 8 * 0.1^2 = 0.08; a missed cluster costs ~50


def test_rvq_shapes_bits_and_residual_refinement():
    rvq = ResidualVQ(3, 16, 8, kmeans_iters=5).train()
    x = clustered()
    out = rvq(x, 2)
    assert out.quantized.shape == x.shape and out.codes.shape == (600, 2) and out.perplexity.shape == (3,)
    rvq.eval()
    errors = [float(((rvq.decode(rvq.encode(x, n)) - x) ** 2).mean()) for n in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]
    assert rvq.bits_per_frame(1) == 4 and rvq.bits_per_frame(3) == 12
    with pytest.raises(ValueError, match="1..3"):
        rvq.encode(x, 4)
    with pytest.raises(ValueError, match="0..15"):
        rvq.decode(torch.full((5, 1), 16))


def test_straight_through_gradient_and_commitment():
    rvq = ResidualVQ(1, 8, 4).train()
    x = torch.randn(50, 4, requires_grad=True)
    out = rvq(x)
    out.quantized.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))  # identity backward
    torch.testing.assert_close(out.commitment, ((x.detach() - rvq.decode(out.codes)) ** 2).mean())


def test_ema_update_rule_and_dead_code_restart():
    vq = VectorQuantizer(4, 2, decay=0.5, dead_threshold=0.3)
    vq.codewords.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [100.0, 100.0], [-10.0, 0.0]]))
    vq.ema_sums.copy_(vq.codewords)
    vq.ema_counts.fill_(1.0)
    vq.initialized.fill_(True)
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [9.0, 9.0], [-9.0, 1.0]])
    codes = vq.encode(x)
    assert codes.tolist() == [0, 0, 1, 3]
    restarted = vq.update(x, codes)
    # codeword 0: sums 0.5*0 + 0.5*(2,2) = (1,1), count 0.5*1 + 0.5*2 = 1.5 -> (2/3, 2/3)
    torch.testing.assert_close(vq.codewords[0], torch.tensor([2 / 3, 2 / 3]))
    torch.testing.assert_close(vq.codewords[1], torch.tensor([9.5, 9.5]))
    # codeword 2 got nothing: count 0.5 -> stays; after a second empty update 0.25 < 0.3 -> restarted onto a batch vector
    assert restarted == 0 and torch.allclose(vq.codewords[2], torch.tensor([100.0, 100.0]))
    restarted = vq.update(x, vq.encode(x))
    assert restarted == 1
    assert any(torch.equal(vq.codewords[2], row) for row in x)


def test_quantizer_dropout_uses_a_prefix_and_updates_every_stage():
    tok = small_tokenizer(num_quantizers=2).train()
    feats = torch.randn(2, 40, 20)
    lengths = torch.tensor([40, 30])
    before = [s.ema_counts.clone() for s in tok.quantizer.stages]
    out = tok(feats, lengths, num_quantizers=1)
    assert out.num_quantizers == 1 and torch.isfinite(out.loss)
    for s, b in zip(tok.quantizer.stages, before):
        assert bool(s.initialized) and not torch.equal(s.ema_counts, b)
    out.loss.backward()
    assert tok.backbone.decoder.out_proj.weight.grad is not None


def test_semantic_first_codebook_quantises_its_layer_and_the_rest_the_residual_of_z():
    """The paper's Eq. 11: codebook 1 on the semantic layer, codebooks 2.. on z minus codebook 1's vector."""
    tok = small_tokenizer(num_quantizers=3, size=8, semantic_layer=2).train()
    feats, lengths = torch.randn(2, 40, 20), torch.tensor([40, 31])
    tok(feats, lengths)  # initialises every stage from this batch
    tok.eval()
    padding = torch.arange(40)[None] >= lengths[:, None]
    z, semantic = tok.represent(feats, padding)
    hidden = tok.backbone.encoder(feats, padding).hidden[1]
    torch.testing.assert_close(semantic, torch.nn.functional.layer_norm(hidden, hidden.shape[-1:]))
    stages = tok.quantizer.stages
    codes = tok.quantizer.encode(z, 3, first=semantic)
    first = stages[0].encode(semantic.reshape(-1, semantic.shape[-1])).view(2, 40)
    assert torch.equal(codes[..., 0], first)
    residual = z - stages[0].decode(first)
    assert torch.equal(codes[..., 1], stages[1].encode(residual.reshape(-1, residual.shape[-1])).view(2, 40))
    out = tok.quantizer(z[~padding], 3, first=semantic[~padding])
    assert torch.equal(out.codes, codes[~padding])  # training and inference agree
    rvq = ResidualVQ(2, 12, 8).train()  # on data where the two inputs differ: the first stage follows `first`
    x, first = clustered(seed=1), clustered(seed=2)
    out = rvq(x, 2, first=first)
    assert torch.equal(out.codes[:, 0], rvq.stages[0].encode(first)) and not torch.equal(out.codes[:, 0], rvq.stages[0].encode(x))
    assert torch.equal(out.codes[:, 1], rvq.stages[1].encode(x - rvq.stages[0].decode(out.codes[:, 0])))
    with pytest.raises(ConfigError, match="semantic_layer"):
        small_tokenizer(semantic_layer=9)


def test_bitrates_and_codes_padding():
    tok = small_tokenizer(num_quantizers=2, size=1024).eval()
    assert tok.bitrate(1) == 500 and tok.bitrate(2) == 1000
    assert tok.quantizers_for(500) == 1 and tok.quantizers_for(1000) == 2
    with pytest.raises(ConfigError, match="500, 1000"):
        tok.quantizers_for(750)
    wav = torch.zeros(2, 16000)
    wav[0] = torch.from_numpy(tone(1.0))
    wav[1, :8000] = torch.from_numpy(tone(0.5))
    codes, frames = tok.encode(wav, torch.tensor([16000, 8000]), num_quantizers=1)
    assert codes.shape == (2, 51, 1) and frames.tolist() == [51, 26]
    assert (codes[1, 26:] == -1).all() and (codes[0] >= 0).all()
    mel = tok.decode(codes, frames, nfe=2)
    assert mel.shape == (2, 51, 20) and (mel[1, 26:] == 0).all()


def test_codes_file_round_trip_and_refusals(tmp_path):
    tok = small_tokenizer(size=1024).eval()
    codes = [np.random.default_rng(0).integers(0, 1024, (30, 1)), np.random.default_rng(1).integers(0, 1024, (12, 1))]
    path = tmp_path / "codes.npz"
    written = save_codes(path, ["a.wav", "b.wav"], codes, tok)
    assert written.bitrate == 500 == written.measured_bitrate()
    back = load_codes(path, tok)
    assert back.names == ["a.wav", "b.wav"] and all(np.array_equal(a, b) for a, b in zip(codes, back.codes))
    other = small_tokenizer(size=1024)
    other.quantizer.stages[0].codewords.add_(1.0)
    with pytest.raises(CodesError, match="another tokenizer"):
        load_codes(path, other)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["bitrate"] = np.array(1000.0)
    np.savez(tmp_path / "forged.npz", **arrays)
    with pytest.raises(CodesError, match="header says 1000"):
        load_codes(tmp_path / "forged.npz", tok)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CodesError, match="junk.npz"):
        load_codes(tmp_path / "junk.npz")


def write_public_vocos(folder, model: Vocoder, sample_rate=24000, hop=256, n_mels=100):
    """A checkpoint in the public Vocos layout (key names, extra buffers and config.yaml as published)."""
    folder.mkdir(parents=True)
    cfg = {
        "feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
                              "init_args": {"sample_rate": sample_rate, "n_fft": 1024, "hop_length": hop, "n_mels": n_mels, "padding": "center"}},
        "backbone": {"class_path": "vocos.models.VocosBackbone",
                     "init_args": {"input_channels": n_mels, "dim": model.cfg.dim, "intermediate_dim": model.cfg.intermediate_dim,
                                   "num_layers": model.cfg.layers}},
        "head": {"class_path": "vocos.heads.ISTFTHead", "init_args": {"dim": model.cfg.dim, "n_fft": 1024, "hop_length": hop, "padding": "same"}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    state = {k: v for k, v in model.state_dict().items()}
    state["feature_extractor.mel_spec.mel_scale.fb"] = torch.zeros(513, n_mels)
    state["feature_extractor.mel_spec.spectrogram.window"] = torch.hann_window(1024)
    state["head.istft.window"] = torch.hann_window(1024)
    torch.save(state, folder / "pytorch_model.bin")


def test_public_vocos_layout_loads_and_mismatch_is_refused(tmp_path):
    ref = Vocoder(VocoderModelConfig(features=FeatureConfig.vocos_24k(), dim=32, intermediate_dim=48, layers=2, padding="same")).eval()
    write_public_vocos(tmp_path / "vocos", ref)
    loaded = load_vocoder_model(tmp_path / "vocos")
    assert loaded.cfg.features.mel_fields() == FeatureConfig.vocos_24k().mel_fields()
    mel = torch.randn(1, 20, 100)
    torch.testing.assert_close(loaded(mel), ref(mel))
    assert loaded(mel).shape == (1, 20 * 256)
    Synthesizer(FeatureConfig.vocos_24k(), str(tmp_path / "vocos"))  # matching mel: accepted
    with pytest.raises(VocoderMismatchError, match=r"hop_length \(model 320, vocoder 256\).*sample_rate"):
        Synthesizer(FeatureConfig(), str(tmp_path / "vocos"))


def test_feature_mismatch_names_every_differing_field():
    with pytest.raises(VocoderMismatchError) as e:
        check_features_match(FeatureConfig(), FeatureConfig(n_mels=64, fmax=7000.0), "v")
    assert "n_mels" in str(e.value) and "fmax" in str(e.value) and "hop_length" not in str(e.value)
    check_features_match(FeatureConfig(norm_mean=[0.0] * 80), FeatureConfig(), "v")  # normalisation is not the mel


def test_vocoder_center_padding_inverts_our_framing():
    from uniwav.models.vocoder import istft

    cfg = FeatureConfig()
    x = torch.randn(1, 16000)
    w = torch.hann_window(cfg.n_fft)
    spec = torch.stft(x, cfg.n_fft, cfg.hop_length, window=w, center=True, return_complex=True)
    y = istft(spec, cfg.n_fft, cfg.hop_length, w, "center")
    torch.testing.assert_close(y[0], x[0, : y.shape[1]], atol=1e-4, rtol=1e-4)


def test_vocoder_losses_go_down_on_a_fixed_batch():
    from uniwav.training.train_vocoder import multi_resolution_stft_loss

    torch.manual_seed(0)
    model = Vocoder(VocoderModelConfig(features=FeatureConfig(n_mels=40), dim=64, intermediate_dim=128, layers=2))
    wav = torch.from_numpy(np.stack([tone(0.5, 220, seed=0), tone(0.5, 330, seed=1)]))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        mel, _ = model.features.raw(wav)
        y = model(mel)
        n = y.shape[1]
        mel_hat, _ = model.features.raw(y)
        loss = torch.nn.functional.l1_loss(mel_hat, mel[:, : mel_hat.shape[1]]) + multi_resolution_stft_loss(y, wav[:, :n])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses


def test_train_vocoder_cli_gan_steps_resume_and_vocode(demo_data, tmp_path):
    from uniwav.cli.main import main

    run = tmp_path / "voc"
    args = ["train-vocoder", "--data", str(demo_data), "--out", str(run), "--no-progress", "model.dim=32", "model.intermediate_dim=48",
            "model.layers=2", "model.features.n_mels=20", "data.num_workers=0", "data.max_duration=2", "trainer.sample_every=2",
            "trainer.checkpoint_every=2", "trainer.log_every=1", "gan_start_step=1", "mrd_ffts=[256]", "mpd_periods=[2,3]"]
    assert main([*args, "--max-steps", "3"]) == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3  # generator updates, the discriminator's are not counted
    assert main([*args, "--max-steps", "4"]) == 0  # resumes
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert {"loss/mel_l1", "loss/discriminator", "loss/feature_matching"} <= set(events.Tags()["scalars"])
    assert "samples/vocoded" in events.Tags()["audio"]
    from uniwav.data.manifests import load_cuts

    wav_in = tmp_path / "in.wav"
    import soundfile as sf

    sf.write(wav_in, load_cuts(demo_data, "test")[0].load_audio()[0], 16000)
    assert main(["vocode", str(wav_in), "-o", str(tmp_path / "out.wav"), "--vocoder", str(run)]) == 0
    out, sr = sf.read(tmp_path / "out.wav")
    assert sr == 16000 and len(out) > 0


def test_finetune_tokenizer_tokenize_detokenize_resynthesize_evaluate(demo_data, tmp_path, capsys):
    from uniwav.cli.main import main

    pre = tmp_path / "pre"
    assert main(["pretrain", "--data", str(demo_data), "--out", str(pre), "--max-steps", "2", "--no-progress", *SMALL_OVERRIDES]) == 0
    tok_run = tmp_path / "tok"
    assert main(["finetune-tokenizer", "--init", str(pre), "--data", str(demo_data), "--out", str(tok_run), "--max-steps", "3",
                 "--no-progress", "model.quantizer.codebook_size=1024", "data.num_workers=0", "data.max_duration=6",
                 "trainer.sample_every=2", "trainer.log_every=1", "optim.warmup_steps=1"]) == 0
    tok = SpeechTokenizer.from_pretrained(tok_run)
    p = UniWav.from_pretrained(pre)
    before, after = p.backbone.encoder.state_dict(), tok.backbone.encoder.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())  # the preset trains the encoder with the codes
    frozen_run = tmp_path / "tok-frozen"
    assert main(["finetune-tokenizer", "--init", str(pre), "--data", str(demo_data), "--out", str(frozen_run), "--max-steps", "2",
                 "--no-progress", "model.quantizer.codebook_size=16", "data.num_workers=0", "data.max_duration=6", "optim.warmup_steps=1",
                 "freeze_encoder=true"]) == 0
    frozen = SpeechTokenizer.from_pretrained(frozen_run).backbone.encoder.state_dict()
    assert all(torch.equal(frozen[k], v) for k, v in before.items())
    from uniwav.data.manifests import load_cuts
    import soundfile as sf

    wav = load_cuts(demo_data, "test")[0].load_audio()[0]
    sf.write(tmp_path / "a.wav", wav, 16000)
    codes = tmp_path / "codes.npz"
    assert main(["tokenize", "--model", str(tok_run), str(tmp_path / "a.wav"), "-o", str(codes), "--bitrate", "500"]) == 0
    data = load_codes(codes, tok)
    assert data.bitrate == 500 and data.num_quantizers == 1 and data.codes[0].shape[0] == 1 + len(wav) // 320
    assert main(["detokenize", "--model", str(tok_run), str(codes), "-o", str(tmp_path / "b.wav"), "--nfe", "2"]) == 0
    assert main(["resynthesize", "--model", str(tok_run), str(tmp_path / "a.wav"), "-o", str(tmp_path / "c.wav"), "--bitrate", "1000",
                 "--nfe", "2"]) == 0
    assert len(sf.read(tmp_path / "c.wav")[0]) == len(wav)
    assert main(["resynthesize", "--model", str(tok_run), str(tmp_path / "a.wav"), "-o", str(tmp_path / "d.wav"), "--bitrate", "700"]) == 2
    assert "not available" in capsys.readouterr().err
    out = tmp_path / "resynth.json"
    assert main(["evaluate", "resynth", "--model", str(tok_run), "--data", str(demo_data), "--split", "test", "--nfe", "2",
                 "--max-utterances", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["rows"]) == {"ground truth (vocoded)", "500 bit/s", "1000 bit/s"}
    assert result["rows"]["500 bit/s"]["bitrate"] == 500 and result["rows"]["1000 bit/s"]["bitrate"] == 1000
    for row in result["rows"].values():
        assert row["mel_l1"] > 0 and 0 <= row["stoi"] <= 1
