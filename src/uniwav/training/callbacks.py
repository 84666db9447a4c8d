"""Lightning callbacks: periodic samples for a person to look at and listen to."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch

from uniwav.evaluation.infill import infill_metrics
from uniwav.evaluation.representation import layer_stats
from uniwav.features.griffin_lim import GriffinLim
from uniwav.models.encoder import span_mask
from uniwav.models.layers import lengths_to_padding_mask
from uniwav.training import plots


class PeriodicSamples(L.Callback):
    """Base of the sample loggers: every ``every`` updates, on rank 0, with a TensorBoard logger,
    calls ``log_samples(tb, model, step)`` with the task's model in eval mode and no gradients.
    The random generators (torch, numpy, random) are restored afterwards: logging never changes training."""

    def __init__(self, every: int):
        self.every = every
        self._last = -1  # the step last sampled (a step can end several micro-batches)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        tb = getattr(trainer.logger, "experiment", None)
        if trainer.global_rank != 0 or tb is None or step == 0 or step % self.every or self._last == step:
            return
        self._last = step
        model = pl_module.model
        was_training = model.training
        states = torch.get_rng_state(), np.random.get_state(), random.getstate()
        model.eval()
        try:
            with torch.no_grad():
                self.log_samples(tb, model, step)
        finally:
            model.train(was_training)
            torch.set_rng_state(states[0])
            np.random.set_state(states[1])
            random.setstate(states[2])

    def log_samples(self, tb, model, step: int) -> None:
        raise NotImplementedError


class SampleLogger(PeriodicSamples):
    """Pre-training samples: target / masked input / infilled mel images, their audio through
    Griffin-Lim, infill L1 against the mean-frame baseline, the layer-mixer weights, codebook
    usage, per-layer effective rank and RMS, and weight histograms."""

    def __init__(self, batch: dict, every: int, nfe: int = 16):
        super().__init__(every)
        self.batch, self.nfe = batch, nfe

    def log_samples(self, tb, model, step: int) -> None:
        device = model.device
        audio = self.batch["audio"].to(device)
        lens = self.batch["audio_lens"].to(device)
        feats, frames = model.features(audio, lens)
        gen = torch.Generator().manual_seed(0)
        e = model.cfg.encoder
        mask = span_mask(frames.cpu(), feats.shape[1], e.mask_prob, e.mask_span, gen).to(feats.device)
        m = infill_metrics(model, feats, frames, mask, nfe=self.nfe)
        # codebook usage on the unmasked teacher targets of this fixed batch
        padding = lengths_to_padding_mask(frames, feats.shape[1])
        targets = model.teacher_targets(feats, padding)[:, ~padding]
        idx = model.codebooks.assign(targets)
        V = model.codebooks.codebook_size
        counts = torch.zeros(idx.shape[0], V).scatter_add_(1, idx.cpu(), torch.ones(idx.shape, dtype=torch.float32))
        tb.add_scalar("decoder/infill_l1", m["infill_l1"], step)
        tb.add_scalar("decoder/mean_frame_l1", m["mean_frame_l1"], step)
        hidden = model.backbone.encoder(feats, padding).hidden
        for i, st in enumerate(layer_stats(hidden, frames), 1):
            tb.add_scalar(f"representation/effective_rank_layer{i}", st["effective_rank"], step)
            tb.add_scalar(f"representation/rms_layer{i}", st["rms"], step)
        n = int(frames[0])
        target = model.features.denormalize(feats[:1, :n])
        infilled = model.features.denormalize(m["generated"][:1, :n])
        shown = target.clone()
        shown[0, m["mask"][0, :n]] = target.min()
        tb.add_figure("samples/mel_target_masked_infilled", plots.mel_figure(
            {"target": target[0].cpu(), "encoder input (masked)": shown[0].cpu(), f"decoder infill (NFE {self.nfe})": infilled[0].cpu()},
            title=f"step {step}: infill L1 {m['infill_l1']:.3f} vs mean-frame L1 {m['mean_frame_l1']:.3f}"), step)
        vocoder = GriffinLim(model.cfg.features, n_iter=32).to(feats.device)
        sr = model.cfg.features.sample_rate
        tb.add_audio("samples/target_griffinlim", vocoder(target[0]).cpu()[None], step, sample_rate=sr)
        tb.add_audio("samples/infilled_griffinlim", vocoder(infilled[0]).cpu()[None], step, sample_rate=sr)
        w = torch.softmax(model.backbone.layer_weights.float(), 0).cpu().numpy()
        tb.add_figure(
            "model/layer_mixer_weights", plots.bar_figure(w, f"layer weights (step {step})", "encoder layer", "softmax weight"), step
        )
        tb.add_figure("codebook/usage", plots.usage_figure(counts.numpy(), f"codeword usage (step {step})"), step)
        for name, p in model.named_parameters():
            if name.endswith("qkv.weight") and (".blocks.0." in name or f".blocks.{e.layers - 1}." in name):
                tb.add_histogram(f"weights/{name}", p.detach().float().cpu(), step)


def fixed_sample_batch(cuts, max_utterances: int = 2, max_seconds: float = 6.0) -> dict:
    """A small padded batch of the first cuts (cropped) for periodic samples."""
    from uniwav.data.batches import AudioBatches
    from lhotse import CutSet

    chosen = [c.truncate(duration=min(c.duration, max_seconds)) for c in list(cuts.subset(first=max_utterances))]
    return AudioBatches()[(0, CutSet.from_cuts(chosen))]
