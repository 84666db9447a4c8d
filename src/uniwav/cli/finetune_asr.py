"""``uniwav finetune-asr --init RUN_OR_EXPORT|none --data DATA --out RUN [--label-minutes M] [key=value ...]``."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--init", required=True, help="pre-trained run/export folder, or 'none' for random initialisation (the baseline)")
    p.add_argument("--data", required=True, help="prepared data folder with transcripts")
    p.add_argument("--out", required=True, help="run folder; an existing run is resumed")
    p.add_argument("--config", default=None, help="preset (asr_tiny) or YAML file; default asr_tiny for a new run")
    p.add_argument("--label-minutes", type=float, default=None, help="use a deterministic subset of this many minutes of labelled audio")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time (counted across resumes)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-3 freeze_encoder_steps=0")


def run(args):
    from uniwav.training.finetune_asr import finetune_asr

    run_dir = finetune_asr(args.data, args.out, args.init, args.config, args.overrides, args.label_minutes, args.max_steps,
                           args.max_minutes, progress=not args.no_progress)
    print(f"run: {run_dir}  (evaluate with: uniwav evaluate asr --model {run_dir} --data {args.data} --split test)")
