"""``uniwav demo --out DIR``: the pipeline on the built-in demo corpus, stage by stage.

Each stage is skipped when its output exists, so re-running after an interruption continues.
Stages so far: demo corpus -> pre-training (tiny) -> export.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def add_arguments(p):
    p.add_argument("--out", required=True, help="demo folder (data/, pretrain/, export/, metrics.json)")
    p.add_argument("--budget-minutes", type=float, default=30.0, help="pre-training time budget")
    p.add_argument("--corpus-minutes", type=float, default=45.0, help="minutes of synthetic speech")
    p.add_argument("--config", default="tiny", help="pre-training preset or YAML file")
    p.add_argument("overrides", nargs="*", help="dotted overrides for pre-training")


def run(args):
    from uniwav.config import FeatureConfig
    from uniwav.data.manifests import cuts_path
    from uniwav.data.prepare_demo import prepare_demo
    from uniwav.data.stats import ensure_stats
    from uniwav.models.uniwav import UniWav
    from uniwav.training.run import pretrain

    out = Path(args.out)
    data, run_dir, export = out / "data", out / "pretrain", out / "export"
    times = {}
    t = time.time()
    if not cuts_path(data, "train").is_file():
        print(f"[1/3] synthesising {args.corpus_minutes:g} minutes of demo speech -> {data}", flush=True)
        report = prepare_demo(data, minutes=args.corpus_minutes)
        print(report.summary())
        ensure_stats(data, FeatureConfig())
    else:
        print(f"[1/3] demo corpus exists: {data}")
    times["prepare_seconds"] = round(time.time() - t, 1)

    t = time.time()
    print(f"[2/3] pre-training ({args.config}) for up to {args.budget_minutes:g} minutes -> {run_dir}", flush=True)
    pretrain(data, run_dir, args.config if not (run_dir / "config.yaml").is_file() else None, args.overrides, max_minutes=args.budget_minutes)
    times["pretrain_seconds"] = round(time.time() - t, 1)

    print(f"[3/3] exporting -> {export}", flush=True)
    UniWav.from_pretrained(run_dir).save_pretrained(export)
    (out / "metrics.json").write_text(json.dumps({"times": times}, indent=1))
    print(f"done: {out} (tensorboard --logdir {run_dir}/tb)")
