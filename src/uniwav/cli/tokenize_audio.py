"""``uniwav tokenize --model M FILE.wav... -o CODES.npz --bitrate 500``."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--model", required=True, help="tokenizer run or export (uniwav finetune-tokenizer)")
    p.add_argument("files", nargs="+", help="audio files (any rate / channels: converted)")
    p.add_argument("-o", "--output", required=True, help="codes file (.npz)")
    p.add_argument("--bitrate", type=float, default=None, help="bit/s (default: all codebooks)")


def run(args):
    from uniwav.data.audio import read_audio
    from uniwav.inference.codes import save_codes
    from uniwav.inference.resynthesis import audio_to_codes
    from uniwav.models.tokenizer import SpeechTokenizer

    tok = SpeechTokenizer.from_pretrained(args.model)
    n = tok.quantizer.num_quantizers if args.bitrate is None else tok.quantizers_for(args.bitrate)
    codes = []
    for f in args.files:
        wav = read_audio(f, tok.cfg.features.sample_rate)[0]
        if len(wav) < tok.cfg.features.hop_length:
            from uniwav.data.audio import AudioError

            raise AudioError(f, f"{1000 * len(wav) / tok.cfg.features.sample_rate:.0f} ms is shorter than one frame of codes "
                                f"({1000 / tok.frame_rate:g} ms); nothing was written")
        codes.append(audio_to_codes(tok, wav, n))
    out = save_codes(args.output, args.files, codes, tok)
    frames = sum(c.shape[0] for c in codes)
    print(f"{args.output}: {len(codes)} file(s), {frames} frames, {out.num_quantizers} codebook(s) of {out.codebook_size}: "
          f"{out.bitrate:g} bit/s (measured {out.measured_bitrate():g})")
