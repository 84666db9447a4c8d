"""Word n-gram language models for CTC beam search: build an ARPA file from transcripts, and decode
with it through flashlight-text's lexicon beam search with KenLM built in (``pip install "uniwav[lm]"``,
the decoder torchaudio's ``ctc_decoder`` wraps; binary wheels, no compiler needed).

The builder needs no KenLM binaries: absolute discounting with back-off (discount 0.5 by default),
written in the ARPA format that KenLM and SRILM read. For large text, KenLM's ``lmplz`` gives a
better (modified Kneser-Ney) model in the same format.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
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


def arpa_vocabulary(path) -> list[str]:
    """The words of an ARPA file (plain or .gz): its unigrams, without ``<s>``, ``</s>`` and ``<unk>``.
    Reads only the unigram section, so a large model costs a fraction of its size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    words, in_unigrams = [], False
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line == "\\1-grams:":
                    in_unigrams = True
                elif in_unigrams and line.startswith("\\"):
                    break
                elif in_unigrams and line:
                    fields = line.split()
                    if len(fields) >= 2 and fields[1] not in (BOS, EOS, UNK):
                        words.append(fields[1])
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise LanguageModelError(f"{path}: cannot read as an ARPA language model ({e})") from None
    if not words:
        raise LanguageModelError(f"{path}: no unigrams found; give the language model as an ARPA file "
                                 "(`uniwav build-lm`, or KenLM's lmplz output), plain or .gz")
    return words


@contextlib.contextmanager
def _quiet_stderr():
    """KenLM prints its loading progress on the C stderr; a user only needs to hear about failures."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class LMDecoder:
    """CTC beam search with a KenLM word language model (flashlight-text's lexicon decoder).

    The lexicon is the LM's own vocabulary, each word spelled in the recogniser's characters (words
    with other characters are left out): hypotheses are sequences of those words, as in wav2letter
    and torchaudio. ``alpha`` weighs the LM's natural-log probability against the acoustic
    log-probabilities, ``beta`` is a bonus per word. The space character is the word boundary.
    """

    def __init__(self, vocab, lm_path, alpha: float = 0.5, beta: float = 1.0):
        try:
            from flashlight.lib.text.decoder import CriterionType, LexiconDecoder, LexiconDecoderOptions, SmearingMode, Trie
            from flashlight.lib.text.decoder.kenlm import KenLM
            from flashlight.lib.text.dictionary import Dictionary
        except ImportError:
            raise LanguageModelError('beam search with a language model needs flashlight-text: pip install "uniwav[lm]"') from None
        lm_path = Path(lm_path)
        if not lm_path.is_file():
            raise LanguageModelError(f"{lm_path}: language model file not found")
        if " " not in vocab.index:
            raise LanguageModelError("the recogniser has no space character, so it cannot separate words for a word language model")
        spellings = {w: [vocab.index[ch] for ch in w] for w in arpa_vocabulary(lm_path) if all(ch in vocab.index for ch in w)}
        if not spellings:
            raise LanguageModelError(f"{lm_path}: none of its words can be spelled with the recogniser's characters "
                                     f"({''.join(vocab.symbols[1:])!r}); was it built from differently normalised text?")
        self.words = Dictionary()
        for w in [*spellings, UNK]:
            self.words.add_entry(w)
        self.words.set_default_index(self.words.get_index(UNK))
        try:
            with _quiet_stderr():
                self.lm = KenLM(str(lm_path), self.words)
        except Exception as e:  # KenLM raises RuntimeError with its own wording
            raise LanguageModelError(f"{lm_path}: cannot load as a KenLM model ({type(e).__name__}: {e})") from None
        space = vocab.index[" "]
        self.trie = Trie(len(vocab), space)
        start = self.lm.start(False)
        for w, spelling in spellings.items():
            idx = self.words.get_index(w)
            self.trie.insert(spelling, idx, self.lm.score(start, idx)[1])
        self.trie.smear(SmearingMode.MAX)
        self._make = lambda beam: LexiconDecoder(
            LexiconDecoderOptions(beam_size=beam, beam_size_token=len(vocab), beam_threshold=25.0,
                                  lm_weight=alpha * math.log(10), word_score=beta, unk_score=-math.inf, sil_score=0.0,
                                  log_add=False, criterion_type=CriterionType.CTC),
            self.trie, self.lm, space, 0, self.words.get_index(UNK), [], False)

    def decode(self, log_probs: np.ndarray, beam: int = 32) -> str:
        """log_probs [T, V] (CTC, blank at 0) -> text."""
        emissions = np.ascontiguousarray(log_probs, dtype=np.float32)
        if emissions.shape[0] == 0:
            return ""
        best = self._make(beam).decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])[0]
        return " ".join(self.words.get_entry(i) for i in best.words if i >= 0)
