"""``uniwav finetune-tokenizer --init RUN --data DATA --out RUN [--max-steps N] [--max-minutes M] [key=value ...]``."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--init", required=True, help="pre-trained UniWav run or export folder")
    p.add_argument("--data", required=True, help="prepared data folder (transcripts not needed)")
    p.add_argument("--out", required=True, help="run folder; an existing run is resumed")
    p.add_argument("--config", default=None, help="preset (tokenizer_tiny) or YAML file; default tokenizer_tiny for a new run")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time (counted across resumes)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.quantizer.codebook_size=512 freeze_encoder=false")


def run(args):
    from uniwav.training.finetune_tokenizer import finetune_tokenizer

    run_dir = finetune_tokenizer(args.data, args.out, args.init, args.config, args.overrides, args.max_steps, args.max_minutes,
                                 progress=not args.no_progress)
    print(f"run: {run_dir}  (try: uniwav resynthesize --model {run_dir} IN.wav -o OUT.wav --bitrate 500)")
