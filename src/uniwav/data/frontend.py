"""The text front end: text -> the tokens a model reads or writes, in one of two units.

- ``char``: ``normalize_text`` (lower-case a-z, apostrophes, spaces; numbers spelled out in English).
- ``phone``: phones from espeak-ng through ``phonemizer`` (offline, any language espeak-ng speaks;
  no stress marks), numbers spelled out first (English: as ``char`` does; other languages where
  num2words knows them, else espeak-ng reads them itself).

Either way the token ``" "`` separates words, so alignments, word boundaries and durations work the
same for both. A model stores its unit and language in its config, so a checkpoint always turns text
into tokens the way it was trained. ``render(tokens)`` is the readable form (phones of a word run
together, words separated by spaces): what a phone recogniser prints and is scored on.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from uniwav.data.text import VocabularyError, is_english, normalize_text, spell_numbers, spell_out

UNITS = ("char", "phone")
WORD = " "


class FrontEndError(VocabularyError):
    """Text that cannot be turned into tokens (unknown language, nothing speakable); the message says which."""


@functools.lru_cache(maxsize=8)
def _espeak(language: str):
    try:
        from phonemizer.backend import EspeakBackend
    except ImportError:
        raise FrontEndError("phones need phonemizer (pip install phonemizer) and espeak-ng (apt-get install espeak-ng)") from None
    logger = logging.getLogger("uniwav.phonemizer")
    logger.setLevel(logging.ERROR)
    try:
        return EspeakBackend(language, preserve_punctuation=False, with_stress=False, language_switch="remove-flags", logger=logger)
    except RuntimeError as e:  # phonemizer: 'language "xx" is not supported by the espeak backend', or espeak-ng missing
        raise FrontEndError(f"{e}; `espeak-ng --voices` lists the languages it speaks (e.g. en-us, de, es, fr-fr)") from None


def _split_phones(text: str) -> list[str]:
    """"h ə | k æ t" -> ["h", "ə", WORD, "k", "æ", "t"]: phones separated by spaces, words by "|" (empty words dropped)."""
    out: list[str] = []
    for word in text.split("|"):
        phones = word.split()
        if phones:
            out.extend([WORD] * bool(out) + phones)
    return out


@dataclass(frozen=True)
class TextFrontEnd:
    unit: str = "char"
    language: str = "en-us"

    def __post_init__(self):
        if self.unit not in UNITS:
            raise FrontEndError(f"unknown text unit {self.unit!r}; choose one of {', '.join(UNITS)}")

    def tokens(self, text: str, where: str = "text") -> list[str]:
        """``text`` -> tokens, ``WORD`` between words. Raises FrontEndError when nothing speakable is left."""
        if self.unit == "char":
            return list(normalize_text(text))
        return list(self._phones(text, where))

    def transcript(self, text: str, where: str = "text") -> list[str]:
        """A prepared transcript (already normalised by ``uniwav prepare``) -> tokens: its characters as
        they are, or its phones."""
        return list(text) if self.unit == "char" else self.tokens(text, where)

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (a front end lives as long as its model; transcripts repeat every epoch)
    def _phones(self, text: str, where: str) -> tuple[str, ...]:
        spoken = spell_out(text) if is_english(self.language) else spell_numbers(text, self.language)
        from phonemizer.separator import Separator

        ipa = _espeak(self.language).phonemize([spoken], separator=Separator(phone=" ", word=" | ", syllable=""), strip=True)[0]
        out = _split_phones(ipa)
        if not out:
            raise FrontEndError(f"{where}: {text!r} gives no phones in {self.language}")
        return tuple(out)

    @staticmethod
    def render(tokens) -> str:
        """Tokens -> readable text: phones of a word run together, words separated by single spaces."""
        return "".join(tokens)

    @staticmethod
    def parse_phonemes(text: str) -> list[str]:
        """A user's phones, exactly: phones separated by spaces, words by ``|`` ("h ə l oʊ | w ɜː l d")."""
        out = _split_phones(text)
        if not out:
            raise FrontEndError(f"--phonemes {text!r}: no phones (separate phones with spaces and words with |)")
        return out
