"""``uniwav finetune-tts --init RUN|none --data DATA --alignments ALIGN --out RUN [--max-steps N] [--max-minutes M]``."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--init", required=True, help="pre-trained UniWav run/export, or 'none' to train the same architecture from scratch")
    p.add_argument("--data", required=True)
    p.add_argument("--alignments", required=True, help="output folder of `uniwav align`")
    p.add_argument("--out", required=True, help="run folder; an existing run is resumed")
    p.add_argument("--config", default=None, help="preset (tts_tiny) or YAML file")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. cond_drop_prob=0.1 optim.lr=1e-4")


def run(args):
    from uniwav.training.finetune_tts import finetune_tts

    run_dir = finetune_tts(args.data, args.out, args.alignments, args.init, args.config, args.overrides, args.max_steps, args.max_minutes,
                           progress=not args.no_progress)
    print(f"run: {run_dir}  (try: uniwav tts --model {run_dir} --prompt P.wav --text 'hello' -o out.wav)")
