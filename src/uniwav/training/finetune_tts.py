"""``uniwav finetune-tts``: in-context text-to-speech from the pre-trained UniWav (or from scratch).

Per utterance: one contiguous span of mask_min..mask_max of its frames is generated, the rest is
audio context; every frame carries its character from the forced alignment (the context's text
is dropped with ``prompt_text_drop_prob``); with ``cond_drop_prob`` text and context are both
dropped (classifier-free guidance). Loss: flow matching on the generated span + duration L1.
"""

from __future__ import annotations

import random
import string
from functools import partial
from pathlib import Path
from typing import Optional

import lightning as L
import torch

from uniwav.config import ConfigError, FinetuneTTSConfig, from_dict, load_config, to_dict
from uniwav.data.batches import pretrain_loader
from uniwav.data.manifests import load_cuts
from uniwav.data.stats import ensure_stats
from uniwav.evaluation.probing import read_alignments
from uniwav.models.tts import NO_TEXT, TTSModel, alignment_tokens, expand_tokens
from uniwav.training.callbacks import PeriodicSamples
from uniwav.training.oom import explain_oom
from uniwav.training.run import check_sample_rate
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.training.trainer import build_trainer, fit, resolve_run_config
from uniwav.utils import stable_seed


def generation_mask(n: int, T: int, lo: float, hi: float, rng: random.Random) -> torch.Tensor:
    """bool [T]: one contiguous span of round(U[lo, hi] * n) frames inside the first n (at least 1)."""
    span = max(1, min(n, round(rng.uniform(lo, hi) * n)))
    start = rng.randint(0, n - span)
    mask = torch.zeros(T, dtype=torch.bool)
    mask[start:start + span] = True
    return mask


class TTSTask(L.LightningModule):
    def __init__(self, config: dict, alignments: dict, pretrained=None):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: FinetuneTTSConfig = from_dict(FinetuneTTSConfig, config)
        self.model = TTSModel.from_uniwav(pretrained, self.cfg.model) if pretrained is not None else TTSModel(self.cfg.model)
        self.alignments = alignments

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

    def training_step(self, batch, batch_idx):
        rng = random.Random(stable_seed(self.cfg.seed, "tts-batch", batch["index"], self.global_rank))
        torch.manual_seed(stable_seed(self.cfg.seed, "tts", batch["index"], self.global_rank))
        with explain_oom(batch):
            with torch.no_grad():
                feats, frames = self.model.features(batch["audio"], batch["audio_lens"])
            frame_tokens, tokens, durations, token_lens, mask, drop = self.make_batch(batch["ids"], frames, feats.shape[1], rng)
            out = self.model(feats, frames, frame_tokens, tokens, durations, token_lens, mask, drop)
        log = partial(self.log, on_step=True, on_epoch=False, batch_size=feats.shape[0])
        log("loss/total", out.loss.detach(), prog_bar=True)
        log("loss/flow", out.flow_loss, prog_bar=True)
        log("loss/duration", out.duration_loss, prog_bar=True)
        log("tts/generated_fraction", out.mask.float().sum() / frames.sum())
        return out.loss

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.model.parameters(), self.cfg.optim)


class TTSData(L.LightningDataModule):
    def __init__(self, cfg: FinetuneTTSConfig, cuts):
        super().__init__()
        self.cfg, self.cuts = cfg, cuts

    def train_dataloader(self):
        t, d = self.trainer, self.cfg.data
        return pretrain_loader(self.cuts, d.max_duration, d.crop_seconds, d.num_buckets, self.cfg.seed, rank=t.global_rank,
                               world_size=t.world_size, start=t.global_step * t.accumulate_grad_batches, num_workers=d.num_workers)


class TTSSamples(PeriodicSamples):
    """A dev utterance's second half spoken from its first half and its text: mel images and audio."""

    def __init__(self, wav: torch.Tensor, row: dict, every: int, nfe: int = 16):
        super().__init__(every)
        self.wav, self.row, self.nfe = wav, row, nfe

    def log_samples(self, tb, model, step: int) -> None:
        from uniwav.features.griffin_lim import GriffinLim
        from uniwav.training import plots

        device = model.layer_weights.device
        feats, frames = model.features(self.wav[None].to(device))
        feats = feats[0, : int(frames[0])]
        tok, dur = alignment_tokens(self.row, model.index)
        dur = torch.tensor(dur)
        cum = torch.cumsum(dur, 0)
        half = int((cum <= feats.shape[0] // 2).sum())  # tokens whose frames end in the first half
        Tp = int(cum[half - 1]) if half > 0 else 0
        gen = model.generate(feats[:Tp], tok[half:], dur[half:], nfe=self.nfe, guidance=1.0)
        target = model.features.denormalize(feats)
        made = model.features.denormalize(torch.cat([feats[:Tp], gen]))
        tb.add_figure("samples/mel_target_tts", plots.mel_figure({"target": target.cpu(), "prompt + generated": made.cpu()},
                                                                 title=f"step {step}: prompt {Tp} frames"), step)
        gl = GriffinLim(model.cfg.features, n_iter=32).to(device)
        tb.add_audio("samples/tts_griffinlim", gl(made).cpu()[None], step, sample_rate=model.cfg.features.sample_rate)


def finetune_tts(data_dir, run_dir, alignments_dir, init: str = "none", preset: Optional[str] = None, overrides: Optional[list[str]] = None,
                 max_steps: Optional[int] = None, max_minutes: Optional[float] = None, progress: bool = True) -> Path:
    """Fine-tune in-context TTS on ``data_dir``'s train split with ``alignments_dir`` (``uniwav align``)."""
    from uniwav.models.uniwav import UniWav

    run_dir = Path(run_dir)
    alignments = read_alignments(alignments_dir, "train")
    pretrained = None if init == "none" else UniWav.from_pretrained(init)

    def build() -> FinetuneTTSConfig:
        saved = run_dir / "config.yaml"
        cfg = load_config(FinetuneTTSConfig, preset or (str(saved) if saved.is_file() else "tts_tiny"), overrides)
        cfg.init, cfg.alignments = str(init), str(alignments_dir)
        if pretrained is not None:
            p = pretrained.cfg
            cfg.model.features, cfg.model.encoder, cfg.model.decoder = p.features, p.encoder, p.decoder
        else:
            cfg.model.features = ensure_stats(data_dir, cfg.model.features)
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        # every character normalize_text can produce, so any normalised text can be spoken
        cfg.model.vocab = sorted(set(" '" + string.ascii_lowercase) | {ch for row in alignments.values() for ch in row["text"]})
        rate = next(iter(alignments.values()))["frame_rate"]
        if abs(rate - cfg.model.features.frame_rate) > 1e-6:
            raise ConfigError(f"{alignments_dir}: alignments are at {rate} frames/s, the model runs at {cfg.model.features.frame_rate}")
        cfg.validate()
        return cfg

    cfg, resuming = resolve_run_config(run_dir, FinetuneTTSConfig, build)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    cuts = load_cuts(data_dir, "train").filter(lambda c: c.id in alignments)
    task = TTSTask(to_dict(cfg), alignments, pretrained=None if resuming else pretrained)
    dev = "dev" if (Path(alignments_dir) / "dev.jsonl.gz").is_file() else "train"
    dev_rows = read_alignments(alignments_dir, dev)
    dev_cut = next(c for c in load_cuts(data_dir, dev) if c.id in dev_rows)
    sample = TTSSamples(torch.from_numpy(dev_cut.load_audio()[0]), dev_rows[dev_cut.id], cfg.trainer.sample_every)
    trainer = build_trainer(run_dir, cfg.trainer, grad_clip=cfg.optim.grad_clip,
                            max_steps=max_steps if max_steps is not None else cfg.optim.total_steps, max_minutes=max_minutes,
                            progress=progress, summary=not resuming, callbacks=[sample])
    fit(trainer, task, TTSData(cfg, cuts), run_dir, compile=cfg.trainer.compile)
    return run_dir
