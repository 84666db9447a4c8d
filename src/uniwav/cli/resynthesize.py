"""``uniwav resynthesize --model M IN.wav -o OUT.wav --bitrate 500 [--nfe N] [--vocoder V]``."""

from __future__ import annotations

from uniwav.cli.common import positive_int, seed


def add_arguments(p):
    p.add_argument("--model", required=True, help="tokenizer run or export")
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True, help="output .wav or .flac")
    p.add_argument("--bitrate", type=float, default=None, help="bit/s (default: all codebooks)")
    p.add_argument("--nfe", type=positive_int, default=None, help="network evaluations of the ODE solver (default: the model's sampler)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the generation noise")
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")


def run(args):
    from uniwav.data.audio import check_output_audio, read_audio, write_audio
    from uniwav.inference.resynthesis import resynthesize
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.tokenizer import SpeechTokenizer

    check_output_audio(args.output)
    tok = SpeechTokenizer.from_pretrained(args.model)
    n = tok.quantizer.num_quantizers if args.bitrate is None else tok.quantizers_for(args.bitrate)
    synth = Synthesizer(tok.cfg.features, args.vocoder)
    wav, _ = read_audio(args.input, tok.cfg.features.sample_rate)
    sampling = {"nfe": args.nfe} if args.nfe else {}
    write_audio(args.output, resynthesize(tok, wav, n, synth, seed=args.seed, **sampling), tok.cfg.features.sample_rate)
    print(f"{args.output}: {args.input} at {tok.bitrate(n):g} bit/s, {synth.name}")
