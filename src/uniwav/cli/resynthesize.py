"""``uniwav resynthesize --model M IN.wav -o OUT.wav --bitrate 500 [--nfe N] [--vocoder V]``."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--model", required=True, help="tokenizer run or export")
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--bitrate", type=float, default=None, help="bit/s (default: all codebooks)")
    p.add_argument("--nfe", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")


def run(args):
    from uniwav.data.audio import read_audio, write_audio
    from uniwav.inference.resynthesis import resynthesize
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.tokenizer import SpeechTokenizer

    tok = SpeechTokenizer.from_pretrained(args.model)
    n = tok.quantizer.num_quantizers if args.bitrate is None else tok.quantizers_for(args.bitrate)
    synth = Synthesizer(tok.cfg.features, args.vocoder)
    wav, _ = read_audio(args.input, tok.cfg.features.sample_rate)
    write_audio(args.output, resynthesize(tok, wav, n, synth, args.nfe, args.seed), tok.cfg.features.sample_rate)
    print(f"{args.output}: {args.input} at {tok.bitrate(n):g} bit/s, NFE {args.nfe}, {synth.name}")
