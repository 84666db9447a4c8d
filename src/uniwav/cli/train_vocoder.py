"""``uniwav train-vocoder --data DATA --out RUN [--features-from MODEL] [--max-steps N] [--max-minutes M] [key=value ...]``."""

from __future__ import annotations

from uniwav.cli.common import add_training_arguments, announce, training_kwargs


def add_arguments(p):
    p.add_argument("--features-from", default=None,
                   help="a model run/export whose feature config the vocoder must use (default: the preset's, with the data's rate)")
    add_training_arguments(p, "vocoder_tiny", "model.dim=512 gan_start_step=1000")


def run(args):
    from uniwav.training.train_vocoder import feature_overrides, train_vocoder

    kwargs = training_kwargs(args)
    if args.features_from:
        kwargs["overrides"] = feature_overrides(args.features_from) + kwargs["overrides"]
    run_dir = train_vocoder(args.data, args.out, **kwargs)
    announce(f"run: {run_dir}  (use it with --vocoder {run_dir}; check it with: uniwav vocode IN.wav -o OUT.wav --vocoder {run_dir})")
