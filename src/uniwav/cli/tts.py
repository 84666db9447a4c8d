"""``uniwav tts --model M --prompt P.wav [--prompt-text T] --text T -o OUT.wav`` or ``--batch FILE.tsv``."""

from __future__ import annotations

import csv
from pathlib import Path


def add_arguments(p):
    p.add_argument("--model", required=True, help="TTS run or export (uniwav finetune-tts)")
    p.add_argument("--prompt", default=None, help="voice prompt audio (about 3 s; any rate / channels: converted)")
    p.add_argument("--prompt-text", default=None, help="the prompt's transcript (sets the speaking rate)")
    p.add_argument("--text", default=None, help="what to say")
    p.add_argument("-o", "--output", default=None)
    p.add_argument("--batch", default=None, help="TSV with columns prompt, text, output (and optionally prompt_text)")
    p.add_argument("--asr", default=None, help="CTC model: transcribes/aligns the prompt when --prompt-text is missing")
    p.add_argument("--nfe", type=int, default=16)
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance weight (0 = off)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")


def run(args):
    from uniwav.config import ConfigError
    from uniwav.data.audio import read_audio, write_audio
    from uniwav.inference.tts import synthesize
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel

    if args.batch:
        with open(args.batch, newline="") as f:
            jobs = list(csv.DictReader(f, delimiter="\t"))
        missing = {"prompt", "text", "output"} - set(jobs[0] if jobs else {})
        if missing:
            raise ConfigError(f"{args.batch}: needs a header with columns prompt, text, output (missing {sorted(missing)})")
    else:
        if not (args.prompt and args.text and args.output):
            raise ConfigError("give --prompt, --text and -o, or --batch FILE.tsv")
        jobs = [{"prompt": args.prompt, "text": args.text, "output": args.output, "prompt_text": args.prompt_text}]
    model = TTSModel.from_pretrained(args.model)
    synth = Synthesizer(model.cfg.features, args.vocoder)
    asr = CTCModel.from_pretrained(args.asr) if args.asr else None
    sr = model.cfg.features.sample_rate
    for job in jobs:
        wav, _ = read_audio(job["prompt"], sr)
        out = synthesize(model, wav, job["text"], synth, prompt_text=job.get("prompt_text") or None, asr=asr, nfe=args.nfe,
                         guidance=args.cfg, speed=args.speed, seed=args.seed, source=job["prompt"])
        write_audio(Path(job["output"]), out, sr)
        print(f"{job['output']}: {len(out) / sr:.2f} s, NFE {args.nfe}, cfg {args.cfg}, {synth.name}")
