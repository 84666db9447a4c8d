"""``uniwav vocode IN.wav -o OUT.wav [--vocoder V]``: analysis-synthesis through the feature front end."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True, help="output .wav or .flac")
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")
    p.add_argument("--model", default=None, help="use this model's feature config (default: the vocoder's)")


def run(args):
    from uniwav.config import FeatureConfig, from_dict
    from uniwav.data.audio import check_output_audio, read_audio, write_audio
    from uniwav.features.mel import LogMel
    from uniwav.inference.vocoders import Synthesizer, load_vocoder_model
    from uniwav.models.pretrained import load_model_config

    check_output_audio(args.output)
    if args.model:
        features = from_dict(FeatureConfig, load_model_config(args.model)["features"])
    elif args.vocoder:
        features = load_vocoder_model(args.vocoder).cfg.features
    else:
        features = FeatureConfig()
    synth = Synthesizer(features, args.vocoder)
    wav, _ = read_audio(args.input, features.sample_rate)
    import torch

    mel, _ = LogMel(features).raw(torch.as_tensor(wav)[None])
    write_audio(args.output, synth(mel[0]).numpy(), features.sample_rate)
    print(f"{args.output}: {args.input} through the mel front end and {synth.name}")
