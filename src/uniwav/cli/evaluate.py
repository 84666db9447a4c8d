"""``uniwav evaluate asr --model M --data DATA --split test [--json OUT.json]``."""

from __future__ import annotations

import json


def add_arguments(p):
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    a = sub.add_parser("asr", help="WER/CER of a CTC model on a prepared split")
    a.add_argument("--model", required=True)
    a.add_argument("--data", required=True)
    a.add_argument("--split", default="test")
    a.add_argument("--beam", type=int, default=1)
    a.add_argument("--json", default=None, help="write {wer, cer, n, per_utterance} here")
    f = sub.add_parser("infill", help="decoder infilling of masked frames vs. the mean-frame baseline (pre-trained model)")
    f.add_argument("--model", required=True)
    f.add_argument("--data", required=True)
    f.add_argument("--split", default="dev")
    f.add_argument("--nfe", type=int, default=16)
    f.add_argument("--method", default="midpoint", choices=["euler", "midpoint"],
                   help="ODE solver; --nfe 1 --method euler gives the decoder's conditional-mean estimate")
    f.add_argument("--json", default=None)


def run(args):
    if args.what == "infill":
        return run_infill(args)
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.asr import evaluate_asr
    from uniwav.models.ctc import CTCModel
    from uniwav.utils import atomic_write_text

    result = evaluate_asr(CTCModel.from_pretrained(args.model), load_cuts(args.data, args.split), beam=args.beam)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: WER {result['wer']:.4f}  CER {result['cer']:.4f}  ({result['n']} utterances)")


def run_infill(args):
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.infill import evaluate_infill
    from uniwav.models.uniwav import UniWav
    from uniwav.utils import atomic_write_text

    result = evaluate_infill(UniWav.from_pretrained(args.model), load_cuts(args.data, args.split), nfe=args.nfe, method=args.method)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: masked-frame L1 {result['infill_l1']:.4f} (decoder, NFE {args.nfe} {args.method}) vs {result['mean_frame_l1']:.4f} "
          f"(mean-frame baseline); {result['masked_frames']} masked frames in {result['n']} utterances")
