"""``uniwav evaluate resynth``: speech tokens at each bitrate against the vocoded ground truth.

For every utterance of a split: the original, the original through the vocoder alone (the
ceiling), and the resynthesis from codes at each bitrate (same vocoder). Each row: measured
bitrate, mel distance, PESQ, STOI against the original; and, where available, CER/WER by our CTC
model, CER/WER by Whisper, speaker similarity to the original, DNSMOS.
"""

from __future__ import annotations

from typing import Optional
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from uniwav.evaluation import scorers
from uniwav.inference.transcribe import transcribe
from uniwav.inference.codes import Codes
from uniwav.inference.resynthesis import audio_to_codes, codes_to_audio, resynthesize
from uniwav.inference.vocoders import Synthesizer

GROUND_TRUTH = "ground truth (vocoded)"


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


UNQUANTIZED = "unquantized z (decoder ceiling)"


def evaluate_resynth(tokenizer, cuts, bitrates: Sequence[float], synth: Synthesizer, asr_model=None, whisper_dir: Optional[str] = None,
                     speaker: bool = True, dnsmos: bool = False, max_utterances: Optional[int] = None, progress: bool = True,
                     unquantized: bool = False, **sampling) -> dict:
    """Rows: the vocoded original, the decoder from unquantised z (``unquantized``), each bitrate.
    ``sampling`` replaces fields of the tokenizer's sampler (nfe=, method=, sway=)."""
    sr = tokenizer.cfg.features.sample_rate
    cuts = list(cuts)[:max_utterances]
    levels = {GROUND_TRUTH: None, **({UNQUANTIZED: 0} if unquantized else {}),
              **{f"{b:g} bit/s": tokenizer.quantizers_for(b) for b in bitrates}}
    audio = {name: [] for name in levels}
    refs, texts, ids, measured = [], [], [], {name: [] for name in levels}
    for cut in tqdm(cuts, desc="resynthesis", disable=not progress):
        wav = cut.load_audio()[0].astype(np.float32)
        refs.append(wav)
        texts.append(" ".join(s.text for s in cut.supervisions if s.text))
        ids.append(cut.id)
        mel, _ = tokenizer.features.raw(torch.as_tensor(wav)[None])
        for name, n in levels.items():
            if n is None:
                out = synth(mel[0]).numpy()
            elif n == 0:
                out = resynthesize(tokenizer, wav, None, synth, **sampling)
            else:
                codes = audio_to_codes(tokenizer, wav, n)
                c = Codes([cut.id], [codes], tokenizer.bitrate(n), tokenizer.frame_rate, tokenizer.quantizer.codebook_size, "")
                measured[name].append(c.measured_bitrate())
                out = codes_to_audio(tokenizer, codes, synth, **sampling)
            audio[name].append(out[: len(wav)] if len(out) >= len(wav) else np.pad(out, (0, len(wav) - len(out))))

    speaker_sim = scorers.SpeakerSimilarity() if speaker and scorers.SpeakerSimilarity.available() else None
    whisper = scorers.WhisperRecognizer(whisper_dir) if whisper_dir else None
    mos = scorers.DNSMOS() if dnsmos and scorers.DNSMOS.available() else None
    rows, per_utt = {}, []
    for name, outs in audio.items():
        utt = []
        for i, (out, ref) in enumerate(zip(outs, refs)):
            r = {"id": ids[i], "mel_l1": scorers.mel_distance(tokenizer.features, out, ref), "pesq": scorers.pesq_wb(out, ref, sr),
                 "stoi": scorers.stoi(out, ref, sr)}
            if speaker_sim is not None:
                r["speaker_sim"] = speaker_sim(out, ref, sr)
            if mos is not None:
                r["dnsmos"] = mos(out, sr)
            utt.append(r)
        row = {k: _mean([u[k] for u in utt]) for k in utt[0] if k != "id"}
        row["bitrate"] = _mean(measured[name]) if measured[name] else None
        if asr_model is not None and all(texts):
            rates = scorers.recognition_rates(lambda w, _sr: transcribe(asr_model, w), outs, texts, sr)
            row["asr_cer"], row["asr_wer"] = rates["cer"], rates["wer"]
        if whisper is not None and all(texts):
            rates = scorers.recognition_rates(whisper, outs, texts, sr)
            row["whisper_cer"], row["whisper_wer"] = rates["cer"], rates["wer"]
        rows[name] = row
        per_utt.append({"system": name, "utterances": utt})
    return {"rows": rows, "n": len(refs), "sampling": sampling, "vocoder": synth.name,
            "scorers": {"speaker_sim": speaker_sim is not None, "whisper": whisper is not None, "dnsmos": mos is not None,
                        "asr": asr_model is not None},
            "per_utterance": per_utt, "_audio": audio}


def format_table(result: dict) -> str:
    cols = ["bitrate", "mel_l1", "pesq", "stoi", "speaker_sim", "asr_cer", "whisper_cer", "dnsmos"]
    cols = [c for c in cols if any(r.get(c) is not None for r in result["rows"].values())]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in result["rows"].items():
        cells = [("-" if row.get(c) is None else f"{row[c]:.3f}" if c != "bitrate" else f"{row[c]:g}") for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
