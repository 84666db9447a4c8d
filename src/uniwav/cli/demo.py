"""``uniwav demo --out DIR``: the demo recipe (``uniwav.recipes.demo``) on the built-in corpus."""

from __future__ import annotations

import json

from uniwav.cli.common import positive_float, positive_int


def add_arguments(p):
    p.add_argument("--out", required=True, help="demo folder (data/, runs, report.html, metrics.json)")
    p.add_argument("--budget-minutes", type=positive_float, default=None,
                   help="cap the training time of all stages together, for a quick look (default: every stage runs its updates)")
    p.add_argument("--corpus-minutes", type=positive_float, default=45.0, help="minutes of synthetic speech")
    p.add_argument("--label-minutes", type=positive_float, default=10.0, help="labelled audio for ASR fine-tuning")
    p.add_argument("--eval-utterances", type=positive_int, default=30, help="test utterances for the token and TTS evaluations")
    p.add_argument("--max-steps", type=positive_int, default=None, help="cap every training stage at this many updates (smoke runs)")
    p.add_argument("--language", default="en", help="language of the corpus: en, or de / es / it (espeak-ng voices, sentences from "
                   "that language's Debian fortunes package; judged by our own recogniser, Whisper tiny.en being English-only)")


def run(args):
    from uniwav.recipes.demo import DemoOptions, run_demo

    d = run_demo(DemoOptions(args.out, args.budget_minutes, args.corpus_minutes, args.label_minutes, args.eval_utterances, args.max_steps,
                             language=args.language))
    print(json.dumps({k: v for k, v in d.metrics.items() if k in ("asr-pretrained", "asr-scratch", "asr-compare", "goals")}, indent=1))
    print(f"done: {d.out / 'report.html'}  (tensorboard --logdir {d.out})")
    print(f"try the models in your browser: uniwav serve --asr {d.out / d.best_asr()} --tts {d.out / 'tts-pretrained'} "
          f"--tokenizer {d.out / 'tokenizer'}")
