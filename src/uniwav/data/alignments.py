"""Character alignments: how ``uniwav align`` stores them, and the one rule that turns them into
per-frame labels (text-to-speech conditioning, its prompts, and the layer probes all use it).

A row of ``ALIGN/{split}.jsonl.gz``::

    {"id", "text", "speaker", "frame_rate", "num_frames", "spans": [[start, end], ...]}  (one span per character)

A phone recogniser's rows also hold ``"unit": "phone"``, ``"language"`` and ``"tokens"`` (the phones,
``" "`` between words), with one span per token; everything below reads tokens where a row has them.

CTC spans are peaky (a character fires on a frame or two), so a character is taken to last from
its span's start to the next character's start (the last one to the end of the utterance), and
the frames before the first span are silence: ``segments`` returns that partition.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from collections.abc import Iterable, Sequence

SILENCE = "<sil>"


class AlignmentFileError(FileNotFoundError):
    """Alignments that are missing or unreadable; the message names the file."""


def alignments_path(align_dir, split: str) -> Path:
    return Path(align_dir) / f"{split}.jsonl.gz"


def read_alignments(align_dir, split: str) -> dict:
    """id -> alignment row of ALIGN/{split}.jsonl.gz."""
    path = alignments_path(align_dir, split)
    if not path.is_file():
        raise AlignmentFileError(f"{path}: no alignments for split {split!r} (run `uniwav align` first)")
    try:
        with gzip.open(path, "rt") as f:
            return {row["id"]: row for row in map(json.loads, f)}
    except (OSError, EOFError, ValueError, KeyError) as e:
        raise AlignmentFileError(f"{path}: not a readable alignment file ({e})") from None


def write_alignments(align_dir, split: str, rows: Iterable[dict]) -> Path:
    """Write rows atomically to ALIGN/{split}.jsonl.gz."""
    from uniwav.utils import atomic_path

    path = alignments_path(align_dir, split)
    with atomic_path(path, suffix=".jsonl.gz") as tmp:
        with gzip.open(tmp, "wt") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return path


def segments(text: Sequence[str], starts: Sequence[int], num_frames: int) -> list[tuple[str, int]]:
    """[(SILENCE, leading frames), (char, frames), ...] for characters starting at ``starts``
    (frame indices, one per character of ``text``) in an utterance of ``num_frames`` frames.
    The frame counts add up to ``num_frames`` (a character cut off by the end gets 0)."""
    if len(starts) != len(text):
        raise ValueError(f"{len(starts)} character starts for {len(text)} characters")
    bounds = [min(max(0, int(s)), num_frames) for s in starts] + [num_frames]
    out = [(SILENCE, bounds[0])]
    for i, ch in enumerate(text):
        out.append((ch, max(0, bounds[i + 1] - bounds[i])))
    return out


def row_symbols(row: dict) -> Sequence[str]:
    """The aligned tokens of a row: its phones, or the characters of its text."""
    return row.get("tokens") or row["text"]


def row_segments(row: dict) -> list[tuple[str, int]]:
    """``segments`` of an alignment row."""
    symbols = row_symbols(row)
    if len(row["spans"]) != len(symbols):
        raise ValueError(f"utterance {row['id']}: {len(row['spans'])} spans for {len(symbols)} tokens")
    return segments(symbols, [s for s, _ in row["spans"]], row["num_frames"])


def frame_labels(row: dict) -> list[str]:
    """One label per frame: the character (spaces as "|") or SILENCE."""
    labels = []
    for symbol, n in row_segments(row):
        labels.extend(["|" if symbol == " " else symbol] * n)
    return labels
