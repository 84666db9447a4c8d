"""Vector quantisation with EMA k-means codebooks: the helpers both codebook families share, the
DinoSR online codebooks of pre-training, and the residual vector quantiser of speech tokens.

Codebooks are learned without gradients: each codeword is the running (EMA) mean of the vectors
assigned to it; sums and counts are all-reduced over processes in float32 before they are applied,
and random choices (initialisation, restarts) are rank 0's, broadcast, so every process holds the
same codebooks. All state is persistent float32 buffers that move with the model.

- ``OnlineCodebooks`` (DinoSR, METHOD.md 2): K codebooks of the teacher's top layers; statistics
  accumulate over the micro-batches of one optimizer update and are applied once per update
  (``update``); a codeword that got no vector is left alone.
- ``ResidualVQ`` (SoundStream / EnCodec): each stage quantises the residual of the previous ones;
  k-means initialisation on the first batch, an EMA step per batch and dead-codeword restarts;
  straight-through gradients; quantizer dropout (the first n ~ U{1..K} stages feed the output,
  all K are updated, so every process makes the same collective calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from uniwav.models.distributed import all_reduce_, broadcast_

# ---------------------------------------------------------------------- shared helpers


def nearest(x: torch.Tensor, codewords: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codeword (squared L2), in float32 even under autocast.
    x [N, D] with codewords [V, D] -> [N]; or batched: x [K, N, D] with codewords [K, V, D] -> [K, N]."""
    with torch.autocast(x.device.type, enabled=False):
        x, c = x.float(), codewords.float()
        d2 = (x * x).sum(-1, keepdim=True) - 2 * x @ c.transpose(-1, -2) + (c * c).sum(-1).unsqueeze(-2)
    return d2.argmin(-1)


def code_counts(idx: torch.Tensor, size: int) -> torch.Tensor:
    """How often each code occurs: idx [N] -> [size], or [K, N] -> [K, size] (float32)."""
    flat = idx.reshape(-1, idx.shape[-1])
    counts = torch.zeros(flat.shape[0], size, device=idx.device).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float32))
    return counts.view(*idx.shape[:-1], size)


def perplexity(idx: torch.Tensor, size: int) -> torch.Tensor:
    """exp(entropy) of the code histogram: idx [N] -> scalar, [K, N] -> [K] (1 = collapse, ``size`` = uniform)."""
    counts = code_counts(idx, size)
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(-1))


def assigned_sums(x: torch.Tensor, idx: torch.Tensor, size: int) -> torch.Tensor:
    """Sum of the vectors assigned to each codeword, float32: x [..., N, D], idx [..., N] -> [..., size, D]."""
    onehot = F.one_hot(idx, size).float()
    with torch.autocast(x.device.type, enabled=False):
        return onehot.transpose(-1, -2) @ x.float()


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
        if float(p.sum()) > 0:
            i = int(torch.multinomial(p / p.sum(), 1, generator=generator))
        else:  # every point coincides with a centre
            i = int(torch.randint(n, (1,), generator=generator))
        centres.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(-1))
    centres = torch.stack(centres).clone()
    for _ in range(iters):
        idx = nearest(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        hit = counts > 0
        centres[hit] = sums[hit] / counts[hit, None]
    return centres


# ---------------------------------------------------------------------- DinoSR online codebooks


class OnlineCodebooks(nn.Module):
    """Codewords [K, V, D] with EMA statistics. For each codeword v that got n_v > 0 vectors with
    sum s_v in one optimizer update (over every micro-batch and process)::

        sums_v <- d sums_v + (1 - d) s_v,   counts_v <- d counts_v + (1 - d) n_v,   codeword_v = sums_v / counts_v

    With ``init_from_data`` the codewords start as randomly chosen target vectors of the first
    training batch instead of random normal vectors: random directions in a high-dimensional space
    are mostly never nearest to any target, which leaves most codewords unused for the whole run.
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
        self._known_initialized = False  # the flag read back once, so that a training step does not wait for the device

    def needs_init(self) -> bool:
        """Whether the codewords still wait for data (``init_from_data``)."""
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return not self._known_initialized

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False  # the loaded flag is read again

    @property
    def num_codebooks(self) -> int:
        return self.codewords.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.codewords.shape[1]

    @torch.no_grad()
    def initialize_from(self, x: torch.Tensor) -> None:
        """Codewords <- V distinct random rows of x [K, N, D] per codebook: rank 0's choice on every
        process. Every process takes part in the same collective calls; when rank 0 has fewer than V
        vectors, none initialises and all try again with the next batch (other ranks may have any number)."""
        K, V, D = self.codewords.shape
        if not bool(broadcast_(torch.tensor(x.shape[1] >= V, device=x.device))):
            return
        if x.shape[1] >= V:
            picks = torch.stack([torch.randperm(x.shape[1], device="cpu")[:V] for _ in range(K)]).to(x.device)
            chosen = torch.gather(x.float(), 1, picks[..., None].expand(K, V, D)).contiguous()
        else:
            chosen = x.new_zeros(K, V, D, dtype=torch.float32)  # replaced by rank 0's
        chosen = broadcast_(chosen)
        self.codewords.copy_(chosen)
        self.sums.copy_(chosen)
        self.counts.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, N, D] -> nearest codeword indices [K, N]."""
        return nearest(x, self.codewords)

    @torch.no_grad()
    def accumulate(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        """Add this micro-batch's assigned vectors x [K, N, D] (indices [K, N]) to the pending statistics."""
        sums, counts = assigned_sums(x, idx, self.codebook_size), code_counts(idx, self.codebook_size)
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
            sums, counts = torch.zeros_like(self.sums), torch.zeros_like(self.counts)
        else:
            sums, counts = self._acc_sums, self._acc_counts
        all_reduce_(sums, counts)
        hit = counts > 0
        d = self.decay
        self.sums.copy_(torch.where(hit[..., None], d * self.sums + (1 - d) * sums, self.sums))
        self.counts.copy_(torch.where(hit, d * self.counts + (1 - d) * counts, self.counts))
        self.codewords.copy_(self.sums / self.counts[..., None])
        self.discard()


# ---------------------------------------------------------------------- residual vector quantisation


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
        return nearest(x, self.codewords)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [N] -> vectors [N, D]."""
        return F.embedding(codes, self.codewords)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """k-means on x [N, D] (rank 0's result is used everywhere)."""
        centres = broadcast_(kmeans(x.float(), self.size, self.kmeans_iters).contiguous())
        self.codewords.copy_(centres)
        self.ema_sums.copy_(centres)
        self.ema_counts.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> int:
        """EMA k-means step on this batch's x [N, D] and its codes [N]; restarts dead codewords
        (EMA count below ``dead_threshold``) on random vectors of the batch. Returns how many."""
        x = x.float()
        sums, counts = assigned_sums(x, codes, self.size), code_counts(codes, self.size)
        all_reduce_(sums, counts)
        d = self.decay
        self.ema_sums.mul_(d).add_(sums, alpha=1 - d)
        self.ema_counts.mul_(d).add_(counts, alpha=1 - d)
        self.codewords.copy_(self.ema_sums / self.ema_counts.clamp_min(1e-6)[:, None])
        dead = self.ema_counts < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            replacement = broadcast_(x[torch.randint(x.shape[0], (self.size,), device="cpu").to(x.device)].contiguous())
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

    def __init__(self, num_quantizers: int, size: int, dim: int, decay: float = 0.99, kmeans_iters: int = 10, dead_threshold: float = 1.0):
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

    def forward(self, x: torch.Tensor, n: Optional[int] = None, first: Optional[torch.Tensor] = None) -> QuantizerOutput:
        """x [N, D] quantised by the first n stages. ``first`` [N, D]: what the first stage quantises instead
        of x (the paper's semantic layer); the later stages then quantise x minus the first stage's codeword."""
        n = self.num_quantizers if n is None else n
        self._check(n)
        residual = x.detach().float()
        quantized = torch.zeros_like(residual)
        codes, ppl, restarted = [], [], 0
        commitment = torch.zeros((), device=x.device)
        for i, vq in enumerate(self.stages):
            target = first.detach().float() if i == 0 and first is not None else residual
            if self.training and not bool(vq.initialized):
                vq.initialize(target)
            c = vq.encode(target)
            q = vq.decode(c)
            if self.training:
                restarted += vq.update(target, c)
            if i == 0 and first is not None:
                commitment = F.mse_loss(first.float(), q.detach())  # the semantic layer is pulled to its codeword
            if i < n:
                quantized = quantized + q
                codes.append(c)
            ppl.append(perplexity(c, vq.size))
            residual = residual - q
        commitment = commitment + F.mse_loss(x.float(), quantized.detach())
        out = x + (quantized.to(x.dtype) - x).detach()
        return QuantizerOutput(out, torch.stack(codes, -1), commitment, torch.stack(ppl), restarted)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n: Optional[int] = None, first: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [..., D] (and ``first``, as in forward) -> codes [..., n]."""
        n = self.num_quantizers if n is None else n
        self._check(n)
        shape = x.shape[:-1]
        residual = x.reshape(-1, x.shape[-1]).float()
        codes = []
        for i, vq in enumerate(self.stages[:n]):
            c = vq.encode(first.reshape(-1, first.shape[-1]).float() if i == 0 and first is not None else residual)
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
