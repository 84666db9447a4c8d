"""Word and character error rates (jiwer) with per-utterance rows, and a paired bootstrap that
says whether one system's error rate is really lower than another's on the same utterances."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import numpy as np


def error_rates(refs: list[str], hyps: list[str]) -> dict:
    """Corpus-level WER and CER (errors / reference words or characters)."""
    if not refs:
        raise ValueError("no utterances to score")
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps)), "n": len(refs)}


def evaluate_asr(model, cuts, beam: int = 1, lm=None) -> dict:
    """Transcribe every cut and score it: {"wer", "cer", "n", "per_utterance": [{id, ref, hyp, wer, cer}]}.
    A phone recogniser is scored on the phones of the transcripts (CER over their IPA characters, WER over words)."""
    from uniwav.data.manifests import require_text
    from uniwav.inference.transcribe import transcribe

    cuts = list(cuts)
    require_text(cuts, "evaluation")
    refs = [model.frontend.render(model.frontend.transcript(" ".join(s.text for s in c.supervisions), c.id)) for c in cuts]
    hyps = transcribe(model, [c.load_audio()[0] for c in cuts], beam=beam, lm=lm)
    result = error_rates(refs, hyps)
    result["per_utterance"] = [
        {"id": c.id, "ref": r, "hyp": h, "wer": float(jiwer.wer(r, h)), "cer": float(jiwer.cer(r, h))} for c, r, h in zip(cuts, refs, hyps)
    ]
    return result


def utterance_errors(rows: list[dict], unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance (errors, reference length) in words (``unit="wer"``) or characters (``"cer"``),
    counted as jiwer counts them, so that sum(errors) / sum(lengths) is the corpus rate."""
    process = {"wer": jiwer.process_words, "cer": jiwer.process_characters}[unit]
    errors, lengths = [], []
    for row in rows:
        out = process(row["ref"], row["hyp"])
        errors.append(out.substitutions + out.deletions + out.insertions)
        lengths.append(out.substitutions + out.deletions + out.hits)
    return np.asarray(errors, dtype=np.float64), np.asarray(lengths, dtype=np.float64)


def paired_bootstrap(baseline: list[dict], candidate: list[dict], resamples: int = 2000, seed: int = 0) -> dict:
    """Compare two systems' per-utterance rows ({id, ref, hyp}) on the same utterances.

    Utterances are resampled with replacement (the same draw for both systems); for WER and CER:
    both corpus rates, the candidate's relative reduction 1 - candidate / baseline, its 95%
    percentile interval, and ``p_not_better``: the fraction of resamples in which the candidate is
    not lower (a one-sided bootstrap p-value)."""
    by_id = {row["id"]: row for row in candidate}
    missing = [row["id"] for row in baseline if row["id"] not in by_id]
    if missing or len(by_id) != len(baseline):
        raise ValueError(f"the two results are not on the same utterances ({len(baseline)} vs {len(by_id)}; "
                         f"e.g. {missing[:3] or sorted(set(by_id) - {r['id'] for r in baseline})[:3]})")
    candidate = [by_id[row["id"]] for row in baseline]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(baseline), size=(resamples, len(baseline)))
    result = {"n": len(baseline), "resamples": resamples}
    for unit in ("wer", "cer"):
        (ea, la), (eb, lb) = utterance_errors(baseline, unit), utterance_errors(candidate, unit)
        if la.sum() == 0:
            raise ValueError("the references are empty")
        rate_a, rate_b = ea.sum() / la.sum(), eb.sum() / lb.sum()
        boot_a = ea[draws].sum(1) / np.maximum(la[draws].sum(1), 1.0)
        boot_b = eb[draws].sum(1) / np.maximum(lb[draws].sum(1), 1.0)
        reduction = 1.0 - boot_b / np.maximum(boot_a, 1e-12)
        result[unit] = {"baseline": float(rate_a), "candidate": float(rate_b),
                        "relative_reduction": float(1.0 - rate_b / rate_a) if rate_a > 0 else 0.0,
                        "ci95": [float(np.percentile(reduction, 2.5)), float(np.percentile(reduction, 97.5))],
                        "p_not_better": float(np.mean(boot_b >= boot_a))}
    return result


def load_results(path) -> list[dict]:
    """The per-utterance rows of an ``uniwav evaluate asr --json`` file. Raises ValueError naming the file."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["per_utterance"]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an `uniwav evaluate asr --json` result ({type(e).__name__}: {e})") from None
    if not rows or not all({"id", "ref", "hyp"} <= set(r) for r in rows):
        raise ValueError(f"{path}: per_utterance rows need id, ref and hyp")
    return rows
