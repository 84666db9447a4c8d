"""DinoSR online clustering: K codebooks of V codewords, updated by EMA of assigned sums and counts."""

from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import nn


def masked_instance_norm(x: torch.Tensor, padding_mask: Optional[torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    """Normalise each utterance's channels over its valid frames. x [B, T, D] -> [B, T, D] (float32)."""
    x = x.float()
    if padding_mask is None:
        valid = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    else:
        valid = (~padding_mask).to(x.dtype)
    n = valid.sum(1).clamp_min(1.0)[:, None, None]
    w = valid[..., None]
    mean = (x * w).sum(1, keepdim=True) / n
    var = ((x - mean) ** 2 * w).sum(1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * w


class OnlineCodebooks(nn.Module):
    """Codewords [K, V, D] with EMA statistics, all persistent float32 buffers.

    Per optimizer update: ``accumulate`` is called for every micro-batch (sums and counts of
    assigned vectors), then ``update`` all-reduces them over processes (if any) and applies, for
    each codeword v that got n_v > 0 vectors with sum s_v::

        sums_v   <- d * sums_v   + (1 - d) * s_v
        counts_v <- d * counts_v + (1 - d) * n_v
        codeword_v = sums_v / counts_v

    Codewords that got no vector are left alone.

    With ``init_from_data``, the codewords start as randomly chosen target vectors of the first
    training batch (identical on every process) instead of random normal vectors: random
    directions in a high-dimensional space are mostly never nearest to any target, which leaves
    most codewords unused for the whole run.
    """

    def __init__(self, num_codebooks: int, codebook_size: int, dim: int, decay: float, init_from_data: bool = False):
        super().__init__()
        self.decay = decay
        codewords = torch.randn(num_codebooks, codebook_size, dim)
        self.register_buffer("codewords", codewords)
        self.register_buffer("sums", codewords.clone())
        self.register_buffer("counts", torch.ones(num_codebooks, codebook_size))
        self.register_buffer("initialized", torch.tensor(not init_from_data))
        self._acc_sums: Optional[torch.Tensor] = None  # plain attributes: never broadcast, never saved
        self._acc_counts: Optional[torch.Tensor] = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before `initialized` existed hold codebooks that are in use
        state_dict.setdefault(prefix + "initialized", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def num_codebooks(self) -> int:
        return self.codewords.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.codewords.shape[1]

    @torch.no_grad()
    def initialize_from(self, x: torch.Tensor) -> None:
        """Codewords <- V distinct random rows of x [K, N, D] per codebook (rank 0's choice is broadcast)."""
        K, V, D = self.codewords.shape
        if x.shape[1] < V:
            return  # too few vectors yet: try again with the next batch
        picks = torch.stack([torch.randperm(x.shape[1], device="cpu")[:V] for _ in range(K)]).to(x.device)
        chosen = torch.gather(x.float(), 1, picks[..., None].expand(K, V, D))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(chosen, src=0)
        self.codewords.copy_(chosen)
        self.sums.copy_(chosen)
        self.counts.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, N, D] -> nearest codeword indices [K, N] (squared L2, float32 even under autocast)."""
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            dist2 = (x * x).sum(-1, keepdim=True) - 2 * torch.bmm(x, self.codewords.transpose(1, 2)) + (self.codewords**2).sum(-1)[:, None]
        return dist2.argmin(-1)

    @torch.no_grad()
    def accumulate(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        """Add this micro-batch's assigned vectors x [K, N, D] (indices [K, N]) to the pending statistics."""
        K, V, D = self.codewords.shape
        onehot = torch.zeros(K, idx.shape[1], V, device=x.device, dtype=torch.float32)
        onehot.scatter_(2, idx[..., None], 1.0)
        with torch.autocast(x.device.type, enabled=False):
            sums = torch.bmm(onehot.transpose(1, 2), x.float())
        counts = onehot.sum(1)
        if self._acc_sums is None:
            self._acc_sums, self._acc_counts = sums, counts
        else:
            self._acc_sums += sums
            self._acc_counts += counts

    def discard(self) -> None:
        self._acc_sums = self._acc_counts = None

    @torch.no_grad()
    def update(self) -> None:
        """Apply the pending statistics (all-reduced over processes), then clear them."""
        if self._acc_sums is None:
            sums = torch.zeros_like(self.sums)
            counts = torch.zeros_like(self.counts)
        else:
            sums, counts = self._acc_sums, self._acc_counts
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        hit = counts > 0
        d = self.decay
        new_sums = d * self.sums + (1 - d) * sums
        new_counts = d * self.counts + (1 - d) * counts
        self.sums.copy_(torch.where(hit[..., None], new_sums, self.sums))
        self.counts.copy_(torch.where(hit, new_counts, self.counts))
        self.codewords.copy_(self.sums / self.counts[..., None])
        self.discard()


def perplexity(idx: torch.Tensor, size: int) -> torch.Tensor:
    """exp(entropy) of the index histogram per codebook: idx [K, N] -> [K] (1 = collapse, V = uniform)."""
    counts = torch.zeros(idx.shape[0], size, device=idx.device).scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float32))
    p = counts / counts.sum(1, keepdim=True).clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(1))
