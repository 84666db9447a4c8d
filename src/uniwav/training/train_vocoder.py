"""``uniwav train-vocoder``: a Vocos vocoder on the project's feature config.

Generator loss = mel_weight * L1(log-mel) + stft_weight * multi-resolution STFT loss
                 + LSGAN adversarial + feature_matching_weight * feature matching,
discriminators (multi-period + multi-resolution) trained with LSGAN from ``gan_start_step`` on.
Manual optimisation: ``global_step`` counts generator updates (the discriminator's optimizer is
stepped directly), so ``--max-steps`` and resume positions mean generator updates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from uniwav.config import TrainVocoderConfig
from uniwav.data.manifests import check_sample_rate, load_cuts
from uniwav.models.discriminators import Discriminators, discriminator_loss, feature_matching_loss, generator_loss
from uniwav.models.vocoder import Vocoder
from uniwav.training.callbacks import PeriodicSamples, fixed_sample_batch
from uniwav.training.launch import launch
from uniwav.training.oom import explain_oom
from uniwav.training.schedule import adamw_warmup_cosine
from uniwav.training.task import TrainingTask

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


class VocoderTask(TrainingTask):
    config_class = TrainVocoderConfig
    model_class = Vocoder
    default_preset = "vocoder_tiny"
    seed_tag = "vocoder"

    def __init__(self, config: dict):
        super().__init__(config)
        self.discriminators = Discriminators(tuple(self.cfg.mpd_periods), tuple(self.cfg.mrd_ffts))
        self.automatic_optimization = False

    @classmethod
    def complete_config(cls, cfg: TrainVocoderConfig, data_dir, pretrained, init, **options) -> TrainVocoderConfig:
        check_sample_rate(data_dir, cfg.model.features.sample_rate)
        return cfg

    @property
    def find_unused_parameters(self) -> bool:
        return True  # two backward passes per step

    def callbacks(self) -> list:
        return [VocoderSamples(fixed_sample_batch(load_cuts(self.data_dir, self.sample_split())), self.cfg.trainer.sample_every)]

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
        self.seed_step(batch)
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
        values = {"loss/generator": loss_g, "loss/mel_l1": out["mel"], "loss/mrstft": out["stft"]}
        if gan:
            values.update({"loss/discriminator": loss_d, "loss/adversarial": adv, "loss/feature_matching": fm})
        self.log_step(wav.shape[0], values, prog_bar=("loss/generator", "loss/mel_l1", "loss/discriminator"))

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
                  max_minutes: Optional[float] = None, progress: bool = True, resume_from: Optional[str] = None) -> Path:
    """Train (or resume) a Vocos vocoder on ``data_dir``'s train split into ``run_dir``."""
    return launch(VocoderTask, data_dir, run_dir, preset, overrides, max_steps=max_steps, max_minutes=max_minutes, progress=progress,
                  resume_from=resume_from)


def feature_overrides(model_path) -> list[str]:
    """model.features.* overrides that copy a trained model's mel config (normalisation excluded)."""
    import json

    from uniwav.config import FeatureConfig, from_dict
    from uniwav.models.pretrained import load_model_config

    features = from_dict(FeatureConfig, load_model_config(model_path)["features"])
    return [f"model.features.{k}={json.dumps(v)}" for k, v in features.mel_fields().items()]
