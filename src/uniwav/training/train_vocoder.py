"""``uniwav train-vocoder``: a Vocos vocoder on the project's feature config.

Generator loss = mel_weight * L1(log-mel) + stft_weight * multi-resolution STFT loss
                 + LSGAN adversarial + feature_matching_weight * feature matching,
discriminators (multi-period + multi-resolution) trained with LSGAN from ``gan_start_step`` on.
Manual optimisation: ``global_step`` counts generator updates (the discriminator's optimizer is
stepped directly), so ``--max-steps`` and resume positions mean generator updates.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F

from uniwav.config import TrainVocoderConfig, from_dict, load_config, to_dict
from uniwav.data.manifests import available_splits, load_cuts
from uniwav.models.discriminators import Discriminators, discriminator_loss, feature_matching_loss, generator_loss
from uniwav.models.vocoder import Vocoder
from uniwav.training.callbacks import PeriodicSamples
from uniwav.training.oom import explain_oom
from uniwav.training.run import PretrainData, check_sample_rate
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.training.trainer import build_trainer, fit, resolve_run_config
from uniwav.utils import stable_seed

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)


def multi_resolution_stft_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + L1 of log magnitudes. y_hat, y [B, S]."""
    total = 0.0
    for n_fft, hop in STFT_RESOLUTIONS:
        w = torch.hann_window(n_fft, device=y.device)
        a = torch.stft(y_hat.float(), n_fft, hop, window=w, return_complex=True).abs().clamp_min(1e-5)
        b = torch.stft(y.float(), n_fft, hop, window=w, return_complex=True).abs().clamp_min(1e-5)
        sc = torch.linalg.norm(b - a) / torch.linalg.norm(b).clamp_min(1e-5)
        total = total + sc + F.l1_loss(a.log(), b.log())
    return total / len(STFT_RESOLUTIONS)


class VocoderTask(L.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: TrainVocoderConfig = from_dict(TrainVocoderConfig, config)
        self.model = Vocoder(self.cfg.model)
        self.discriminators = Discriminators(tuple(self.cfg.mpd_periods), tuple(self.cfg.mrd_ffts))
        self.automatic_optimization = False

    def generator_losses(self, wav: torch.Tensor) -> dict:
        """wav [B, S] -> the reconstruction and its spectral losses (no GAN terms)."""
        mel, _ = self.model.features.raw(wav)
        y_hat = self.model(mel)
        n = min(y_hat.shape[1], wav.shape[1])
        y, y_hat = wav[:, :n], y_hat[:, :n]
        mel_hat, _ = self.model.features.raw(y_hat)
        m = min(mel_hat.shape[1], mel.shape[1])
        return {"y": y, "y_hat": y_hat, "mel": F.l1_loss(mel_hat[:, :m], mel[:, :m]), "stft": multi_resolution_stft_loss(y_hat, y)}

    def training_step(self, batch, batch_idx):
        torch.manual_seed(stable_seed(self.cfg.seed, "vocoder", batch["index"], self.global_rank))
        c = self.cfg
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        wav = batch["audio"][:, : int(batch["audio_lens"].min())]
        with explain_oom(batch):
            out = self.generator_losses(wav)
            gan = self.global_step >= c.gan_start_step
            if gan:
                real, fake = self.discriminators(out["y"]), self.discriminators(out["y_hat"].detach())
                loss_d = discriminator_loss(real, fake)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(loss_d)
                torch.nn.utils.clip_grad_norm_(self.discriminators.parameters(), c.optim.grad_clip)
                opt_d.optimizer.step()  # direct: global_step counts generator updates only
                sched_d.step()
            loss_g = c.mel_weight * out["mel"] + c.stft_weight * out["stft"]
            if gan:
                real, fake = self.discriminators(out["y"]), self.discriminators(out["y_hat"])
                adv, fm = generator_loss(fake), feature_matching_loss(real, fake)
                loss_g = loss_g + adv + c.feature_matching_weight * fm
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.grad_clip)
            opt_g.step()
            sched_g.step()
        log = partial(self.log, on_step=True, on_epoch=False, batch_size=wav.shape[0])
        log("loss/generator", loss_g.detach(), prog_bar=True)
        log("loss/mel_l1", out["mel"].detach(), prog_bar=True)
        log("loss/mrstft", out["stft"].detach())
        if gan:
            log("loss/discriminator", loss_d.detach(), prog_bar=True)
            log("loss/adversarial", adv.detach())
            log("loss/feature_matching", fm.detach())

    def configure_optimizers(self):
        g, d = (adamw_warmup_cosine(m.parameters(), self.cfg.optim) for m in (self.model, self.discriminators))
        return [g["optimizer"], d["optimizer"]], [g["lr_scheduler"]["scheduler"], d["lr_scheduler"]["scheduler"]]


class VocoderSamples(PeriodicSamples):
    """A dev utterance and its vocoded version: audio, mel images and their L1."""

    def __init__(self, batch: dict, every: int):
        super().__init__(every)
        self.batch = batch

    def log_samples(self, tb, model, step: int) -> None:
        from uniwav.training import plots

        wav = self.batch["audio"][0, : int(self.batch["audio_lens"][0])].to(model.head.window.device)
        out = model.analysis_synthesis(wav)
        mel, _ = model.features.raw(wav[None])
        mel_out, _ = model.features.raw(out[None])
        sr = model.cfg.features.sample_rate
        tb.add_audio("samples/original", wav.cpu()[None], step, sample_rate=sr)
        tb.add_audio("samples/vocoded", out.clamp(-1, 1).cpu()[None], step, sample_rate=sr)
        l1 = float((mel - mel_out).abs().mean())
        tb.add_scalar("samples/mel_l1", l1, step)
        tb.add_figure("samples/mel_original_vocoded", plots.mel_figure({"original": mel[0].cpu(), "vocoded": mel_out[0].cpu()},
                                                                       title=f"step {step}: mel L1 {l1:.3f}"), step)


def train_vocoder(data_dir, run_dir, preset: Optional[str] = None, overrides: Optional[list[str]] = None, max_steps: Optional[int] = None,
                  max_minutes: Optional[float] = None, progress: bool = True) -> Path:
    """Train (or resume) a Vocos vocoder on ``data_dir``'s train split into ``run_dir``."""
    from uniwav.training.callbacks import fixed_sample_batch

    run_dir = Path(run_dir)

    def build() -> TrainVocoderConfig:
        saved = run_dir / "config.yaml"
        cfg = load_config(TrainVocoderConfig, preset or (str(saved) if saved.is_file() else "vocoder_tiny"), overrides)
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        return cfg

    cfg, resuming = resolve_run_config(run_dir, TrainVocoderConfig, build)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task = VocoderTask(to_dict(cfg))
    split = "dev" if "dev" in available_splits(data_dir) else "train"
    trainer = build_trainer(run_dir, cfg.trainer, grad_clip=None, max_steps=max_steps if max_steps is not None else cfg.optim.total_steps,
                            max_minutes=max_minutes, progress=progress, summary=not resuming, find_unused_parameters=True,
                            callbacks=[VocoderSamples(fixed_sample_batch(load_cuts(data_dir, split)), cfg.trainer.sample_every)])
    fit(trainer, task, PretrainData(data_dir, cfg), run_dir, compile=cfg.trainer.compile)
    return run_dir
