"""``uniwav transcribe --model RUN_OR_EXPORT FILE... [--beam N] [--lm LM.arpa] [--json]``."""

from __future__ import annotations

from uniwav.cli.common import positive_int

import json


def add_arguments(p):
    p.add_argument("--model", required=True, help="fine-tuned ASR run or export folder, or its ONNX export (run by onnxruntime)")
    p.add_argument("files", nargs="+", help="audio files (any rate / channels: converted)")
    p.add_argument("--beam", type=positive_int, default=1, help="1 = greedy, >1 = CTC prefix beam search")
    p.add_argument("--chunk-seconds", type=float, default=30.0, help="longer files are cut into windows of this length, overlapping by 2 s")
    p.add_argument("--json", action="store_true", help="print one JSON object per file (--format json)")
    p.add_argument("--timestamps", action="store_true", help="word start/end times and confidences (JSON output)")
    p.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default=None,
                   help="txt: FILE<TAB>text; json: an object per file (with words when --timestamps); srt / vtt: subtitles, written "
                        "beside each input as NAME.srt / NAME.vtt, or into --output-dir (implies --timestamps) (default: txt)")
    p.add_argument("--output-dir", default=None, help="folder for the subtitle files of --format srt / vtt")
    add_lm_arguments(p)


def add_lm_arguments(p):
    p.add_argument("--lm", default=None, help="word n-gram LM (ARPA, plain or .gz; `uniwav build-lm` or KenLM's lmplz) for beam search "
                   "through flashlight-text (its KenLM), restricted to the LM's words; --beam then defaults to 32")
    p.add_argument("--lm-weight", type=float, default=0.5, help="alpha: weight of the LM log-probability")
    p.add_argument("--word-bonus", type=float, default=1.0, help="beta: bonus per word")


def lm_decoder(args, model):
    """An LMDecoder for --lm, or None."""
    if not args.lm:
        return None
    from uniwav.inference.lm import LMDecoder

    return LMDecoder(model.vocab, args.lm, alpha=args.lm_weight, beta=args.word_bonus)


def run(args):
    import sys

    from uniwav.config import ConfigError
    from uniwav.data.audio import AudioError, read_audio
    from uniwav.inference.transcribe import OVERLAP_SECONDS, transcribe

    if not args.chunk_seconds > OVERLAP_SECONDS:
        raise ConfigError(f"--chunk-seconds must be longer than the {OVERLAP_SECONDS:g} s the windows overlap, got {args.chunk_seconds:g}")
    from uniwav.inference.onnx import load_recogniser

    model = load_recogniser(args.model)
    lm = lm_decoder(args, model)
    good, wavs, bad = [], [], []
    for f in args.files:  # a broken file is reported; the others are still transcribed
        try:
            wavs.append(read_audio(f, model.cfg.features.sample_rate)[0])
            good.append(f)
        except AudioError as e:
            bad.append(f)
            print(f"uniwav transcribe: error: {e}", file=sys.stderr)
    fmt = args.format or ("json" if args.json or args.timestamps else "txt")
    stamped = args.timestamps or fmt in ("srt", "vtt")
    results = transcribe(model, wavs, beam=args.beam, chunk_seconds=args.chunk_seconds, lm=lm, timestamps=stamped) if wavs else []
    for f, r in zip(good, results):
        if fmt in ("srt", "vtt"):
            from pathlib import Path

            from uniwav.inference.timestamps import Word, to_srt, to_vtt
            from uniwav.utils import atomic_write_text

            words = [Word(**w) for w in r["words"]]
            folder = Path(args.output_dir) if args.output_dir else Path(f).parent
            path = folder / (Path(f).stem + "." + fmt)
            atomic_write_text(path, to_srt(words) if fmt == "srt" else to_vtt(words))
            print(f"{f}\t{path}")
        elif fmt == "json":
            print(json.dumps({"file": f, **(r if stamped else {"text": r})}))
        else:
            print(f"{f}\t{r['text'] if stamped else r}")
    if bad:
        print(f"uniwav transcribe: {len(bad)} of {len(args.files)} files could not be read (see above)", file=sys.stderr)
        return 2
