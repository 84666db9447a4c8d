"""``uniwav tts --model M --prompt P.wav [--prompt-text T] --text T -o OUT.wav`` or ``--batch FILE.tsv``."""

from __future__ import annotations

import csv
from pathlib import Path

from uniwav.cli.common import positive_float, positive_int, seed


def add_arguments(p):
    p.add_argument("--model", required=True, help="TTS run or export (uniwav finetune-tts)")
    p.add_argument("--prompt", default=None, help="voice prompt audio (about 3 s; any rate / channels: converted)")
    p.add_argument("--prompt-text", default=None, help="the prompt's transcript (sets the speaking rate)")
    p.add_argument("--text", default=None, help="what to say (numbers and symbols like %% & $ are spelled out in English)")
    p.add_argument("--phonemes", default=None, help="what to say as phones, exactly, for a model trained on phones: phones separated by "
                   "spaces, words by | (e.g. \"h ə l oʊ | w ɜː l d\"); instead of --text")
    p.add_argument("-o", "--output", default=None, help="output .wav or .flac")
    p.add_argument("--batch", default=None, help="TSV with columns prompt, text, output (and optionally prompt_text)")
    p.add_argument("--asr", default=None, help="CTC model: transcribes/aligns the prompt when --prompt-text is missing")
    p.add_argument("--nfe", type=positive_int, default=None, help="network evaluations of the ODE solver (default: the model's sampler)")
    p.add_argument("--cfg", type=float, default=None, help="classifier-free guidance weight, 0 = off (default: the model's sampler)")
    p.add_argument("--sway", type=float, default=None, help="sway sampling coefficient of the time grid, F5-TTS uses -1 "
                   "(default: the model's sampler)")
    p.add_argument("--speed", type=positive_float, default=1.0, help="speaking rate relative to the prompt's")
    p.add_argument("--seed", type=seed, default=0, help="seed of the generation noise")
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")


def jobs_of(args) -> list[dict]:
    from uniwav.config import ConfigError

    if args.batch:
        try:
            with open(args.batch, newline="", encoding="utf-8") as f:
                jobs = list(csv.DictReader(f, delimiter="\t"))
        except UnicodeDecodeError:
            raise ConfigError(f"{args.batch}: not UTF-8 text") from None
        missing = {"prompt", "text", "output"} - set(jobs[0] if jobs else {})
        if missing:
            raise ConfigError(f"{args.batch}: needs a header with columns prompt, text, output (missing {sorted(missing)})")
        return jobs
    if args.text and args.phonemes:
        raise ConfigError("give --text or --phonemes, not both")
    if not (args.prompt and (args.text or args.phonemes) and args.output):
        raise ConfigError("give --prompt, --text (or --phonemes) and -o, or --batch FILE.tsv")
    return [{"prompt": args.prompt, "text": args.text or "", "output": args.output, "prompt_text": args.prompt_text,
             "phonemes": args.phonemes}]


def run(args):
    import dataclasses

    from uniwav.config import ConfigError
    from uniwav.data.audio import check_output_audio, read_audio, write_audio
    from uniwav.data.frontend import TextFrontEnd
    from uniwav.inference.tts import synthesize
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel

    jobs = jobs_of(args)
    outputs = [check_output_audio(job["output"]) for job in jobs]  # before any synthesis
    twice = sorted({str(o) for o in outputs if outputs.count(o) > 1})
    if twice:
        raise ConfigError(f"the same output is asked for twice: {', '.join(twice)}")
    model = TTSModel.from_pretrained(args.model)
    given = {"nfe": args.nfe, "guidance": args.cfg, "sway": args.sway}
    sampler = dataclasses.replace(model.cfg.sampler, **{k: v for k, v in given.items() if v is not None})
    sampler.validate()
    for job in jobs:  # refuse text that cannot be spoken before any synthesis
        if job.get("phonemes"):
            if model.cfg.unit != "phone":
                raise ConfigError(f"--phonemes needs a model trained on phones; {args.model} speaks {model.cfg.unit}s: use --text")
            job["phonemes"] = TextFrontEnd.parse_phonemes(job["phonemes"])
            model.encode_tokens(job["phonemes"])
        else:
            model.encode_text(job["text"])
    synth = Synthesizer(model.cfg.features, args.vocoder)
    asr = CTCModel.from_pretrained(args.asr) if args.asr else None
    sr = model.cfg.features.sample_rate
    for job, output in zip(jobs, outputs):
        wav, _ = read_audio(job["prompt"], sr)
        out = synthesize(model, wav, job["text"], synth, prompt_text=job.get("prompt_text") or None, asr=asr, sampler=sampler,
                         speed=args.speed, seed=args.seed, source=job["prompt"], phonemes=job.get("phonemes"))
        write_audio(Path(output), out, sr)
        print(f"{output}: {len(out) / sr:.2f} s, NFE {sampler.nfe}, guidance {sampler.guidance:g}, sway {sampler.sway:g}, {synth.name}")
