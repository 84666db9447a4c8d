"""One battery over every model class (as transformers' common model tests): on a tiny config,
save_pretrained / from_pretrained round-trips weights, config and outputs; a padded batch gives
each utterance what it gets alone; and more padding changes nothing."""

import dataclasses

import pytest
import torch

from uniwav.config import CTCModelConfig, QuantizerConfig, TokenizerModelConfig, TTSModelConfig, VocoderModelConfig
from uniwav.models.ctc import CTCModel
from uniwav.models.layers import lengths_to_padding_mask
from uniwav.models.tokenizer import SpeechTokenizer
from uniwav.models.tts import TTSModel
from uniwav.models.uniwav import UniWav
from uniwav.models.vocoder import Vocoder

from conftest import small_model_config

SR = 16000
LENGTHS = [SR, int(0.62 * SR), int(0.31 * SR)]  # samples of a padded batch


def _busy(model):
    """Zero-initialised heads and gates would make every output trivially padding-invariant."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and p.abs().sum() == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def uniwav():
    return UniWav(small_model_config())


def ctc():
    c = small_model_config()
    return CTCModel(CTCModelConfig(features=c.features, encoder=c.encoder, vocab=["<blank>", " ", "a", "b"]))


def tokenizer():
    cfg = TokenizerModelConfig(quantizer=QuantizerConfig(num_quantizers=2, codebook_size=16, semantic_layer=2))  # Eq. 11's path
    tok = SpeechTokenizer.from_pretrained_backbone(UniWav(small_model_config()), cfg)
    tok.train()
    tok.quantizer(torch.randn(200, 32))  # k-means initialisation of both stages
    return tok


def tts():
    return TTSModel.from_pretrained_backbone(UniWav(small_model_config()),
                                             TTSModelConfig(vocab=list(" abc"), text_dim=8, text_layers=2, duration_dim=8, duration_layers=2))


def vocoder():
    return Vocoder(VocoderModelConfig(features=small_model_config().features, dim=16, intermediate_dim=32, layers=2))


def outputs(model, wav: torch.Tensor, lengths: torch.Tensor) -> list:
    """What each model computes for a padded batch of waveforms, cut to each utterance's length."""
    feats, frames = model.features.prepare(wav, lengths)
    pad = lengths_to_padding_mask(frames, feats.shape[1])
    n = frames.tolist()
    if isinstance(model, UniWav):
        z = model.extract(wav, lengths)["z"]
        t = torch.full((len(n),), 0.4)
        v = model.backbone.decoder(feats, t, z, pad)
        return [torch.cat([z[i, : n[i]], v[i, : n[i]]], -1) for i in range(len(n))]
    if isinstance(model, CTCModel):
        lp, _ = model.log_probs(wav, lengths)
        return [lp[i, : n[i]] for i in range(len(n))]
    if isinstance(model, SpeechTokenizer):
        codes, _ = model.encode(wav, lengths)
        z, semantic = model.represent(feats, pad)
        return [torch.cat([codes[i, : n[i]].float(), z[i, : n[i]], semantic[i, : n[i]]], -1) for i in range(len(n))]
    if isinstance(model, TTSModel):
        mask = torch.zeros_like(pad)
        for i, k in enumerate(n):
            mask[i, k // 2: k] = True
        tokens = torch.arange(feats.shape[1])[None].expand(len(n), -1) % 5
        cond = model.condition(feats, mask, tokens, pad)
        v = model.backbone.decoder(feats, torch.full((len(n),), 0.5), cond, pad)
        dur = model.duration(tokens, pad)
        return [torch.cat([cond[i, : n[i]], v[i, : n[i]], dur[i, : n[i], None]], -1) for i in range(len(n))]
    if isinstance(model, Vocoder):
        mel, mel_frames = model.features.raw(wav, lengths)
        return model.vocode(mel, mel_frames)
    raise TypeError(type(model))


MODELS = [uniwav, ctc, tokenizer, tts, vocoder]


def _batch(lengths, extra: int = 0):
    g = torch.Generator().manual_seed(0)
    wav = torch.zeros(len(lengths), max(lengths) + extra)
    for i, n in enumerate(lengths):
        wav[i, :n] = 0.1 * torch.randn(n, generator=g)
    return wav, torch.tensor(lengths)


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
def test_save_and_load_round_trip(make, tmp_path):
    torch.manual_seed(0)
    model = _busy(make())
    model.save_pretrained(tmp_path / "m")
    loaded = type(model).from_pretrained(tmp_path / "m")
    assert dataclasses.asdict(loaded.cfg) == dataclasses.asdict(model.cfg)
    state, back = model.state_dict(), loaded.state_dict()
    assert set(state) == set(back) and all(torch.equal(state[k], back[k]) for k in state)
    wav, lengths = _batch(LENGTHS)
    with torch.no_grad():
        for a, b in zip(outputs(model, wav, lengths), outputs(loaded, wav, lengths)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
def test_padded_batch_equals_each_utterance_alone(make):
    torch.manual_seed(0)
    model = _busy(make())
    wav, lengths = _batch(LENGTHS)
    with torch.no_grad():
        batched = outputs(model, wav, lengths)
        for i, n in enumerate(LENGTHS):
            alone = outputs(model, wav[i: i + 1, :n], torch.tensor([n]))[0]
            torch.testing.assert_close(batched[i], alone, atol=2e-4, rtol=1e-4, msg=f"utterance {i} of {make.__name__}")


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
def test_more_padding_changes_nothing(make):
    torch.manual_seed(0)
    model = _busy(make())
    with torch.no_grad():
        a = outputs(model, *_batch(LENGTHS))
        b = outputs(model, *_batch(LENGTHS, extra=7 * 320))
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=2e-4, rtol=1e-4)
