"""``uniwav build-lm --data DATA --out LM.arpa [--order 3] [--splits train]``: a word n-gram LM of a
prepared corpus's transcripts, for ``transcribe --lm`` / ``evaluate asr --lm``."""

from __future__ import annotations

from uniwav.cli.common import positive_int


def add_arguments(p):
    p.add_argument("--data", required=True, help="prepared data folder whose transcripts to use")
    p.add_argument("--out", required=True, help="ARPA file to write")
    p.add_argument("--order", type=positive_int, default=3, help="n-gram order")
    p.add_argument("--splits", default="train", help="comma-separated splits (never include the test split)")


def run(args):
    from uniwav.data.manifests import load_cuts, require_text
    from uniwav.data.text import normalize_text
    from uniwav.inference.lm import build_arpa

    texts = []
    for split in args.splits.split(","):
        cuts = list(load_cuts(args.data, split))
        require_text(cuts, split)
        texts += [normalize_text(" ".join(s.text for s in c.supervisions)) for c in cuts]
    path = build_arpa(texts, args.out, order=args.order)
    print(f"{path}: {args.order}-gram LM of {len(texts)} transcripts ({args.splits})")
