"""``uniwav pretrain --data DATA --out RUN [--config tiny|base|large|FILE] [key=value ...]``."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--data", required=True, help="prepared data folder (uniwav prepare ...)")
    p.add_argument("--out", required=True, help="run folder; an existing run is resumed from its last checkpoint")
    p.add_argument("--config", default=None, help="preset (tiny, base, large) or a YAML file; default tiny for a new run")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many updates (the LR schedule is unchanged)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time, counted across resumes")
    p.add_argument("--devices", default=None, help="devices per node (trainer.devices)")
    p.add_argument("--num-nodes", type=int, default=None, help="nodes (trainer.num_nodes)")
    p.add_argument("--strategy", default=None, help="ddp, fsdp, ... (trainer.strategy)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to TensorBoard)")
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. optim.lr=3e-4 model.encoder.layers=8")


def run(args):
    from uniwav.training.run import pretrain

    overrides = list(args.overrides)
    for flag, key in ((args.devices, "trainer.devices"), (args.num_nodes, "trainer.num_nodes"), (args.strategy, "trainer.strategy")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    run_dir = pretrain(args.data, args.out, args.config, overrides, args.max_steps, args.max_minutes, progress=not args.no_progress)
    print(f"run: {run_dir}  (tensorboard --logdir {run_dir}/tb; export with: uniwav export {run_dir} --out DIR)")
