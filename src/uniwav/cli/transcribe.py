"""``uniwav transcribe --model RUN_OR_EXPORT FILE... [--beam N] [--json]``."""

from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--model", required=True, help="fine-tuned ASR run or export folder")
    p.add_argument("files", nargs="+", help="audio files (any rate / channels: converted)")
    p.add_argument("--beam", type=int, default=1, help="1 = greedy, >1 = CTC prefix beam search")
    p.add_argument("--chunk-seconds", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="print one JSON object per file")


def run(args):
    from uniwav.data.audio import read_audio
    from uniwav.models.ctc import CTCModel

    model = CTCModel.from_pretrained(args.model)
    wavs = [read_audio(f, model.cfg.features.sample_rate)[0] for f in args.files]
    texts = model.transcribe(wavs, beam=args.beam, chunk_seconds=args.chunk_seconds)
    for f, t in zip(args.files, texts):
        print(json.dumps({"file": f, "text": t}) if args.json else f"{f}\t{t}")
