"""``uniwav finetune-asr --init RUN_OR_EXPORT|none --data DATA --out RUN [--label-minutes M] [key=value ...]``."""

from __future__ import annotations

from uniwav.cli.common import add_training_arguments, announce, training_kwargs


def add_arguments(p):
    p.add_argument("--init", required=True, help="pre-trained run/export folder, or 'none' for random initialisation (the baseline)")
    p.add_argument("--label-minutes", type=float, default=None,
                   help="use a deterministic subset of this many minutes of labelled audio (default: all of it)")
    p.add_argument("--units", choices=["char", "phone"], default=None,
                   help="what the recogniser writes: characters (transcription) or phones (espeak-ng; an aligner for phone TTS) "
                        "(model.unit; default: char)")
    p.add_argument("--language", default=None, help="espeak-ng language of the phones, e.g. en-us, de, es (model.language; default: en-us)")
    add_training_arguments(p, "asr_tiny", "optim.lr=1e-3 freeze_encoder_steps=0")


def run(args):
    from uniwav.training.finetune_asr import finetune_asr

    kwargs = training_kwargs(args)
    kwargs["overrides"] += [f"model.{key}={value}" for key, value in (("unit", args.units), ("language", args.language)) if value]
    run_dir = finetune_asr(args.data, args.out, args.init, label_minutes=args.label_minutes, **kwargs)
    announce(f"run: {run_dir}  (evaluate with: uniwav evaluate asr --model {run_dir} --data {args.data} --split test)")
