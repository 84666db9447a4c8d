"""Arguments every training subcommand shares (data, run folder, preset, stopping, hardware, overrides)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: a whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


SEED_MAX = 2**32 - 1  # what every generator we seed accepts (numpy's, Lightning's seed_everything)


def seed(text: str) -> int:
    """argparse type: a random seed, a whole number from 0 to 2**32 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {SEED_MAX}, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_training_arguments(p, preset: str, example: str) -> None:
    """--data, --out, --config, --max-steps, --max-minutes, --devices, --num-nodes, --strategy,
    --no-progress and the dotted overrides; ``preset`` names the default preset, ``example`` an override."""
    p.add_argument("--data", required=True, help="prepared data folder (uniwav prepare ...)")
    p.add_argument("--out", required=True, help="run folder; an existing run is resumed from its last checkpoint")
    p.add_argument("--config", default=None, help=f"preset or YAML file (default: {preset} for a new run, the run's own config when resuming)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many updates (the learning-rate schedule is unchanged)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time, counted across resumes")
    p.add_argument("--devices", default=None, help="devices per node (trainer.devices; default: auto)")
    p.add_argument("--num-nodes", type=int, default=None, help="nodes (trainer.num_nodes; default: 1)")
    p.add_argument("--strategy", default=None, help="ddp, fsdp, ... (trainer.strategy; default: auto)")
    p.add_argument("--resume-from", default=None,
                   help="continue from this checkpoint instead of RUN/checkpoints/last.ckpt (e.g. when last.ckpt cannot be read)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to TensorBoard)")
    p.add_argument("overrides", nargs="*", help=f"dotted config overrides, e.g. {example}")


def training_overrides(args, asr: str | None = None) -> list[str]:
    """The dotted overrides with --devices / --num-nodes / --strategy (and --asr) folded in."""
    overrides = list(args.overrides)
    for flag, key in ((args.devices, "trainer.devices"), (args.num_nodes, "trainer.num_nodes"), (args.strategy, "trainer.strategy"),
                      (asr, "trainer.monitor_asr")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    return overrides


def training_kwargs(args, asr: str | None = None) -> dict:
    """preset, overrides, max_steps, max_minutes and progress, as the training functions take them."""
    return {"preset": args.config, "overrides": training_overrides(args, asr), "max_steps": args.max_steps, "max_minutes": args.max_minutes,
            "progress": not args.no_progress, "resume_from": args.resume_from}


def announce(message: str) -> None:
    """Print once per training, not once per process of a multi-process launch."""
    from uniwav.training.run_folder import is_launched_worker

    if not is_launched_worker():
        print(message)
