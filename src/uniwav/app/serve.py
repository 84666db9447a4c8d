"""``uniwav serve``: the trained models in a local web page (Gradio), one tab per model given.

- Transcribe (``--asr``): upload or record; text, word timestamps and confidences; beam width, and
  the word LM of ``--lm`` when given.
- Speak (``--tts``): a voice prompt, its transcript (optional), the text; NFE, guidance, speed and
  seed; the speech and its mel spectrogram.
- Tokens (``--tokenizer``): audio in, 500 or 1000 bit/s; the codes with their measured bitrate, the
  resynthesised audio, and the codes file to download.

Models load once at start; requests are queued (one at a time per model). Analytics are off and
the page loads nothing from the internet (system fonts). An upload that is not usable (not audio,
too long, silent, text that cannot be spoken) is answered with the same message the CLI gives, and
the server keeps serving.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

MAX_UPLOAD_SECONDS = 120.0


class UploadError(ValueError):
    """An upload the models cannot use; its message is shown in the page."""


def to_model_audio(upload, sample_rate: int, what: str = "audio", max_seconds: float = MAX_UPLOAD_SECONDS, silence_ok: bool = False):
    """A Gradio audio value (rate, samples) or a file path -> float32 mono at ``sample_rate``."""
    from uniwav.data.audio import AudioError, read_audio

    if upload is None:
        raise UploadError(f"no {what}: upload a file or record one")
    if isinstance(upload, (str, Path)):
        try:
            wav, _ = read_audio(upload, sample_rate)
        except AudioError as e:
            raise UploadError(str(e)) from None
    else:
        rate, data = upload
        data = np.asarray(data)
        if data.dtype.kind == "i":
            data = data.astype(np.float32) / np.iinfo(data.dtype).max
        data = data.astype(np.float32)
        wav = data.mean(axis=1) if data.ndim == 2 else data
        if rate != sample_rate:
            import soxr

            wav = soxr.resample(wav, rate, sample_rate).astype(np.float32)
    seconds = len(wav) / sample_rate
    if seconds == 0:
        raise UploadError(f"the {what} contains no samples")
    if seconds > max_seconds:
        raise UploadError(f"the {what} is {seconds:.0f} s long; this page takes up to {max_seconds:g} s (use `uniwav` on the command line "
                          "for long files)")
    if not silence_ok and float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) < 1e-4:
        raise UploadError(f"the {what} is silent")
    return wav


def _mel_image(features, wav: np.ndarray) -> np.ndarray:
    """An RGB picture [H, W, 3] uint8 of the log-mel of ``wav``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    mel, _ = features.raw(torch.as_tensor(wav)[None])
    fig, ax = plt.subplots(figsize=(8, 2.2), dpi=80)
    ax.imshow(mel[0].T.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-11, vmax=2)
    ax.set_xlabel("frame")
    ax.set_yticks([])
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


class Models:
    """The models behind the page, loaded once."""

    def __init__(self, asr: Optional[str] = None, tts: Optional[str] = None, tokenizer: Optional[str] = None,
                 vocoder: Optional[str] = None, lm: Optional[str] = None):
        from uniwav.inference.onnx import load_recogniser
        from uniwav.inference.vocoders import Synthesizer
        from uniwav.models.tokenizer import SpeechTokenizer
        from uniwav.models.tts import TTSModel

        if not (asr or tts or tokenizer):
            from uniwav.config import ConfigError

            raise ConfigError("give at least one model: --asr, --tts or --tokenizer")
        self.asr = load_recogniser(asr) if asr else None
        self.lm = None
        if lm and self.asr is not None:
            from uniwav.inference.lm import LMDecoder

            self.lm = LMDecoder(self.asr.vocab, lm)
        self.tts = TTSModel.from_pretrained(tts) if tts else None
        self.tokenizer = SpeechTokenizer.from_pretrained(tokenizer) if tokenizer else None
        self.tts_synth = Synthesizer(self.tts.cfg.features, vocoder) if self.tts else None
        self.tok_synth = Synthesizer(self.tokenizer.cfg.features, vocoder) if self.tokenizer else None

    # ------------------------------------------------------------------ what each tab does

    def transcribe(self, audio, beam: int = 1, use_lm: bool = False) -> tuple[str, list]:
        from uniwav.inference.transcribe import transcribe

        wav = to_model_audio(audio, self.asr.cfg.features.sample_rate, "recording")
        result = transcribe(self.asr, wav, beam=int(beam), lm=self.lm if use_lm else None, timestamps=True)
        rows = [[w["word"], round(w["start"], 2), round(w["end"], 2), round(w["confidence"], 3)] for w in result["words"]]
        return result["text"], rows

    def speak(self, prompt, prompt_text: str, text: str, nfe: int, guidance: float, speed: float, seed: int):
        from uniwav.data.text import VocabularyError
        from uniwav.inference.tts import PromptError, synthesize

        sr = self.tts.cfg.features.sample_rate
        wav = to_model_audio(prompt, sr, "voice prompt")
        if not (text or "").strip():
            raise UploadError("no text to speak")
        try:
            out = synthesize(self.tts, wav, text, self.tts_synth, prompt_text=(prompt_text or "").strip() or None, nfe=int(nfe),
                             guidance=float(guidance), speed=float(speed), seed=int(seed))
        except (PromptError, VocabularyError, ValueError) as e:
            raise UploadError(str(e)) from None
        return (sr, out), _mel_image(self.tts.features, out)

    def tokens(self, audio, bitrate: str):
        from uniwav.config import ConfigError
        from uniwav.inference.codes import save_codes
        from uniwav.inference.resynthesis import audio_to_codes, codes_to_audio

        tok = self.tokenizer
        sr = tok.cfg.features.sample_rate
        wav = to_model_audio(audio, sr, "recording")
        try:
            n = tok.quantizers_for(float(bitrate))
        except ConfigError as e:
            raise UploadError(str(e)) from None
        codes = audio_to_codes(tok, wav, n)
        path = Path(tempfile.mkdtemp(prefix="uniwav-codes-")) / "codes.npz"
        written = save_codes(path, ["recording"], [codes], tok)
        info = (f"{codes.shape[0]} frames x {codes.shape[1]} codebook(s) of {written.codebook_size}: {written.measured_bitrate():g} bit/s "
                f"measured ({written.bitrate:g} nominal)\nfirst codes: {codes[:12, 0].tolist()}")
        out = codes_to_audio(tok, codes, self.tok_synth)
        return info, (sr, out), str(path)


def build_app(models: Models):
    """The Gradio page: one tab per model."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def guarded(fn):
        def run(*args):
            try:
                return fn(*args)
            except UploadError as e:
                raise gr.Error(str(e), print_exception=False) from None

        run.__name__ = fn.__name__
        return run

    theme = gr.themes.Base(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    with gr.Blocks(title="uniwav", analytics_enabled=False, theme=theme) as app:
        gr.Markdown("# uniwav\nOne pre-trained speech model: recognition, text-to-speech and speech tokens.")
        if models.asr is not None:
            with gr.Tab("Transcribe"):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="speech")
                with gr.Row():
                    beam = gr.Slider(1, 32, value=1, step=1, label="beam width (1 = greedy)")
                    use_lm = gr.Checkbox(value=False, label="word language model", visible=models.lm is not None)
                go = gr.Button("Transcribe", variant="primary")
                text = gr.Textbox(label="text")
                words = gr.Dataframe(headers=["word", "start (s)", "end (s)", "confidence"], label="words")
                go.click(guarded(models.transcribe), [audio, beam, use_lm], [text, words], api_name="transcribe")
        if models.tts is not None:
            s = models.tts.cfg.sampler
            with gr.Tab("Speak"):
                prompt = gr.Audio(sources=["upload", "microphone"], type="filepath", label="voice prompt (about 3 s)")
                prompt_text = gr.Textbox(label="what the prompt says (optional)")
                unit = models.tts.cfg
                say = gr.Textbox(label=f"text to speak (read as {'phones, ' + unit.language if unit.unit == 'phone' else 'English letters'})",
                                 value="Hello, this is my voice.")
                with gr.Row():
                    nfe = gr.Slider(2, 64, value=s.nfe, step=2, label="NFE")
                    guidance = gr.Slider(0, 4, value=s.guidance, step=0.5, label="guidance")
                    speed = gr.Slider(0.5, 2.0, value=1.0, step=0.1, label="speed")
                    seed = gr.Number(value=0, precision=0, label="seed")
                go = gr.Button("Speak", variant="primary")
                speech = gr.Audio(label="speech", type="numpy")
                mel = gr.Image(label="mel spectrogram", type="numpy")
                go.click(guarded(models.speak), [prompt, prompt_text, say, nfe, guidance, speed, seed], [speech, mel], api_name="speak")
        if models.tokenizer is not None:
            rates = [f"{models.tokenizer.bitrate(n):g}" for n in range(1, models.tokenizer.quantizer.num_quantizers + 1)]
            with gr.Tab("Tokens"):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="speech")
                bitrate = gr.Radio(rates, value=rates[0], label="bit/s")
                go = gr.Button("Encode and decode", variant="primary")
                info = gr.Textbox(label="codes", lines=2)
                resynth = gr.Audio(label="resynthesised", type="numpy")
                codes = gr.File(label="codes file (.npz, for uniwav detokenize)")
                go.click(guarded(models.tokens), [audio, bitrate], [info, resynth, codes], api_name="tokens")
    app.queue(default_concurrency_limit=1)
    return app


def serve(models: Models, host: str = "127.0.0.1", port: int = 7860, block: bool = True, auth: tuple[str, str] | None = None):
    """Start the page; ``block=False`` returns the running app (tests). ``auth``: (user, password) to log in with."""
    app = build_app(models)
    app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, show_error=True, quiet=not block,
               auth=auth)
    return app
