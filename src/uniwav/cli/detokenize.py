"""``uniwav detokenize --model M CODES.npz -o OUT.wav [--nfe N] [--vocoder V]``."""

from __future__ import annotations

from pathlib import Path


def add_arguments(p):
    p.add_argument("--model", required=True, help="the tokenizer that wrote the codes")
    p.add_argument("codes", help="codes file from `uniwav tokenize`")
    p.add_argument("-o", "--output", required=True,
                   help="output .wav (one file in the codes) or folder (several: NAME.wav each)")
    p.add_argument("--nfe", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")


def run(args):
    from uniwav.data.audio import write_audio
    from uniwav.inference.codes import load_codes
    from uniwav.inference.resynthesis import codes_to_audio
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.tokenizer import SpeechTokenizer

    tok = SpeechTokenizer.from_pretrained(args.model)
    data = load_codes(args.codes, tok)
    synth = Synthesizer(tok.cfg.features, args.vocoder)
    sr = tok.cfg.features.sample_rate
    out = Path(args.output)
    for name, codes in zip(data.names, data.codes):
        path = out if len(data.codes) == 1 and out.suffix == ".wav" else out / (Path(name).stem + ".wav")
        write_audio(path, codes_to_audio(tok, codes, synth, args.nfe, args.seed), sr)
        print(f"{path}: {codes.shape[0]} frames at {data.bitrate:g} bit/s, NFE {args.nfe}, {synth.name}")
