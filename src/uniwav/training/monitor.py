"""Learning curves of generated speech: is the model starting to speak?

Every ``trainer.sample_every`` updates a ``GenerationMonitor`` makes the model generate a fixed
handful of dev utterances, transcribes them (our recogniser, ``trainer.monitor_asr``, and Whisper
when the eval extra is installed), compares the transcripts with the references (CER) and the
voice with the reference speaker's (resemblyzer similarity), and logs the scores
(``monitor/*_cer``, ``monitor/speaker_sim``), the audio and a mel picture to TensorBoard. Audio is
made with Griffin-Lim, so the curve measures the model, not a vocoder in training.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from uniwav.evaluation import scorers
from uniwav.evaluation.asr import error_rates
from uniwav.features.griffin_lim import GriffinLim
from uniwav.inference.vocoders import Synthesizer
from uniwav.training import plots
from uniwav.training.callbacks import PeriodicSamples


class GenerationMonitor(PeriodicSamples):
    """Subclasses give ``items`` (dicts with at least "id", "text" (reference transcript, may be
    empty) and "speaker_wav" (reference voice)) and ``generate(model, item) -> {label: (wav, mel)}``."""

    def __init__(self, items: list[dict], every: int, sample_rate: int, asr: Optional[str] = None, whisper: Optional[str] = "auto"):
        super().__init__(every)
        self.items, self.sample_rate = items, sample_rate
        self.asr_path, self.whisper_arg = asr or None, whisper
        self._asr = self._whisper = self._speaker = None
        self._loaded = False
        if self.asr_path:  # fail at start, not after the first interval
            from uniwav.models.ctc import CTCModel

            self._asr = CTCModel.from_pretrained(self.asr_path)

    def _load_scorers(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        whisper_dir = scorers.resolve_whisper(self.whisper_arg)
        self._whisper = scorers.WhisperRecognizer(whisper_dir) if whisper_dir else None
        self._speaker = scorers.SpeakerSimilarity() if scorers.SpeakerSimilarity.available() else None

    def generate(self, model, item: dict) -> dict:
        raise NotImplementedError

    def log_samples(self, tb, model, step: int) -> None:
        from uniwav.inference.transcribe import transcribe

        self._load_scorers()
        outputs = {}  # label -> list of waveforms, in item order
        for k, item in enumerate(self.items):
            for label, (wav, mel) in self.generate(model, item).items():
                outputs.setdefault(label, []).append(wav)
                tb.add_audio(f"monitor/{label}/{item['id']}", torch.as_tensor(wav)[None].clamp(-1, 1), step, sample_rate=self.sample_rate)
                if k == 0 and mel is not None:
                    tb.add_figure(f"monitor/{label}/mel", plots.mel_figure({item["id"]: mel}, title=f"step {step}: {item['text'][:60]}"), step)
        refs = [item["text"] for item in self.items]
        for label, wavs in outputs.items():
            scores = {}
            if all(refs):
                if self._asr is not None:
                    scores["asr_cer"] = error_rates(refs, [transcribe(self._asr, w) for w in wavs])["cer"]
                if self._whisper is not None:
                    scores["whisper_cer"] = scorers.recognition_rates(self._whisper, wavs, refs, self.sample_rate)["cer"]
            if self._speaker is not None:
                scores["speaker_sim"] = float(np.mean([self._speaker(w, item["speaker_wav"], self.sample_rate)
                                                       for w, item in zip(wavs, self.items)]))
            for name, value in scores.items():
                tb.add_scalar(f"monitor/{label}/{name}", value, step)


def dev_pairs(cuts, count: int) -> list[tuple]:
    """``count`` (target, prompt) pairs of the cross-sentence protocol, every speaker first."""
    from uniwav.evaluation.tts import cross_sentence_pairs

    pairs = cross_sentence_pairs(cuts, count)
    return pairs or [(c, c) for c in list(cuts)[:count]]


class TTSMonitor(GenerationMonitor):
    """Dev targets spoken from 3 s of another utterance of the same speaker (the evaluation's protocol)."""

    def __init__(self, cuts, count: int, every: int, sample_rate: int, prompt_seconds: float = 3.0, **kwargs):
        items = []
        for target, prompt in dev_pairs(cuts, count):
            prompt_wav = prompt.load_audio()[0].astype(np.float32)
            items.append({"id": target.id, "text": " ".join(s.text for s in target.supervisions if s.text),
                          "prompt": prompt_wav[: int(prompt_seconds * sample_rate)], "speaker_wav": prompt_wav})
        super().__init__(items, every, sample_rate, **kwargs)
        self._synth = None

    def generate(self, model, item: dict) -> dict:
        from uniwav.inference.tts import synthesize

        if self._synth is None:
            self._synth = Synthesizer(model.cfg.features, None, griffin_lim_iters=32)
        wav = synthesize(model, item["prompt"], item["text"], self._synth, seed=0)
        mel, _ = model.features.raw(torch.as_tensor(wav)[None].to(model.device))
        return {"tts": (wav, mel[0].cpu())}


class TokenizerMonitor(GenerationMonitor):
    """Dev utterances through codes and back, at every bitrate the model offers (and the original's
    Griffin-Lim analysis-synthesis as the ceiling)."""

    def __init__(self, cuts, count: int, every: int, sample_rate: int, **kwargs):
        items = []
        for cut in list(cuts)[:count]:
            wav = cut.load_audio()[0].astype(np.float32)
            items.append({"id": cut.id, "text": " ".join(s.text for s in cut.supervisions if s.text), "wav": wav, "speaker_wav": wav})
        super().__init__(items, every, sample_rate, **kwargs)

    def generate(self, model, item: dict) -> dict:
        gl = GriffinLim(model.cfg.features, n_iter=32).to(model.device)
        feats, frames = model.features.prepare(item["wav"])
        out = {}
        if self._last == self.every:  # the ceiling, once
            original = model.features.denormalize(feats[0])
            out["griffin_lim"] = (gl(original).cpu().numpy(), original.cpu())
        for n in range(1, model.quantizer.num_quantizers + 1):
            codes, frames = model.encode(item["wav"], num_quantizers=n)
            mel = model.features.denormalize(model.decode(codes, frames)[0])
            out[f"{model.bitrate(n):g}bps"] = (gl(mel).cpu().numpy(), mel.cpu())
        return out
