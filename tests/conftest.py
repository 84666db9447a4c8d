import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from uniwav.config import ClusteringConfig, DecoderConfig, EncoderConfig, FeatureConfig, ModelConfig

SR = 16000

# Overrides that shrink the tiny preset further, so a training step takes well under a second.
SMALL_OVERRIDES = [
    "model.encoder.dim=32", "model.encoder.layers=3", "model.encoder.heads=2", "model.encoder.ffn_dim=64",
    "model.encoder.pos_conv_kernel=5", "model.encoder.pos_conv_groups=4",
    "model.clustering.top_layers=2", "model.clustering.codebook_size=16",
    "model.decoder.dim=32", "model.decoder.layers=2", "model.decoder.heads=2", "model.decoder.ffn_dim=64",
    "model.decoder.pos_conv_kernel=5", "model.decoder.pos_conv_groups=4", "model.decoder.time_embed_dim=16",
    "model.features.n_mels=20",
    "data.max_duration=6", "data.crop_seconds=1.5", "data.num_workers=0", "data.num_buckets=2",
    "optim.warmup_steps=2", "optim.total_steps=100",
    "trainer.log_every=1", "trainer.sample_every=2", "trainer.checkpoint_every=2",
]


def small_model_config(dropout: float = 0.0, n_mels: int = 20) -> ModelConfig:
    return ModelConfig(
        features=FeatureConfig(n_mels=n_mels),
        encoder=EncoderConfig(dim=32, layers=3, heads=2, ffn_dim=64, dropout=dropout, attention_dropout=dropout,
                              pos_conv_kernel=5, pos_conv_groups=4, mask_prob=0.8, mask_span=4),
        clustering=ClusteringConfig(top_layers=2, codebook_size=16, teacher_decay_start=0.9, teacher_decay_end=0.99, teacher_anneal_steps=10),
        decoder=DecoderConfig(dim=32, layers=2, heads=2, ffn_dim=64, dropout=dropout, pos_conv_kernel=5, pos_conv_groups=4, time_embed_dim=16),
    )


def tone(seconds: float, freq: float = 220.0, sr: int = SR, channels: int = 1, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t * (1 + 0.3 * t)) + 0.01 * rng.standard_normal(t.shape)
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """A small espeak-ng demo corpus (about 1.5 minutes), shared by the tests that train."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng fortunes-min); the README's test command installs it")
    from uniwav.data.prepare_demo import prepare_demo

    out = tmp_path_factory.mktemp("demo")
    prepare_demo(out, minutes=1.5, seed=0, num_speakers=8, test_speakers=1, dev_speakers=1, progress=False)
    return out


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def write_wav(path, data, sr=SR, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype=subtype)
    return path
