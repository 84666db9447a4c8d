#!/usr/bin/env python3
"""Word boundaries of ``transcribe --timestamps`` by recogniser A against the forced alignment of the
reference text by A itself and by recogniser B, on the test words A recognises correctly (jiwer's
word alignment of hypothesis and reference). Mean absolute start/end error in milliseconds.

Usage: python benchmarks/word_boundaries.py ASR_A ASR_B DATA   (docs/results.md)
"""

import sys

import jiwer
import numpy as np
import torch

from uniwav.data.manifests import load_cuts
from uniwav.data.text import normalize_text
from uniwav.inference.align import align
from uniwav.inference.transcribe import transcribe
from uniwav.models.ctc import CTCModel


def word_spans(chars: list) -> list[tuple[float, float]]:
    """(start, end) seconds of each word from per-character spans [(char, start, end), ...]."""
    spans, word = [], []
    for char, start, end in [*chars, (" ", 0.0, 0.0)]:
        if char != " ":
            word.append((start, end))
        elif word:
            spans.append((word[0][0], word[-1][1]))
            word = []
    return spans


def main(asr_a: str, asr_b: str, data: str) -> None:
    a, b = CTCModel.from_pretrained(asr_a), CTCModel.from_pretrained(asr_b)
    errors, words = {"A": [], "B": []}, 0
    for cut in load_cuts(data, "test"):
        wav = torch.as_tensor(cut.load_audio()[0])
        ref = normalize_text(" ".join(s.text for s in cut.supervisions))
        hyp = transcribe(a, wav, timestamps=True)
        words += len(ref.split())
        if not hyp["words"]:
            continue
        timed = [(w["start"], w["end"]) for w in hyp["words"]]
        chunks = jiwer.process_words(ref, " ".join(w["word"] for w in hyp["words"])).alignments[0]
        pairs = [(c.ref_start_idx + k, c.hyp_start_idx + k) for c in chunks if c.type == "equal" for k in range(c.ref_end_idx - c.ref_start_idx)]
        for name, model in (("A", a), ("B", b)):
            reference = word_spans(align(model, wav, ref))
            errors[name] += [abs(timed[h][i] - reference[r][i]) for r, h in pairs for i in (0, 1)]
    print(f"{len(errors['A']) // 2} of {words} reference words recognised correctly by A")
    for name, errs in errors.items():
        ms = np.array(errs) * 1000
        print(f"vs {name}'s forced alignment of the reference: mean {ms.mean():.1f} ms, median {np.median(ms):.1f} ms, "
              f"90th percentile {np.percentile(ms, 90):.1f} ms")


if __name__ == "__main__":
    main(*sys.argv[1:4])
