"""Matplotlib figures for TensorBoard and reports (Agg backend, no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def mel_figure(panels: dict, title: str = ""):
    """panels: name -> [T, n_mels] array; one row each, shared colour scale."""
    arrays = [np.asarray(a, dtype=np.float32) for a in panels.values()]
    vmin = min(float(a.min()) for a in arrays)
    vmax = max(float(a.max()) for a in arrays)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.8 * len(panels)), squeeze=False)
    for ax, (name, a) in zip(axes[:, 0], zip(panels, arrays)):
        ax.imshow(a.T, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma", interpolation="nearest")
        ax.set_ylabel(name, fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("frame")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def bar_figure(values, title: str, xlabel: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(5, 2.5))
    ax.bar(np.arange(1, len(values) + 1), values)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def usage_figure(counts: np.ndarray, title: str):
    """counts [K, V]: sorted codeword usage per codebook (a collapse shows as one tall bar)."""
    fig, ax = plt.subplots(figsize=(6, 2.5))
    for k, c in enumerate(counts):
        c = np.sort(c)[::-1]
        ax.plot(c / max(1.0, c.sum()), label=f"codebook {k}")
    ax.set_yscale("log")
    ax.set_xlabel("codeword (sorted by use)")
    ax.set_ylabel("share of frames")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
