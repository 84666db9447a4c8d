"""``uniwav evaluate tts``: the cross-sentence protocol on a prepared split.

For each utterance of a speaker (the target text), the prompt is the first 3 s of ANOTHER
utterance of the same speaker (the next one in id order), with its transcript. Rows: the target
utterance through the vocoder alone (ground truth), and TTS at each NFE. Scores: CER/WER by our
CTC model (``asr``) and by Whisper (independent, when available), speaker similarity to the
prompt's whole utterance (resemblyzer), DNSMOS on request.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from uniwav.evaluation import scorers
from uniwav.inference.transcribe import transcribe
from uniwav.inference.tts import synthesize
from uniwav.inference.vocoders import Synthesizer

GROUND_TRUTH = "ground truth (vocoded)"


def cross_sentence_pairs(cuts, max_pairs: Optional[int] = None) -> list[tuple]:
    """[(target cut, prompt cut)]: the prompt is the next utterance of the same speaker (cyclic).
    Speakers are interleaved, so that ``max_pairs`` keeps every speaker."""
    by_speaker = defaultdict(list)
    for c in cuts:
        by_speaker[c.supervisions[0].speaker].append(c)
    per_speaker = []
    for spk in sorted(by_speaker):
        utts = sorted(by_speaker[spk], key=lambda c: c.id)
        if len(utts) >= 2:
            per_speaker.append([(utts[i], utts[(i + 1) % len(utts)]) for i in range(len(utts))])
    pairs = [p[k] for k in range(max(map(len, per_speaker), default=0)) for p in per_speaker if k < len(p)]
    return pairs[:max_pairs]


def evaluate_tts(model, cuts, synth: Synthesizer, nfes: Sequence[int] = (8, 16, 32), guidance: float = 1.0, asr_model=None,
                 whisper_dir: Optional[str] = None, dnsmos: bool = False, prompt_seconds: float = 3.0,
                 max_pairs: Optional[int] = None, progress: bool = True) -> dict:
    sr = model.cfg.features.sample_rate
    cuts = list(cuts)
    pairs, protocol = cross_sentence_pairs(cuts, max_pairs), "cross-sentence"
    if not pairs:  # a toy split: fall back to prompting with the target's own first seconds, and say so
        import warnings

        warnings.warn("no speaker of this split has two utterances: prompting each utterance with its own start (not cross-sentence)",
                      stacklevel=2)
        pairs, protocol = [(c, c) for c in cuts][:max_pairs], "same-utterance"
    if not pairs:
        raise ValueError("the split has no utterances")
    systems = [GROUND_TRUTH] + [f"tts nfe={n}" for n in nfes]
    audio = {s: [] for s in systems}
    texts, prompts_full, rows_meta = [], [], []
    for target, prompt in tqdm(pairs, desc="tts", disable=not progress):
        wav_t = target.load_audio()[0].astype(np.float32)
        wav_p = prompt.load_audio()[0].astype(np.float32)
        text = " ".join(s.text for s in target.supervisions)
        texts.append(text)
        prompts_full.append(wav_p)
        rows_meta.append({"target": target.id, "prompt": prompt.id, "text": text})
        mel, _ = model.features.raw(torch.as_tensor(wav_t)[None])
        audio[GROUND_TRUTH].append(synth(mel[0]).numpy())
        cut_prompt = wav_p[: int(prompt_seconds * sr)]
        for n in nfes:
            audio[f"tts nfe={n}"].append(synthesize(model, cut_prompt, text, synth, nfe=n, guidance=guidance, seed=0, source=prompt.id))
    speaker = scorers.SpeakerSimilarity() if scorers.SpeakerSimilarity.available() else None
    whisper = scorers.WhisperRecognizer(whisper_dir) if whisper_dir else None
    mos = scorers.DNSMOS() if dnsmos and scorers.DNSMOS.available() else None
    rows = {}
    for name, outs in audio.items():
        row = {"seconds": float(np.mean([len(o) / sr for o in outs]))}
        if asr_model is not None:
            r = scorers.recognition_rates(lambda w, _sr: transcribe(asr_model, w), outs, texts, sr)
            row["asr_cer"], row["asr_wer"] = r["cer"], r["wer"]
        if whisper is not None:
            r = scorers.recognition_rates(whisper, outs, texts, sr)
            row["whisper_cer"], row["whisper_wer"] = r["cer"], r["wer"]
        if speaker is not None:
            row["speaker_sim"] = float(np.mean([speaker(o, p, sr) for o, p in zip(outs, prompts_full)]))
        if mos is not None:
            row["dnsmos"] = float(np.mean([mos(o, sr) for o in outs]))
        rows[name] = row
    return {"rows": rows, "n": len(pairs), "protocol": protocol, "pairs": rows_meta, "guidance": guidance, "vocoder": synth.name,
            "scorers": {"asr": asr_model is not None, "whisper": whisper is not None, "speaker_sim": speaker is not None,
                        "dnsmos": mos is not None}, "_audio": audio}


def format_table(result: dict) -> str:
    cols = ["asr_cer", "asr_wer", "whisper_cer", "whisper_wer", "speaker_sim", "dnsmos", "seconds"]
    cols = [c for c in cols if any(c in r for r in result["rows"].values())]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" if c in row else "-" for c in cols) + " |")
    return "\n".join(lines)
