"""Transcript normalisation shared by corpus preparation, ASR and TTS.

English (the default, ``language="en"``/``"en-us"``...): lower-case a-z, apostrophes and spaces, accents
stripped, numbers and symbols spelled out. Any other language: lower-case, every letter of its alphabet
kept as written (ä, ß, ñ, ç...), numbers spelled out in the language where num2words knows it."""

from __future__ import annotations

import re
import unicodedata

_KEEP = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")
# a number, with thousands separators and decimals, and an ordinal or plural ending: 42, 1,000, 3.14, 21st, 1990s
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(st|nd|rd|th|s)?(?![\w])")
# symbols that stand for words (English)
_SYMBOL_WORDS = {"&": "and", "%": "percent", "+": "plus", "@": "at", "=": "equals", "$": "dollars", "€": "euros", "£": "pounds"}


def _number_words(match: re.Match) -> str:
    from num2words import num2words

    whole, decimals, ending = match.group(1).replace(",", ""), match.group(2), match.group(3)
    if ending in ("st", "nd", "rd", "th") and not decimals:
        return f" {num2words(int(whole), to='ordinal')} "
    words = num2words(float(whole + decimals) if decimals else int(whole), lang="en")
    if decimals:  # num2words rounds floats: say every digit as written
        words = num2words(int(whole)) + " point " + " ".join(num2words(int(d)) for d in decimals[1:])
    if ending == "s":  # 1990s -> nineteen nineties, 80s -> eighties
        words = num2words(int(whole), to="year") if len(whole) == 4 else words
        words = words[:-1] + "ies" if words.endswith("y") else words + "s"
    return f" {words} "


_CURRENCY = re.compile(r"([$€£])\s?(\d[\d,]*(?:\.\d+)?)")


def spell_out(text: str) -> str:
    """Numbers and word-like symbols as English words: "saves 9" -> "saves nine", "50%" -> "fifty percent",
    "$5" -> "five dollars"."""
    text = _CURRENCY.sub(lambda m: f" {m.group(2)} {_SYMBOL_WORDS[m.group(1)]} ", text)
    text = _NUMBER.sub(_number_words, text)
    for symbol, word in _SYMBOL_WORDS.items():
        text = text.replace(symbol, f" {word} ")
    return text


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


def is_english(language: str) -> bool:
    return language.lower().split("-")[0].split("_")[0] == "en"


_DIGITS = re.compile(r"\d+(?:[.,]\d+)?")


def spell_numbers(text: str, language: str) -> str:
    """Digits as words in ``language`` where num2words knows it (else left as they are)."""
    from num2words import num2words

    lang = language.lower().split("-")[0].split("_")[0]

    def words(match: re.Match) -> str:
        try:
            number = match.group(0).replace(",", ".")
            return f" {num2words(float(number) if '.' in number else int(number), lang=lang)} "
        except (NotImplementedError, OverflowError, ValueError):
            return match.group(0)

    return _DIGITS.sub(words, text)


def _normalize_other(text: str, language: str) -> str:
    text = spell_numbers(unicodedata.normalize("NFC", text).lower(), language).replace("-", " ")
    text = "".join(ch if ch.isalpha() or ch in "' " else " " for ch in text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def normalize_text(text: str, language: str = "en") -> str:
    """Lower-case, strip accents, spell out numbers and word-like symbols (English, num2words), keep
    letters a-z, apostrophes and single spaces. Punctuation is dropped; so is anything else that
    cannot be written with those letters (``unspoken_characters`` names it, so that nobody loses
    words without being told). Another ``language``: its own letters are kept (module docstring)."""
    if not is_english(language):
        return _normalize_other(text, language)
    text = spell_out(_fold(text))
    text = text.replace("-", " ")
    text = _KEEP.sub(" ", text)
    text = " ".join(w.strip("'") for w in _SPACES.sub(" ", text).split())
    return _SPACES.sub(" ", text).strip()


def unspoken_characters(text: str, language: str = "en") -> list[str]:
    """Characters of ``text`` that ``normalize_text`` drops although they carry words (letters of
    other alphabets, digits it could not read, symbols), as opposed to punctuation and spaces."""
    if not is_english(language):
        spelled = spell_numbers(unicodedata.normalize("NFC", text), language)
        return sorted({ch for ch in spelled if not (ch.isalpha() or ch in "' -" or unicodedata.category(ch)[0] in ("P", "Z", "C"))})
    dropped = set()
    for ch in spell_out(_fold(text)):
        if ch in "' " or "a" <= ch <= "z" or unicodedata.category(ch)[0] in ("P", "Z", "C"):
            continue
        dropped.add(ch)
    return sorted(dropped)


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
