"""``uniwav train-vocoder --data DATA --out RUN [--max-steps N] [--max-minutes M] [key=value ...]``."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--data", required=True, help="prepared data folder")
    p.add_argument("--out", required=True, help="run folder; an existing run is resumed")
    p.add_argument("--config", default=None, help="preset (vocoder_tiny) or YAML file; default vocoder_tiny for a new run")
    p.add_argument("--features-from", default=None,
                   help="a model run/export whose feature config the vocoder must use (default: the preset's, with the data's rate)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.dim=512 gan_start_step=1000")


def run(args):
    from uniwav.training.train_vocoder import train_vocoder

    overrides = list(args.overrides)
    if args.features_from:
        overrides = feature_overrides(args.features_from) + overrides
    run_dir = train_vocoder(args.data, args.out, args.config, overrides, args.max_steps, args.max_minutes, progress=not args.no_progress)
    print(f"run: {run_dir}  (use it with --vocoder {run_dir}; check it with: uniwav vocode IN.wav -o OUT.wav --vocoder {run_dir})")


def feature_overrides(model_path) -> list[str]:
    """model.features.* overrides that copy a trained model's mel config (normalisation excluded)."""
    import json

    from uniwav.config import FeatureConfig, from_dict
    from uniwav.models.pretrained import load_model_config

    features = from_dict(FeatureConfig, load_model_config(model_path)["features"])
    return [f"model.features.{k}={json.dumps(v)}" for k, v in features.mel_fields().items()]
