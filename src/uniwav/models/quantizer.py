"""Residual vector quantisation (SoundStream / EnCodec style) of frame vectors.

Each stage quantises the residual the previous stages left. Codebooks are learned by EMA
k-means (no gradient): k-means initialisation on the first training batch, EMA updates of the
sums and counts of the vectors assigned to each codeword (all-reduced over processes), and
dead-code restarts (a codeword whose EMA count falls below a threshold is moved onto a random
vector of the current batch). Gradients pass the bottleneck straight through.

Quantizer dropout: in training, only the first n ~ U{1..K} stages feed the output, so that one
model decodes from any prefix of its codes (1 codebook = the lowest bitrate). All K stages are
still updated on every batch, so every process does the same collective calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _nearest(x: torch.Tensor, codewords: torch.Tensor) -> torch.Tensor:
    """x [N, D], codewords [V, D] -> index of the nearest codeword (squared L2, float32 even under autocast) [N]."""
    with torch.autocast(x.device.type, enabled=False):
        x, codewords = x.float(), codewords.float()
        d2 = (x * x).sum(-1, keepdim=True) - 2 * x @ codewords.T + (codewords * codewords).sum(-1)[None]
    return d2.argmin(-1)


def kmeans(x: torch.Tensor, k: int, iters: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """k-means on x [N, D] -> centres [k, D]: k-means++ seeding, then Lloyd iterations (an empty
    cluster keeps its centre). With N < k, the points are repeated."""
    n = x.shape[0]
    if n < k:
        x = x[torch.randint(n, (k,), generator=generator).to(x.device)]
        n = k
    first = int(torch.randint(n, (1,), generator=generator))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(-1)
    for _ in range(k - 1):
        p = d2.clamp_min(0).cpu().double()
        i = int(torch.multinomial(p / p.sum(), 1, generator=generator)) if float(p.sum()) > 0 else int(torch.randint(n, (1,), generator=generator))
        centres.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(-1))
    centres = torch.stack(centres).clone()
    for _ in range(iters):
        idx = _nearest(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        hit = counts > 0
        centres[hit] = sums[hit] / counts[hit, None]
    return centres


class VectorQuantizer(nn.Module):
    """One codebook of ``size`` codewords of ``dim`` channels (float32 buffers)."""

    def __init__(self, size: int, dim: int, decay: float = 0.99, kmeans_iters: int = 10, dead_threshold: float = 1.0):
        super().__init__()
        self.decay, self.kmeans_iters, self.dead_threshold = decay, kmeans_iters, dead_threshold
        self.register_buffer("codewords", torch.randn(size, dim))
        self.register_buffer("ema_sums", self.codewords.clone())
        self.register_buffer("ema_counts", torch.ones(size))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def size(self) -> int:
        return self.codewords.shape[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> codes [N]."""
        return _nearest(x.float(), self.codewords)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [N] -> vectors [N, D]."""
        return F.embedding(codes, self.codewords)

    @torch.no_grad()
    def _broadcast(self, t: torch.Tensor) -> torch.Tensor:
        if _distributed():
            dist.broadcast(t, src=0)
        return t

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """k-means on x [N, D] (rank 0's result is used everywhere)."""
        centres = self._broadcast(kmeans(x.float(), self.size, self.kmeans_iters).contiguous())
        self.codewords.copy_(centres)
        self.ema_sums.copy_(centres)
        self.ema_counts.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> int:
        """EMA k-means step on this batch's x [N, D] and its codes [N]; restarts dead codewords.
        Returns how many codewords were restarted."""
        x = x.float()
        sums = torch.zeros_like(self.codewords).index_add_(0, codes, x)
        counts = torch.bincount(codes, minlength=self.size).float()
        if _distributed():
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        d = self.decay
        self.ema_sums.mul_(d).add_(sums, alpha=1 - d)
        self.ema_counts.mul_(d).add_(counts, alpha=1 - d)
        self.codewords.copy_(self.ema_sums / self.ema_counts.clamp_min(1e-6)[:, None])
        dead = self.ema_counts < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            replacement = x[torch.randint(x.shape[0], (self.size,), device="cpu").to(x.device)]
            replacement = self._broadcast(replacement.contiguous())
            self.codewords[dead] = replacement[dead]
            self.ema_sums[dead] = replacement[dead]
            self.ema_counts[dead] = 1.0
        return n_dead


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # [N, D], straight-through: forward = codes' vectors, backward = identity
    codes: torch.Tensor  # [N, n] long, n = stages used
    commitment: torch.Tensor  # mean squared distance of x to its quantisation (scalar)
    perplexity: torch.Tensor  # [K] per stage, this batch
    restarted: int  # dead codewords restarted in this call (training only)


class ResidualVQ(nn.Module):
    """forward(x [N, D], n) -> QuantizerOutput; encode / decode for inference."""

    def __init__(self, num_quantizers: int, size: int, dim: int, decay: float = 0.99, kmeans_iters: int = 10,
                 dead_threshold: float = 1.0):
        super().__init__()
        self.stages = nn.ModuleList(VectorQuantizer(size, dim, decay, kmeans_iters, dead_threshold) for _ in range(num_quantizers))

    @property
    def num_quantizers(self) -> int:
        return len(self.stages)

    @property
    def codebook_size(self) -> int:
        return self.stages[0].size

    def _check(self, n: int) -> None:
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"number of codebooks must be in 1..{self.num_quantizers}, got {n}")

    def forward(self, x: torch.Tensor, n: Optional[int] = None) -> QuantizerOutput:
        n = self.num_quantizers if n is None else n
        self._check(n)
        residual = x.detach().float()
        quantized = torch.zeros_like(residual)
        codes, ppl, restarted = [], [], 0
        for i, vq in enumerate(self.stages):
            if self.training and not bool(vq.initialized):
                vq.initialize(residual)
            c = vq.encode(residual)
            q = vq.decode(c)
            if self.training:
                restarted += vq.update(residual, c)
            if i < n:
                quantized = quantized + q
                codes.append(c)
            counts = torch.bincount(c, minlength=vq.size).float()
            p = counts / counts.sum().clamp_min(1)
            ppl.append(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))
            residual = residual - q
        commitment = F.mse_loss(x.float(), quantized.detach())
        out = x + (quantized.to(x.dtype) - x).detach()
        return QuantizerOutput(out, torch.stack(codes, -1), commitment, torch.stack(ppl), restarted)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n: Optional[int] = None) -> torch.Tensor:
        """x [..., D] -> codes [..., n]."""
        n = self.num_quantizers if n is None else n
        self._check(n)
        shape = x.shape[:-1]
        residual = x.reshape(-1, x.shape[-1]).float()
        codes = []
        for vq in self.stages[:n]:
            c = vq.encode(residual)
            residual = residual - vq.decode(c)
            codes.append(c)
        return torch.stack(codes, -1).view(*shape, n)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [..., n] -> vectors [..., D] (sum of the first n stages' codewords)."""
        n = codes.shape[-1]
        self._check(n)
        if int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size:
            raise ValueError(f"codes must be in 0..{self.codebook_size - 1}")
        return sum(vq.decode(codes[..., i]) for i, vq in enumerate(self.stages[:n]))

    def bits_per_frame(self, n: int) -> float:
        self._check(n)
        return n * math.log2(self.codebook_size)
