"""Dataset-level log-mel normalisation statistics, cached per feature configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from tqdm import tqdm

from uniwav.config import FeatureConfig
from uniwav.utils import atomic_write_text


def _config_hash(cfg: FeatureConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.mel_fields(), sort_keys=True).encode()).hexdigest()[:10]


def stats_path(data_dir, cfg: FeatureConfig) -> Path:
    return Path(data_dir) / f"feature_stats-{_config_hash(cfg)}.json"


@torch.no_grad()
def compute_stats(cuts, cfg: FeatureConfig, max_utterances: int = 2000, progress: bool = True) -> tuple[list, list]:
    """Per-bin mean and std of the un-normalised log-mel over (up to) ``max_utterances`` cuts."""
    from uniwav.features.mel import LogMel

    plain = dataclasses.replace(cfg, norm_mean=None, norm_std=None)
    mel = LogMel(plain)
    total = torch.zeros(cfg.n_mels, dtype=torch.float64)
    total_sq = torch.zeros(cfg.n_mels, dtype=torch.float64)
    frames = 0
    cuts = list(cuts)[:max_utterances]
    for cut in tqdm(cuts, desc="feature statistics", disable=not progress, leave=False):
        wav = torch.from_numpy(cut.load_audio()[0].copy())
        m, _ = mel.raw(wav[None])
        m = m[0].double()
        total += m.sum(0)
        total_sq += (m * m).sum(0)
        frames += m.shape[0]
    if frames == 0:
        raise ValueError("no frames to compute feature statistics from")
    mean = total / frames
    std = (total_sq / frames - mean * mean).clamp_min(1e-10).sqrt()
    return mean.tolist(), std.tolist()


def ensure_stats(data_dir, cfg: FeatureConfig, split: str = "train", progress: bool = True) -> FeatureConfig:
    """``cfg`` with the normalisation statistics of ``data_dir``'s ``split`` filled in
    (read from the cache, computed and cached if missing)."""
    from uniwav.data.manifests import load_cuts

    path = stats_path(data_dir, cfg)
    if path.is_file():
        stats = json.loads(path.read_text())
    else:
        mean, std = compute_stats(load_cuts(data_dir, split), cfg, progress=progress)
        stats = {"features": cfg.mel_fields(), "split": split, "mean": mean, "std": std}
        atomic_write_text(path, json.dumps(stats, indent=1))
    return dataclasses.replace(cfg, norm_mean=stats["mean"], norm_std=stats["std"])
