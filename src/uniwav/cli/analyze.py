"""``uniwav analyze layers --model M --data DATA --alignments ALIGN [--out DIR]``."""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p):
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    a = sub.add_parser("layers", help="character probe and k-means mutual information (characters, speakers) per encoder layer")
    a.add_argument("--model", required=True, help="pre-trained UniWav run or export")
    a.add_argument("--data", required=True, help="prepared data folder")
    a.add_argument("--alignments", required=True, help="output folder of `uniwav align` (frame-level character or phone labels)")
    a.add_argument("--out", default=None, help="folder for layers.json and layers.png (default: print only)")
    a.add_argument("--train-split", default="train", help="split the probes are fitted on")
    a.add_argument("--test-split", default="test", help="split (unseen speakers) the probes are scored on")
    a.add_argument("--max-train-utterances", type=int, default=200, help="utterances of the train split used")
    a.add_argument("--units", type=int, default=100, help="k-means units per layer")


def run(args):
    from uniwav.evaluation.probing import analyze_layers, plot_layers
    from uniwav.models.uniwav import UniWav
    from uniwav.utils import atomic_write_text

    result = analyze_layers(UniWav.from_pretrained(args.model), args.data, args.alignments, args.train_split, args.test_split,
                            args.max_train_utterances, units=args.units)
    unit = result["unit"]
    print(f"layer | {unit:5s} probe acc | NMI {unit:5s}| NMI speaker   ({result['train_frames']} train / {result['test_frames']} test frames; "
          f"majority class {result['majority_baseline']:.3f})")
    for r in result["layers"]:
        print(f"{r['layer']:5d} | {r['probe_accuracy']:15.3f} | {r['nmi_text']:9.3f} | {r['nmi_speaker']:.3f}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "layers.json", json.dumps(result, indent=1))
        plot_layers(result, out / "layers.png")
        print(f"wrote {out / 'layers.json'} and {out / 'layers.png'}")
