"""``uniwav detokenize --model M CODES.npz -o OUT.wav [--nfe N] [--vocoder V]``."""

from __future__ import annotations

from pathlib import Path

from uniwav.cli.common import positive_int, seed


def add_arguments(p):
    p.add_argument("--model", required=True, help="the tokenizer that wrote the codes")
    p.add_argument("codes", help="codes file from `uniwav tokenize`")
    p.add_argument("-o", "--output", required=True,
                   help="output .wav (one file in the codes) or folder (several: NAME.wav each, NAME-2.wav for a name seen before)")
    p.add_argument("--nfe", type=positive_int, default=None, help="network evaluations of the ODE solver (default: the model's sampler)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the generation noise")
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")


def output_paths(out: Path, names: list[str]) -> list[Path]:
    """One output per input: OUT itself for one input and a .wav/.flac OUT, else OUT/STEM.wav, made
    unique (STEM-2.wav, ...) when inputs share a file name."""
    from uniwav.data.audio import check_output_audio

    if len(names) == 1 and out.suffix.lower() in (".wav", ".flac"):
        return [check_output_audio(out)]
    if out.exists() and not out.is_dir():
        from uniwav.config import ConfigError

        raise ConfigError(f"{out}: the codes hold {len(names)} files; -o must be a folder")
    paths, seen = [], {}
    for name in names:
        stem = Path(name).stem
        seen[stem] = seen.get(stem, 0) + 1
        paths.append(out / (f"{stem}.wav" if seen[stem] == 1 else f"{stem}-{seen[stem]}.wav"))
    return paths


def run(args):
    from uniwav.data.audio import write_audio
    from uniwav.inference.codes import load_codes
    from uniwav.inference.resynthesis import codes_to_audio
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.tokenizer import SpeechTokenizer

    tok = SpeechTokenizer.from_pretrained(args.model)
    data = load_codes(args.codes, tok)
    paths = output_paths(Path(args.output), data.names)
    synth = Synthesizer(tok.cfg.features, args.vocoder)
    sampling = {"nfe": args.nfe} if args.nfe else {}
    sr = tok.cfg.features.sample_rate
    for name, codes, path in zip(data.names, data.codes, paths):
        write_audio(path, codes_to_audio(tok, codes, synth, seed=args.seed, **sampling), sr)
        print(f"{path}: {name}, {codes.shape[0]} frames at {data.bitrate:g} bit/s, {synth.name}")
