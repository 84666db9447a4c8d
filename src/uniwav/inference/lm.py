"""Word n-gram language models for CTC beam search: build an ARPA file from transcripts, and decode
with it through pyctcdecode + KenLM (``pip install pyctcdecode kenlm``).

The builder needs no KenLM binaries: absolute discounting with back-off (discount 0.5 by default),
written in the ARPA format that KenLM, pyctcdecode and SRILM read. For large text, KenLM's
``lmplz`` gives a better (modified Kneser-Ney) model in the same format.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from uniwav.utils import atomic_write_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


class LanguageModelError(RuntimeError):
    pass


def _ngram_counts(sentences: list[list[str]], order: int) -> list[Counter]:
    counts = [Counter() for _ in range(order)]
    for words in sentences:
        seq = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(1 if n == 1 else 0, len(seq) - n + 1):  # <s> is a history, never a predicted unigram
                counts[n - 1][tuple(seq[i:i + n])] += 1
    return counts


def build_arpa(texts: list[str], path, order: int = 3, discount: float = 0.5) -> Path:
    """Write a word ``order``-gram back-off LM of ``texts`` (one sentence each, words split on
    whitespace) to ``path`` (ARPA, log10). Unigrams are add-one smoothed over the vocabulary plus
    ``<unk>``; higher orders subtract ``discount`` from every seen count and give the rest to the
    next lower order through back-off weights, so each conditional distribution sums to one."""
    if order < 1 or not 0 < discount < 1:
        raise ValueError("need order >= 1 and 0 < discount < 1")
    sentences = [t.split() for t in texts if t.split()]
    if not sentences:
        raise LanguageModelError("no text to build a language model from")
    counts = _ngram_counts(sentences, order)
    vocab = sorted({w for (w,) in counts[0]} | {UNK})
    total = sum(counts[0].values()) + len(vocab)
    prob = {(w,): (counts[0].get((w,), 0) + 1) / total for w in vocab if w != BOS}
    prob[(BOS,)] = 0.0  # never predicted; ARPA convention -99
    history_counts = [Counter() for _ in range(order)]  # c(h) and distinct followers, per order
    followers = [defaultdict(int) for _ in range(order)]
    for n in range(2, order + 1):
        for gram, c in counts[n - 1].items():
            history_counts[n - 1][gram[:-1]] += c
            followers[n - 1][gram[:-1]] += 1

    backoff: dict[tuple, float] = {}

    def lower(gram: tuple) -> float:
        """P(w | shorter history), recursively through back-off."""
        if len(gram) == 1:
            return prob.get(gram, prob[(UNK,)])
        if gram in prob:
            return prob[gram]
        return backoff.get(gram[:-1], 1.0) * lower(gram[1:])

    for n in range(2, order + 1):
        for gram, c in counts[n - 1].items():
            prob[gram] = (c - discount) / history_counts[n - 1][gram[:-1]]
        seen_mass = defaultdict(float)
        for gram in counts[n - 1]:
            seen_mass[gram[:-1]] += lower(gram[1:])
        for h, c in history_counts[n - 1].items():
            left = discount * followers[n - 1][h] / c
            backoff[h] = left / max(1e-12, 1.0 - seen_mass[h])

    lines = ["", "\\data\\"]
    grams_by_order = [[g for g in prob if len(g) == n] for n in range(1, order + 1)]
    lines += [f"ngram {n}={len(g)}" for n, g in enumerate(grams_by_order, 1)]
    for n, grams in enumerate(grams_by_order, 1):
        lines += ["", f"\\{n}-grams:"]
        for g in sorted(grams):
            p = prob[g]
            lp = -99.0 if p <= 0 else math.log10(p)
            row = f"{lp:.6f}\t{' '.join(g)}"
            if n < order and g in backoff:
                row += f"\t{math.log10(backoff[g]):.6f}"
            elif n < order:
                row += "\t0.000000"
            lines.append(row)
    lines += ["", "\\end\\", ""]
    path = Path(path)
    atomic_write_text(path, "\n".join(lines))
    return path


class LMDecoder:
    """CTC beam search with a KenLM word language model (pyctcdecode). ``alpha`` weighs the LM
    log-probability, ``beta`` is a bonus per word."""

    def __init__(self, vocab, lm_path, alpha: float = 0.5, beta: float = 1.0):
        try:
            from pyctcdecode import build_ctcdecoder
        except ImportError:
            raise LanguageModelError("beam search with a language model needs pyctcdecode and kenlm: "
                                     "pip install pyctcdecode kenlm") from None
        lm_path = Path(lm_path)
        if not lm_path.is_file():
            raise LanguageModelError(f"{lm_path}: language model file not found")
        labels = ["", *vocab.symbols[1:]]  # index 0 is the CTC blank; " " separates words
        try:
            self.decoder = build_ctcdecoder(labels, kenlm_model_path=str(lm_path), alpha=alpha, beta=beta)
        except Exception as e:  # KenLM raises OSError / RuntimeError with its own wording
            raise LanguageModelError(f"{lm_path}: cannot load as a KenLM model ({type(e).__name__}: {e})") from None
        if getattr(self.decoder, "_language_model", None) is None:  # pyctcdecode drops the LM silently without kenlm
            raise LanguageModelError("kenlm is not installed, so pyctcdecode would decode without the language model: pip install kenlm")

    def decode(self, log_probs: np.ndarray, beam: int = 32) -> str:
        """log_probs [T, V] (CTC, blank at 0) -> text."""
        return self.decoder.decode(np.asarray(log_probs, dtype=np.float32), beam_width=beam)
