"""``uniwav export RUN --out DIR``: weights (safetensors) + config, no optimizer, no training code."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("run", help="a pre-training run folder or checkpoint file")
    p.add_argument("--out", required=True, help="export folder (config.json + model.safetensors)")


def run(args):
    from uniwav.checkpoint import CheckpointError
    from uniwav.models.ctc import CTCModel
    from uniwav.models.uniwav import UniWav

    try:
        model = UniWav.from_pretrained(args.run)
    except CheckpointError as first:
        try:
            model = CTCModel.from_pretrained(args.run)
        except CheckpointError:
            raise first from None
    out = model.save_pretrained(args.out)
    print(f"exported to {out} (load with {type(model).__name__}.from_pretrained('{out}'))")
