"""``uniwav finetune-tokenizer``: put a residual vector quantiser on a pre-trained UniWav's z and
teach the decoder to regenerate whole utterances from the codes alone.

Loss = flow matching on every valid frame + commitment_weight * commitment. Quantizer dropout
draws the number of codebooks per batch from (seed, batch index) only, so every process uses
the same number. The encoder and layer mix are frozen by default.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Optional

import lightning as L
import torch

from uniwav.config import ConfigError, FinetuneTokenizerConfig, from_dict, load_config, to_dict
from uniwav.data.manifests import available_splits, load_cuts
from uniwav.models.tokenizer import SpeechTokenizer
from uniwav.training.callbacks import PeriodicSamples
from uniwav.training.oom import explain_oom
from uniwav.training.run import PretrainData, check_sample_rate
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.training.trainer import build_trainer, fit, resolve_run_config
from uniwav.utils import stable_seed


class TokenizerTask(L.LightningModule):
    def __init__(self, config: dict, pretrained=None):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: FinetuneTokenizerConfig = from_dict(FinetuneTokenizerConfig, config)
        if pretrained is not None:
            self.model = SpeechTokenizer.from_uniwav(pretrained, self.cfg.model.quantizer)
        else:
            self.model = SpeechTokenizer(self.cfg.model)
        if self.cfg.freeze_encoder:
            self.model.encoder.requires_grad_(False)
            self.model.layer_weights.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        n = random.Random(stable_seed(self.cfg.seed, "quantizers", batch["index"])).randint(1, self.model.quantizer.num_quantizers)
        torch.manual_seed(stable_seed(self.cfg.seed, "tokenizer", batch["index"], self.global_rank))
        if self.cfg.freeze_encoder:
            self.model.encoder.eval()  # no dropout in a frozen encoder
        with explain_oom(batch):
            with torch.no_grad():
                feats, frames = self.model.features(batch["audio"], batch["audio_lens"])
            out = self.model(feats, frames, n)
        loss = out.loss + self.cfg.commitment_weight * out.commitment
        log = partial(self.log, on_step=True, on_epoch=False, batch_size=feats.shape[0])
        log("loss/total", loss.detach(), prog_bar=True)
        log("loss/flow", out.loss.detach(), prog_bar=True)
        log("loss/commitment", out.commitment.detach())
        log("quantizer/codebooks_used", float(n))
        log("quantizer/restarted_codewords", float(out.restarted))
        for k, p in enumerate(out.perplexity.tolist()):
            log(f"quantizer/perplexity_{k}", p, prog_bar=k == 0)
        return loss

    def configure_optimizers(self):
        return adamw_warmup_cosine([p for p in self.model.parameters() if p.requires_grad], self.cfg.optim)


class TokenizerSamples(PeriodicSamples):
    """A dev utterance's mel, and its resynthesis from 1..K codebooks (images, Griffin-Lim audio, L1)."""

    def __init__(self, batch: dict, every: int, nfe: int = 16):
        super().__init__(every)
        self.batch, self.nfe = batch, nfe

    def log_samples(self, tb, model, step: int) -> None:
        from uniwav.features.griffin_lim import GriffinLim
        from uniwav.training import plots

        device = model.layer_weights.device
        wav = self.batch["audio"][:1, : int(self.batch["audio_lens"][0])].to(device)
        feats, _ = model.features(wav)
        original = model.features.denormalize(feats[0])
        panels = {"original": original.cpu()}
        gl = GriffinLim(model.cfg.features, n_iter=32).to(device)
        sr = model.cfg.features.sample_rate
        for n in range(1, model.quantizer.num_quantizers + 1):
            codes, frames = model.encode(wav, num_quantizers=n)
            mel = model.features.denormalize(model.decode(codes, frames, nfe=self.nfe)[0])
            rate = f"{model.bitrate(n):g}"
            panels[f"{rate} bit/s"] = mel.cpu()
            tb.add_scalar(f"samples/mel_l1_{rate}bps", float((mel - original).abs().mean()), step)
            tb.add_audio(f"samples/resynth_{rate}bps_griffinlim", gl(mel).cpu()[None], step, sample_rate=sr)
        tb.add_figure("samples/mel_resynthesis", plots.mel_figure(panels, title=f"step {step}"), step)


def finetune_tokenizer(data_dir, run_dir, init: str, preset: Optional[str] = None, overrides: Optional[list[str]] = None,
                       max_steps: Optional[int] = None, max_minutes: Optional[float] = None, progress: bool = True) -> Path:
    """Fine-tune a speech tokenizer from the pre-trained UniWav ``init`` on ``data_dir``'s train split."""
    from uniwav.models.uniwav import UniWav
    from uniwav.training.callbacks import fixed_sample_batch

    if not init or init == "none":
        raise ConfigError("finetune-tokenizer needs --init: a pre-trained UniWav run or export")
    run_dir = Path(run_dir)
    pretrained = UniWav.from_pretrained(init)

    def build() -> FinetuneTokenizerConfig:
        saved = run_dir / "config.yaml"
        cfg = load_config(FinetuneTokenizerConfig, preset or (str(saved) if saved.is_file() else "tokenizer_tiny"), overrides)
        cfg.init = str(init)
        p = pretrained.cfg
        cfg.model.features, cfg.model.encoder, cfg.model.decoder = p.features, p.encoder, p.decoder
        check_sample_rate(data_dir, p.features.sample_rate)
        cfg.validate()
        return cfg

    cfg, resuming = resolve_run_config(run_dir, FinetuneTokenizerConfig, build)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = TokenizerTask(to_dict(cfg), pretrained=None if resuming else pretrained)
    split = "dev" if "dev" in available_splits(data_dir) else "train"
    trainer = build_trainer(run_dir, cfg.trainer, grad_clip=cfg.optim.grad_clip,
                            max_steps=max_steps if max_steps is not None else cfg.optim.total_steps, max_minutes=max_minutes,
                            progress=progress, summary=not resuming, find_unused_parameters=not cfg.freeze_encoder,
                            callbacks=[TokenizerSamples(fixed_sample_batch(load_cuts(data_dir, split)), cfg.trainer.sample_every)])
    fit(trainer, task, PretrainData(data_dir, cfg), run_dir, compile=cfg.trainer.compile)
    return run_dir
