"""``uniwav serve [--asr RUN] [--tts RUN] [--tokenizer RUN] [--vocoder RUN] [--port 7860] [--host 127.0.0.1]``."""

from __future__ import annotations

from uniwav.cli.common import positive_int


def add_arguments(p):
    p.add_argument("--asr", default=None, help="a CTC model (run or export): the Transcribe tab")
    p.add_argument("--tts", default=None, help="a TTS model (run or export): the Speak tab")
    p.add_argument("--tokenizer", default=None, help="a speech tokenizer (run or export): the Tokens tab")
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")
    p.add_argument("--lm", default=None, help="word n-gram LM (ARPA, `uniwav build-lm`) offered in the Transcribe tab")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface of this machine)")
    p.add_argument("--port", type=positive_int, default=7860, help="port to listen on")


def run(args):
    import importlib.util

    from uniwav.config import ConfigError

    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("the web page needs Gradio: pip install 'uniwav[app]'")
    from uniwav.app.serve import Models, serve

    models = Models(args.asr, args.tts, args.tokenizer, args.vocoder, args.lm)
    print(f"serving on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    serve(models, args.host, args.port)
