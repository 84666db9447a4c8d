"""``uniwav pretrain --data DATA --out RUN [--config tiny|base|large|FILE] [key=value ...]``."""

from __future__ import annotations

from uniwav.cli.common import add_training_arguments, announce, training_kwargs


def add_arguments(p):
    add_training_arguments(p, "tiny", "optim.lr=3e-4 model.encoder.layers=8")


def run(args):
    from uniwav.training.pretrain import pretrain

    run_dir = pretrain(args.data, args.out, **training_kwargs(args))
    announce(f"run: {run_dir}  (tensorboard --logdir {run_dir}/tb; export with: uniwav export {run_dir} --out DIR)")
