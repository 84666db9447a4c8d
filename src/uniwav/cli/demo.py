"""``uniwav demo --out DIR``: the demo recipe (``uniwav.recipes.demo``) on the built-in corpus."""

from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--out", required=True, help="demo folder (data/, runs, report.html, metrics.json)")
    p.add_argument("--budget-minutes", type=float, default=60.0, help="training time for all stages together (default: %(default)s)")
    p.add_argument("--corpus-minutes", type=float, default=45.0, help="minutes of synthetic speech (default: %(default)s)")
    p.add_argument("--label-minutes", type=float, default=10.0, help="labelled audio for ASR fine-tuning (default: %(default)s)")
    p.add_argument(
        "--eval-utterances", type=int, default=30, help="test utterances for the token and TTS evaluations (default: %(default)s)"
    )
    p.add_argument("--max-steps", type=int, default=None, help="cap every training stage at this many updates (smoke runs)")


def run(args):
    from uniwav.recipes.demo import DemoOptions, run_demo

    d = run_demo(DemoOptions(args.out, args.budget_minutes, args.corpus_minutes, args.label_minutes, args.eval_utterances, args.max_steps))
    print(json.dumps({k: v for k, v in d.metrics.items() if k in ("asr-pretrained", "asr-scratch", "asr-compare")}, indent=1))
    print(f"done: {d.out / 'report.html'}  (tensorboard --logdir {d.out})")
