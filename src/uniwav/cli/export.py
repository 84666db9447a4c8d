"""``uniwav export RUN --out DIR``: weights (safetensors) + config, no optimizer, no training code."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("run", help="a pre-training run folder or checkpoint file")
    p.add_argument("--out", required=True, help="export folder (config.json + model.safetensors)")


def run(args):
    from uniwav.models.uniwav import UniWav

    out = UniWav.from_pretrained(args.run).save_pretrained(args.out)
    print(f"exported to {out} (load with uniwav.UniWav.from_pretrained('{out}'))")
