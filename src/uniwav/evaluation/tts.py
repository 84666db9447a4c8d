"""``uniwav evaluate tts``: the cross-sentence protocol on a prepared split.

For each utterance of a speaker (the target text), the prompt is the first 3 s of ANOTHER
utterance of the same speaker (the next one in id order), with its transcript. Rows: the target
utterance through the vocoder alone (ground truth), and TTS with each sampler setting given
(NFE, guidance, sway, ODE method) and with predicted or ground-truth durations (the target's
forced alignment: what the model makes of the text when the rhythm is right). Scores: CER/WER by
our CTC model (``asr``) and by Whisper (independent, when available), speaker similarity to the
prompt's whole utterance (resemblyzer), DNSMOS on request; per utterance too, so that two models
can be compared with ``evaluation.asr.paired_bootstrap``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Optional

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


def system_name(settings: dict) -> str:
    """A row name for synthesis settings, e.g. "tts nfe=16 cfg=2 sway=-1" (+ " gt-durations")."""
    parts = [f"nfe={settings['nfe']}"] if "nfe" in settings else []
    parts += [f"cfg={settings['guidance']:g}"] if "guidance" in settings else []
    parts += [f"sway={settings['sway']:g}"] if settings.get("sway") else []
    parts += [settings["method"]] if settings.get("method", "midpoint") != "midpoint" else []
    parts += ["context-path"] if settings.get("context_path") else []
    parts += ["gt-durations"] if settings.get("durations") == "ground-truth" else []
    return " ".join(["tts", *parts])


def evaluate_tts(model, cuts, synth: Synthesizer, systems: Optional[Sequence[dict]] = None, asr_model=None,
                 whisper_dir: Optional[str] = None, dnsmos: bool = False, prompt_seconds: float = 3.0, max_pairs: Optional[int] = None,
                 alignments: Optional[dict] = None, progress: bool = True) -> dict:
    """Score TTS on ``cuts``. ``systems``: synthesis settings, each a dict of sampler fields (nfe,
    guidance, sway, method) and optionally ``durations="ground-truth"`` (needs ``alignments``, the
    split's rows from ``data.alignments.read_alignments``); default: one system with the model's sampler.
    Returns {"rows": {system: means}, "per_utterance": {system: [{id, ref, hyp, ...}]}, "pairs", ...};
    ``hyp`` is Whisper's transcript when Whisper is available, else our recogniser's."""
    import dataclasses

    from uniwav.models.tts import alignment_tokens

    sr = model.cfg.features.sample_rate
    cuts = list(cuts)
    systems = list(systems) if systems is not None else [{}]
    if any(s.get("durations") == "ground-truth" for s in systems) and alignments is None:
        raise ValueError("ground-truth durations need the split's alignments (uniwav align)")
    pairs, protocol = cross_sentence_pairs(cuts, max_pairs), "cross-sentence"
    if not pairs:  # a toy split: fall back to prompting with the target's own first seconds, and say so
        import warnings

        warnings.warn("no speaker of this split has two utterances: prompting each utterance with its own start (not cross-sentence)",
                      stacklevel=2)
        pairs, protocol = [(c, c) for c in cuts][:max_pairs], "same-utterance"
    if alignments is not None:
        pairs = [(t, p) for t, p in pairs if t.id in alignments]
    if not pairs:
        raise ValueError("the split has no utterances" + (" with an alignment" if alignments is not None else ""))
    names = [GROUND_TRUTH] + [system_name({**dataclasses.asdict(model.cfg.sampler), **s}) for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"two systems have the same settings: {names[1:]}")
    audio = {name: [] for name in names}
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
        for name, settings in zip(names[1:], systems):
            settings = dict(settings)
            if settings.pop("durations", None) == "ground-truth":
                settings["durations"] = alignment_tokens(alignments[target.id], model.index)[1]
            audio[name].append(synthesize(model, cut_prompt, text, synth, seed=0, source=prompt.id, **settings))
    speaker = scorers.SpeakerSimilarity() if scorers.SpeakerSimilarity.available() else None
    whisper = scorers.WhisperRecognizer(whisper_dir) if whisper_dir else None
    mos = scorers.DNSMOS() if dnsmos and scorers.DNSMOS.available() else None
    rows, per_utterance = {}, {}
    for name, outs in audio.items():
        row = {"seconds": float(np.mean([len(o) / sr for o in outs]))}
        utts = [{"id": m["target"], "ref": text} for m, text in zip(rows_meta, texts)]
        if asr_model is not None:
            r = scorers.recognition_rates(lambda w, _sr: transcribe(asr_model, w), outs, texts, sr)
            row["asr_cer"], row["asr_wer"] = r["cer"], r["wer"]
            for u, h in zip(utts, r["hypotheses"]):
                u["asr_hyp"] = h
        if whisper is not None:
            r = scorers.recognition_rates(whisper, outs, texts, sr)
            row["whisper_cer"], row["whisper_wer"] = r["cer"], r["wer"]
            for u, h in zip(utts, r["hypotheses"]):
                u["whisper_hyp"] = h
        if speaker is not None:
            sims = [speaker(o, p, sr) for o, p in zip(outs, prompts_full)]
            row["speaker_sim"] = float(np.mean(sims))
            for u, sim in zip(utts, sims):
                u["speaker_sim"] = sim
        if mos is not None:
            row["dnsmos"] = float(np.mean([mos(o, sr) for o in outs]))
        for u in utts:
            u["hyp"] = u.get("whisper_hyp", u.get("asr_hyp", ""))
        rows[name] = row
        per_utterance[name] = utts
    return {"rows": rows, "per_utterance": per_utterance, "n": len(pairs), "protocol": protocol, "pairs": rows_meta,
            "systems": dict(zip(names[1:], systems)), "vocoder": synth.name,
            "scorers": {"asr": asr_model is not None, "whisper": whisper is not None, "speaker_sim": speaker is not None,
                        "dnsmos": mos is not None}, "_audio": audio}


def format_table(result: dict) -> str:
    cols = ["asr_cer", "asr_wer", "whisper_cer", "whisper_wer", "speaker_sim", "dnsmos", "seconds"]
    cols = [c for c in cols if any(c in r for r in result["rows"].values())]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" if c in row else "-" for c in cols) + " |")
    return "\n".join(lines)


def load_tts_results(path, system: Optional[str] = None) -> tuple[str, list[dict]]:
    """(system, per-utterance rows) of an ``uniwav evaluate tts --json`` file: the named system, or its
    first generated one. Raises ValueError naming the file."""
    import json
    from pathlib import Path

    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        per_utterance = result["per_utterance"]
        name = system or next(iter(result["systems"]))
        return name, per_utterance[name]
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as e:
        raise ValueError(f"{path}: not an `uniwav evaluate tts --json` result with per-utterance rows ({type(e).__name__}: {e})") from None
