"""``uniwav finetune-tts``: in-context text-to-speech from the pre-trained UniWav (or from scratch).

Per utterance: one contiguous span of mask_min..mask_max of its frames is generated, the rest is
audio context; every frame carries its character from the forced alignment (the context's text
is dropped with ``prompt_text_drop_prob``); with ``cond_drop_prob`` text and context are both
dropped (classifier-free guidance). Loss: flow matching on the generated span + duration L1.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Optional

import torch

from uniwav.config import ConfigError, FinetuneTTSConfig, with_backbone_of
from uniwav.data.alignments import read_alignments, row_symbols
from uniwav.data.frontend import WORD
from uniwav.data.manifests import check_sample_rate, load_cuts
from uniwav.data.stats import ensure_stats
from uniwav.models.tts import NO_TEXT, TTSModel, alignment_tokens, expand_tokens
from uniwav.training.launch import launch
from uniwav.training.monitor import TTSMonitor
from uniwav.training.task import TrainingTask
from uniwav.utils import stable_seed


def generation_mask(n: int, T: int, lo: float, hi: float, rng: random.Random) -> torch.Tensor:
    """bool [T]: one contiguous span of round(U[lo, hi] * n) frames inside the first n (at least 1)."""
    span = max(1, min(n, round(rng.uniform(lo, hi) * n)))
    start = rng.randint(0, n - span)
    mask = torch.zeros(T, dtype=torch.bool)
    mask[start:start + span] = True
    return mask


class TTSTask(TrainingTask):
    config_class = FinetuneTTSConfig
    model_class = TTSModel
    default_preset = "tts_tiny"
    seed_tag = "tts"

    def __init__(self, config: dict):
        super().__init__(config)
        self._alignments = None

    @classmethod
    def complete_config(cls, cfg: FinetuneTTSConfig, data_dir, pretrained, init, alignments_dir=None) -> FinetuneTTSConfig:
        alignments = read_alignments(alignments_dir, "train")
        cfg.init, cfg.alignments = str(init or "none"), str(alignments_dir)
        if pretrained is not None:
            cfg.model = with_backbone_of(cfg.model, pretrained.cfg)
        else:
            cfg.model.features = ensure_stats(data_dir, cfg.model.features)
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        first = next(iter(alignments.values()))
        cfg.model.unit, cfg.model.language = first.get("unit", "char"), first.get("language", "en-us")  # the alignments' unit
        if cfg.model.unit == "char":  # every character normalize_text can produce, so any normalised text can be spoken
            cfg.model.vocab = sorted(set(" '" + string.ascii_lowercase) | {ch for row in alignments.values() for ch in row["text"]})
        else:  # every phone the training transcripts have (espeak-ng's inventory for the language is not listed by it)
            cfg.model.vocab = sorted({WORD} | {t for row in alignments.values() for t in row_symbols(row)})
        rate = next(iter(alignments.values()))["frame_rate"]
        if abs(rate - cfg.model.features.frame_rate) > 1e-6:
            raise ConfigError(f"{alignments_dir}: alignments are at {rate} frames/s, the model runs at {cfg.model.features.frame_rate}")
        return cfg

    def init_from(self, pretrained) -> None:
        self.model.backbone.load_from(pretrained.backbone)

    @property
    def alignments(self) -> dict:
        if self._alignments is None:
            self._alignments = read_alignments(self.cfg.alignments, "train")
        return self._alignments

    def train_cuts(self):
        alignments = self.alignments
        return load_cuts(self.data_dir, "train").filter(lambda c: c.id in alignments)

    def callbacks(self) -> list:
        t = self.cfg.trainer
        cuts = [c for c in load_cuts(self.data_dir, self.sample_split()) if any(s.text for s in c.supervisions)]
        return [TTSMonitor(cuts, t.monitor_utterances, t.sample_every, self.cfg.model.features.sample_rate, asr=t.monitor_asr,
                                 whisper="auto" if t.monitor_whisper else None)]

    def make_batch(self, ids, frames, T, rng: random.Random):
        c = self.cfg
        frame_tokens, tokens, durations, masks, drops = [], [], [], [], []
        for utt, n in zip(ids, frames.tolist()):
            tok, dur = alignment_tokens(self.alignments[utt], self.model.index)
            ft = expand_tokens(torch.tensor(tok), torch.tensor(dur), T)
            mask = generation_mask(n, T, c.mask_min, c.mask_max, rng)
            if rng.random() < c.prompt_text_drop_prob:
                ft = ft.masked_fill(~mask, NO_TEXT)
            frame_tokens.append(ft)
            tokens.append(torch.tensor(tok))
            durations.append(torch.tensor(dur))
            masks.append(mask)
            drops.append(rng.random() < c.cond_drop_prob)
        pad = torch.nn.utils.rnn.pad_sequence
        lens = torch.tensor([len(t) for t in tokens])
        dev = self.device
        return (torch.stack(frame_tokens).to(dev), pad(tokens, batch_first=True).to(dev), pad(durations, batch_first=True).to(dev),
                lens.to(dev), torch.stack(masks).to(dev), torch.tensor(drops, device=dev))

    prog_bar = ("loss/total", "loss/flow", "loss/duration")

    def compute_loss(self, batch, feats, frames):
        rng = random.Random(stable_seed(self.cfg.seed, "tts-batch", batch["index"], self.global_rank))
        frame_tokens, tokens, durations, token_lens, mask, drop = self.make_batch(batch["ids"], frames, feats.shape[1], rng)
        out = self.model(feats, frames, frame_tokens, tokens, durations, token_lens, mask, drop)
        return out.loss, {"loss/total": out.loss, "loss/flow": out.flow_loss, "loss/duration": out.duration_loss,
                          "tts/generated_fraction": out.mask.float().sum() / frames.sum()}


def finetune_tts(data_dir, run_dir, alignments_dir, init: str = "none", preset: Optional[str] = None, overrides: Optional[list[str]] = None,
                 max_steps: Optional[int] = None, max_minutes: Optional[float] = None, progress: bool = True,
                 resume_from: Optional[str] = None) -> Path:
    """Fine-tune in-context TTS on ``data_dir``'s train split with ``alignments_dir`` (``uniwav align``)."""
    return launch(TTSTask, data_dir, run_dir, preset, overrides, init=init, max_steps=max_steps, max_minutes=max_minutes,
                  progress=progress, resume_from=resume_from, alignments_dir=alignments_dir)
