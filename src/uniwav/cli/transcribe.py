"""``uniwav transcribe --model RUN_OR_EXPORT FILE... [--beam N] [--lm LM.arpa] [--json]``."""

from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--model", required=True, help="fine-tuned ASR run or export folder")
    p.add_argument("files", nargs="+", help="audio files (any rate / channels: converted)")
    p.add_argument("--beam", type=int, default=1, help="1 = greedy, >1 = CTC prefix beam search")
    p.add_argument("--chunk-seconds", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_lm_arguments(p)


def add_lm_arguments(p):
    p.add_argument("--lm", default=None, help="word n-gram LM (ARPA or KenLM binary; `uniwav build-lm`) for beam search "
                   "through pyctcdecode + kenlm; --beam then defaults to 32")
    p.add_argument("--lm-weight", type=float, default=0.5, help="alpha: weight of the LM log-probability")
    p.add_argument("--word-bonus", type=float, default=1.0, help="beta: bonus per word")


def lm_decoder(args, model):
    """An LMDecoder for --lm, or None."""
    if not args.lm:
        return None
    from uniwav.inference.lm import LMDecoder

    return LMDecoder(model.vocab, args.lm, alpha=args.lm_weight, beta=args.word_bonus)


def run(args):
    from uniwav.data.audio import read_audio
    from uniwav.inference.transcribe import transcribe
    from uniwav.models.ctc import CTCModel

    model = CTCModel.from_pretrained(args.model)
    wavs = [read_audio(f, model.cfg.features.sample_rate)[0] for f in args.files]
    lm = lm_decoder(args, model)
    texts = transcribe(model, wavs, beam=args.beam, chunk_seconds=args.chunk_seconds, lm=lm)
    for f, t in zip(args.files, texts):
        print(json.dumps({"file": f, "text": t}) if args.json else f"{f}\t{t}")
