import librosa
import numpy as np
import pytest
import torch

from uniwav.config import FeatureConfig
from uniwav.features import GriffinLim, LogMel, mel_filterbank, spectral_convergence
from uniwav.features.mel import num_frames

from conftest import tone


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig.vocos_24k()], ids=["16k", "vocos24k"])
def test_filterbank_matches_librosa(cfg):
    ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
                              htk=cfg.mel_scale == "htk", norm=cfg.mel_norm)
    np.testing.assert_allclose(mel_filterbank(cfg).numpy(), ref, rtol=1e-5, atol=1e-7)


def test_log_mel_matches_librosa_pipeline():
    cfg = FeatureConfig()
    wav = tone(1.3)
    ref = librosa.feature.melspectrogram(y=wav, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                                         center=True, pad_mode="reflect", power=1.0, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    ref = np.log(np.maximum(ref, cfg.log_floor)).T
    ours, frames = LogMel(cfg).raw(torch.from_numpy(wav))
    assert ours.shape == (1, ref.shape[0], cfg.n_mels) and int(frames[0]) == ref.shape[0]
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=2e-3)


def test_shapes_frame_rate_and_padding_invariance():
    cfg = FeatureConfig()
    mel = LogMel(cfg)
    wavs = [torch.from_numpy(tone(s, seed=i)) for i, s in enumerate((1.0, 0.37, 0.8))]
    lens = torch.tensor([len(w) for w in wavs])
    batch = torch.zeros(3, int(lens.max()))
    for i, w in enumerate(wavs):
        batch[i, : len(w)] = w
    feats, frames = mel(batch, lens)
    assert feats.shape == (3, 51, cfg.n_mels)  # 1 s at 50 frames/s, center=True -> 51 frames
    assert frames.tolist() == [num_frames(int(n), cfg) for n in lens]
    for i, w in enumerate(wavs):
        alone, n = mel(w[None])
        torch.testing.assert_close(feats[i, : int(n[0])], alone[0], atol=1e-4, rtol=1e-4)
        assert torch.all(feats[i, int(n[0]):] == 0)


def test_normalisation_round_trip():
    cfg = FeatureConfig(norm_mean=[1.0] * 80, norm_std=[2.0] * 80)
    mel = LogMel(cfg)
    wav = torch.from_numpy(tone(0.5))
    raw, _ = mel.raw(wav)
    feats, _ = mel(wav)
    torch.testing.assert_close(feats, (raw - 1.0) / 2.0)
    torch.testing.assert_close(mel.denormalize(feats), raw)


def test_griffin_lim_reaches_spectral_convergence_bound():
    cfg = FeatureConfig()
    wav = torch.from_numpy(tone(1.0, freq=300.0))
    gl = GriffinLim(cfg, n_iter=64)
    target = gl._stft(wav[None]).abs()
    rebuilt = gl.from_magnitude(target)
    sc = spectral_convergence(target, gl._stft(rebuilt).abs())
    assert sc < 0.15, sc
    # through the mel (lossy pseudo-inverse): audio of the right length and a sane spectrum
    log_mel, _ = LogMel(cfg).raw(wav)
    out = gl(log_mel[0])
    assert out.shape[0] == (log_mel.shape[1] - 1) * cfg.hop_length and out.abs().max() <= 0.99 + 1e-6
    mel_again, _ = LogMel(cfg).raw(out)
    n = min(mel_again.shape[1], log_mel.shape[1])
    assert (mel_again[0, :n] - log_mel[0, :n]).abs().mean() < 1.0
