"""How well the pre-trained decoder infills masked frames, against the mean-frame baseline."""

from __future__ import annotations

import torch

from uniwav.models.encoder import span_mask
from uniwav.models.layers import lengths_to_padding_mask


@torch.no_grad()
def infill_metrics(model, feats: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, seed: int = 0, **sampling) -> dict:
    """Decoder infilling quality on masked frames: L1 of the infill vs. L1 of the oracle mean
    frame of the masked frames (per utterance), both on normalised log-mel. ``sampling``: fields
    of the model's sampler to replace (nfe=, method=, sway=)."""
    padding = lengths_to_padding_mask(frames, feats.shape[1])
    mask = mask & ~padding
    gen = model.infill(feats, mask, frames, seed=seed, **sampling)
    m = mask[..., None].float()
    n = m.sum().clamp_min(1) * feats.shape[-1]
    l1 = ((gen - feats).abs() * m).sum() / n
    mean_frame = (feats * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
    l1_mean = ((mean_frame - feats).abs() * m).sum() / n
    return {"infill_l1": float(l1), "mean_frame_l1": float(l1_mean), "generated": gen, "mask": mask}


@torch.no_grad()
def evaluate_infill(model, cuts, nfe: int = 16, seed: int = 0, batch_size: int = 8, method: str = "midpoint", guidance: float = 0.0) -> dict:
    """Mask each utterance with the pre-training masking (seeded), regenerate the masked frames,
    and report the mean L1 on normalised log-mel over masked frames for the decoder and for the
    oracle mean frame of each utterance's masked frames (what a model that only knew the average
    spectrum would get). ``guidance``: classifier-free guidance weight (models pre-trained with
    condition dropout)."""
    from uniwav.data.batches import AudioBatches
    from lhotse import CutSet

    cuts = list(cuts)
    gen = torch.Generator().manual_seed(seed)
    e = model.cfg.encoder
    totals = {"infill": 0.0, "mean": 0.0, "frames": 0}
    for k in range(0, len(cuts), batch_size):
        batch = AudioBatches()[(k, CutSet.from_cuts(cuts[k: k + batch_size]))]
        feats, frames = model.features(batch["audio"], batch["audio_lens"])
        mask = span_mask(frames, feats.shape[1], e.mask_prob, e.mask_span, gen)
        m = infill_metrics(model, feats, frames, mask, seed=seed + k, nfe=nfe, method=method, guidance=guidance)
        n = int(m["mask"].sum())
        totals["infill"] += m["infill_l1"] * n
        totals["mean"] += m["mean_frame_l1"] * n
        totals["frames"] += n
    f = max(1, totals["frames"])
    return {"infill_l1": totals["infill"] / f, "mean_frame_l1": totals["mean"] / f, "masked_frames": totals["frames"], "n": len(cuts),
            "nfe": nfe, "method": method, "guidance": guidance}
