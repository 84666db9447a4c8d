"""Transcript normalisation shared by corpus preparation, ASR and TTS."""

from __future__ import annotations

import re
import unicodedata

_KEEP = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case, strip accents, keep letters, apostrophes and single spaces.

    Digits are not spelled out: a corpus with numbers should be written out beforehand
    (the demo corpus only uses sentences without digits).
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("-", " ")
    text = _KEEP.sub(" ", text)
    text = " ".join(w.strip("'") for w in _SPACES.sub(" ", text).split())
    return _SPACES.sub(" ", text).strip()


BLANK = "<blank>"


class VocabularyError(ValueError):
    pass


class CharVocabulary:
    """Characters <-> ids for CTC; id 0 is the blank. Built from training transcripts."""

    def __init__(self, symbols: list[str]):
        if not symbols or symbols[0] != BLANK:
            raise VocabularyError(f"a vocabulary starts with the blank symbol {BLANK!r}")
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_texts(cls, texts) -> CharVocabulary:
        chars = sorted({ch for t in texts for ch in t})
        if not chars:
            raise VocabularyError("no transcripts to build a character vocabulary from (is the training data labelled?)")
        return cls([BLANK] + chars)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str, utt_id: str = "?") -> list[int]:
        unknown = sorted({ch for ch in text if ch not in self.index})
        if unknown:
            raise VocabularyError(f"utterance {utt_id}: characters {unknown} are not in the model's vocabulary "
                                  f"({''.join(self.symbols[1:])!r}); normalise the transcript or rebuild the vocabulary")
        if not text:
            raise VocabularyError(f"utterance {utt_id}: empty transcript")
        return [self.index[ch] for ch in text]

    def decode(self, ids) -> str:
        return "".join(self.symbols[i] for i in ids if i != 0)
