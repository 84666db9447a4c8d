"""CTC forced alignment of a waveform or a whole prepared corpus (Viterbi over the CTC trellis,
``ctc_decode.forced_align``; no external aligner needed)."""

from __future__ import annotations

from uniwav.inference.ctc_decode import AlignmentError, forced_align


def align(model, wav, text: str, utt_id: str = "?") -> list[tuple[str, float, float]]:
    """Forced alignment of ``text`` to one waveform with a ``CTCModel``: [(character or phone, start s, end s), ...]."""
    log_probs, frames = model.log_probs(wav)
    tokens = model.vocab.encode(model.frontend.transcript(text, utt_id), utt_id)
    spans = forced_align(log_probs[0, : int(frames[0])].cpu().numpy(), tokens, utt_id=utt_id)
    rate = model.cfg.features.frame_rate
    return [(model.vocab.symbols[tok], start / rate, end / rate) for tok, (start, end) in zip(tokens, spans)]


def align_corpus(model, data_dir, out_dir, splits=None, batch_seconds: float = 120.0) -> dict:
    """Write ``out_dir/{split}.jsonl.gz``: one JSON line per utterance with its text, frame rate,
    number of frames and per-token frame spans (characters; or phones, then also the tokens, unit and
    language). Returns split -> (aligned, [failed ids])."""
    from tqdm import tqdm

    from uniwav.data.alignments import write_alignments
    from uniwav.data.manifests import available_splits, load_cuts
    from uniwav.data.text import VocabularyError
    from uniwav.inference.transcribe import stitched_log_probs

    result = {}
    for split in splits or available_splits(data_dir):
        cuts = [c for c in load_cuts(data_dir, split) if any(s.text for s in c.supervisions)]
        rows, failed = [], []
        for k in tqdm(range(0, len(cuts), 32), desc=f"aligning {split}", leave=False):
            chunk = cuts[k: k + 32]
            for cut, lp in zip(chunk, stitched_log_probs(model, [c.load_audio()[0] for c in chunk], batch_seconds=batch_seconds)):
                text = " ".join(s.text for s in cut.supervisions if s.text)
                try:
                    tokens = model.frontend.transcript(text, cut.id)
                    spans = forced_align(lp, model.vocab.encode(tokens, cut.id), utt_id=cut.id)
                except (AlignmentError, VocabularyError):
                    failed.append(cut.id)
                    continue
                row = {"id": cut.id, "text": text, "speaker": cut.supervisions[0].speaker, "frame_rate": model.cfg.features.frame_rate,
                       "num_frames": int(lp.shape[0]), "spans": spans}
                if model.cfg.unit != "char":
                    row.update(tokens=tokens, unit=model.cfg.unit, language=model.cfg.language)
                rows.append(row)
        write_alignments(out_dir, split, rows)
        result[split] = (len(rows), failed)
    return result
