"""``uniwav align --model ASR_RUN --data DATA --out ALIGN``: CTC forced alignment of every split."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--model", required=True, help="fine-tuned ASR run or export folder")
    p.add_argument("--data", required=True, help="prepared data folder with transcripts")
    p.add_argument("--out", required=True, help="folder for {split}.jsonl.gz alignments")
    p.add_argument("--splits", default=None, help="comma-separated splits (default: all)")


def run(args):
    from uniwav.inference.align import align_corpus
    from uniwav.models.ctc import CTCModel

    model = CTCModel.from_pretrained(args.model)
    splits = args.splits.split(",") if args.splits else None
    for split, (n, failed) in align_corpus(model, args.data, args.out, splits).items():
        print(f"{split}: aligned {n} utterances" + (f", {len(failed)} failed: {failed[:5]}" if failed else ""))
