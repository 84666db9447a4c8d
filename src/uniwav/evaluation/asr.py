"""Word and character error rates (jiwer) with per-utterance rows."""

from __future__ import annotations

import jiwer


def error_rates(refs: list[str], hyps: list[str]) -> dict:
    """Corpus-level WER and CER (errors / reference words or characters)."""
    if not refs:
        raise ValueError("no utterances to score")
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps)), "n": len(refs)}


def evaluate_asr(model, cuts, beam: int = 1) -> dict:
    """Transcribe every cut and score it: {"wer", "cer", "n", "per_utterance": [{id, ref, hyp, wer, cer}]}."""
    from uniwav.data.manifests import require_text
    from uniwav.inference.transcribe import transcribe

    cuts = list(cuts)
    require_text(cuts, "evaluation")
    refs = [" ".join(s.text for s in c.supervisions) for c in cuts]
    hyps = transcribe(model, [c.load_audio()[0] for c in cuts], beam=beam)
    result = error_rates(refs, hyps)
    result["per_utterance"] = [
        {"id": c.id, "ref": r, "hyp": h, "wer": float(jiwer.wer(r, h)), "cer": float(jiwer.cer(r, h))} for c, r, h in zip(cuts, refs, hyps)
    ]
    return result
