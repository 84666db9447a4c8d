"""``uniwav evaluate asr|infill|resynth|tts|compare ...``: scores of a model on a prepared split, and
whether one ASR result is really better than another (paired bootstrap)."""

from __future__ import annotations

import json

from uniwav.cli.common import positive_int, seed
from uniwav.cli.transcribe import add_lm_arguments, lm_decoder


def add_arguments(p):
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    a = sub.add_parser("asr", help="WER/CER of a CTC model on a prepared split")
    a.add_argument("--model", required=True, help="fine-tuned ASR run or export")
    a.add_argument("--data", required=True, help="prepared data folder with transcripts")
    a.add_argument("--split", default="test", help="split to score")
    a.add_argument("--beam", type=positive_int, default=1, help="1 = greedy, >1 = CTC prefix beam search")
    a.add_argument("--json", default=None, help="write {wer, cer, n, per_utterance} here")
    add_lm_arguments(a)
    c = sub.add_parser("compare", help="paired bootstrap of two `evaluate asr --json` results on the same utterances")
    c.add_argument("baseline", help="JSON of the reference system (e.g. --init none)")
    c.add_argument("candidate", help="JSON of the system claimed to be better")
    c.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples")
    c.add_argument("--seed", type=seed, default=0, help="seed of the resampling")
    c.add_argument("--json", default=None, help="write the result here")
    f = sub.add_parser("infill", help="decoder infilling of masked frames vs. the mean-frame baseline (pre-trained model)")
    f.add_argument("--model", required=True, help="pre-trained UniWav run or export")
    f.add_argument("--data", required=True, help="prepared data folder")
    f.add_argument("--split", default="dev", help="split to score")
    f.add_argument("--nfe", type=positive_int, default=16, help="network evaluations of the ODE solver")
    f.add_argument("--method", default="midpoint", choices=["euler", "midpoint"],
                   help="ODE solver; --nfe 1 --method euler gives the decoder's conditional-mean estimate")
    f.add_argument("--cfg", type=float, default=0.0, help="classifier-free guidance weight (a model pre-trained with model.cond_drop_prob > 0)")
    f.add_argument("--json", default=None, help="write the result here")
    r = sub.add_parser("resynth", help="speech tokens: resynthesis at each bitrate vs. the vocoded ground truth")
    r.add_argument("--model", required=True, help="tokenizer run or export")
    r.add_argument("--data", required=True, help="prepared data folder")
    r.add_argument("--split", default="test", help="split to score")
    r.add_argument("--bitrate", type=float, nargs="+", default=None, help="bit/s (default: every bitrate the model offers)")
    r.add_argument("--unquantized", action="store_true", help="also decode the unquantised representation (the decoder's ceiling)")
    r.add_argument("--nfe", type=positive_int, default=None, help="network evaluations of the ODE solver (default: the model's sampler)")
    r.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")
    r.add_argument("--asr", default=None, help="a CTC model of ours to transcribe the outputs (CER/WER)")
    r.add_argument("--whisper", default="auto", help="local faster-whisper (CTranslate2) model folder for independent CER/WER; "
                   "'auto' = the bundled tiny.en of the eval extra when installed, 'none' = off")
    r.add_argument("--dnsmos", action="store_true", help="score with DNSMOS (speechmos)")
    r.add_argument("--max-utterances", type=positive_int, default=None, help="score only the first N utterances (default: all)")
    r.add_argument("--audio-out", default=None, help="write every output .wav into this folder")
    r.add_argument("--json", default=None, help="write the result here")
    t = sub.add_parser("tts", help="text-to-speech, cross-sentence protocol, vs. the vocoded ground truth")
    t.add_argument("--model", required=True, help="TTS run or export")
    t.add_argument("--data", required=True, help="prepared data folder with transcripts")
    t.add_argument("--split", default="test", help="split to score (prompts and targets are its speakers' utterances)")
    t.add_argument("--nfe", type=int, nargs="+", default=None, help="network evaluations (one system each; default: the model's)")
    t.add_argument("--cfg", type=float, nargs="+", default=None, help="classifier-free guidance weights (default: the model's)")
    t.add_argument("--sway", type=float, nargs="+", default=None, help="sway sampling coefficients, F5-TTS uses -1 (default: the model's)")
    t.add_argument("--method", nargs="+", choices=["euler", "midpoint"], default=None, help="ODE solvers (default: the model's)")
    t.add_argument("--durations", nargs="+", choices=["predicted", "ground-truth"], default=["predicted"],
                   help="predicted durations, and/or the target's own from --alignments (default: %(default)s)")
    t.add_argument("--alignments", default=None, help="`uniwav align` folder of the data (for --durations ground-truth)")
    t.add_argument("--compare", default=None,
                   help="an earlier `evaluate tts --json` result (e.g. the from-scratch model): paired bootstrap of the first system vs it")
    t.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")
    t.add_argument("--asr", default=None, help="a CTC model of ours to transcribe the outputs")
    t.add_argument("--whisper", default="auto", help="local faster-whisper model folder, 'auto' or 'none'")
    t.add_argument("--dnsmos", action="store_true", help="score with DNSMOS (speechmos)")
    t.add_argument("--max-pairs", type=positive_int, default=None, help="score only N prompt/target pairs, every speaker first (default: all)")
    t.add_argument("--audio-out", default=None, help="write every output .wav into this folder")
    t.add_argument("--json", default=None, help="write the result (with per-utterance rows) here")


def run(args):
    if args.what == "compare":
        return run_compare(args)
    if args.what == "infill":
        return run_infill(args)
    if args.what == "resynth":
        return run_resynth(args)
    if args.what == "tts":
        return run_tts(args)
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.asr import evaluate_asr
    from uniwav.models.ctc import CTCModel
    from uniwav.utils import atomic_write_text

    model = CTCModel.from_pretrained(args.model)
    result = evaluate_asr(model, load_cuts(args.data, args.split), beam=args.beam, lm=lm_decoder(args, model))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: WER {result['wer']:.4f}  CER {result['cer']:.4f}  ({result['n']} utterances)")


def run_compare(args):
    from uniwav.data.manifests import DataError
    from uniwav.evaluation.asr import load_results, paired_bootstrap
    from uniwav.utils import atomic_write_text

    try:
        result = paired_bootstrap(load_results(args.baseline), load_results(args.candidate), args.resamples, args.seed)
    except ValueError as e:
        raise DataError(f"{args.baseline} vs {args.candidate}: {e}") from None
    result.update(baseline_file=args.baseline, candidate_file=args.candidate)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{result['n']} utterances, {result['resamples']} paired bootstrap resamples; candidate vs baseline:")
    for unit in ("cer", "wer"):
        r = result[unit]
        lo, hi = r["ci95"]
        print(f"  {unit.upper()} {r['baseline']:.4f} -> {r['candidate']:.4f}: {-100 * r['relative_reduction']:+.1f}% "
              f"(95% interval {-100 * hi:+.1f}% .. {-100 * lo:+.1f}%), p(not lower) = {r['p_not_better']:.4f}")


def run_infill(args):
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.infill import evaluate_infill
    from uniwav.models.uniwav import UniWav
    from uniwav.utils import atomic_write_text

    result = evaluate_infill(UniWav.from_pretrained(args.model), load_cuts(args.data, args.split), nfe=args.nfe, method=args.method,
                             guidance=args.cfg)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: masked-frame L1 {result['infill_l1']:.4f} (decoder, NFE {args.nfe} {args.method}, cfg {args.cfg:g}) "
          f"vs {result['mean_frame_l1']:.4f} "
          f"(mean-frame baseline); {result['masked_frames']} masked frames in {result['n']} utterances")


def run_resynth(args):
    from pathlib import Path

    from uniwav.data.audio import write_audio
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.resynth import evaluate_resynth, format_table
    from uniwav.evaluation.scorers import resolve_whisper
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tokenizer import SpeechTokenizer
    from uniwav.utils import atomic_write_text

    tok = SpeechTokenizer.from_pretrained(args.model)
    bitrates = args.bitrate or [tok.bitrate(n) for n in range(1, tok.quantizer.num_quantizers + 1)]
    asr = CTCModel.from_pretrained(args.asr) if args.asr else None
    sampling = {"nfe": args.nfe} if args.nfe else {}
    result = evaluate_resynth(tok, load_cuts(args.data, args.split), bitrates, Synthesizer(tok.cfg.features, args.vocoder),
                              asr_model=asr, whisper_dir=resolve_whisper(args.whisper), dnsmos=args.dnsmos, max_utterances=args.max_utterances,
                              unquantized=args.unquantized, **sampling)
    audio = result.pop("_audio")
    if args.audio_out:
        sr = tok.cfg.features.sample_rate
        for name, wavs in audio.items():
            tag = name.split(" ")[0] if "bit/s" in name else "unquantized" if name.startswith("unquantized") else "vocoded"
            for row, wav in zip(result["per_utterance"][0]["utterances"], wavs):
                write_audio(Path(args.audio_out) / f"{row['id']}_{tag}.wav", wav, sr)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: {result['n']} utterances, NFE {args.nfe or tok.cfg.sampler.nfe}, {result['vocoder']}")
    print(format_table(result))


def tts_systems(args) -> list[dict]:
    """Every combination of the sampler settings asked for (a setting not given is the model's)."""
    import itertools

    axes = {"nfe": args.nfe, "guidance": args.cfg, "sway": args.sway, "method": args.method}
    given = {k: v for k, v in axes.items() if v}
    systems = [dict(zip(given, values)) for values in itertools.product(*given.values())] or [{}]
    return [{**s, **({"durations": "ground-truth"} if d == "ground-truth" else {})} for d in args.durations for s in systems]


def run_tts(args):
    from pathlib import Path

    from uniwav.data.alignments import read_alignments
    from uniwav.data.audio import write_audio
    from uniwav.data.manifests import DataError, load_cuts
    from uniwav.evaluation.asr import paired_bootstrap
    from uniwav.evaluation.scorers import resolve_whisper
    from uniwav.evaluation.tts import evaluate_tts, format_table, load_tts_results
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel
    from uniwav.utils import atomic_write_text

    model = TTSModel.from_pretrained(args.model)
    asr = CTCModel.from_pretrained(args.asr) if args.asr else None
    alignments = None
    if "ground-truth" in args.durations:
        if not args.alignments:
            raise DataError("--durations ground-truth needs --alignments (the `uniwav align` folder of --data)")
        alignments = read_alignments(args.alignments, args.split)
    result = evaluate_tts(model, load_cuts(args.data, args.split), Synthesizer(model.cfg.features, args.vocoder), tts_systems(args),
                          asr_model=asr, whisper_dir=resolve_whisper(args.whisper), dnsmos=args.dnsmos, max_pairs=args.max_pairs,
                          alignments=alignments)
    audio = result.pop("_audio")
    if args.audio_out:
        for name, wavs in audio.items():
            tag = name.replace(" ", "_").replace("(", "").replace(")", "").replace("=", "")
            for pair, wav in zip(result["pairs"], wavs):
                write_audio(Path(args.audio_out) / f"{pair['target']}_{tag}.wav", wav, model.cfg.features.sample_rate)
    if args.compare:
        first = next(iter(result["systems"]))
        try:
            baseline_name, baseline = load_tts_results(args.compare)
            result["compare"] = {"baseline_file": args.compare, "baseline_system": baseline_name, "system": first,
                                 **paired_bootstrap(baseline, result["per_utterance"][first])}
        except ValueError as e:
            raise DataError(f"{args.compare} vs {args.model}: {e}") from None
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: {result['n']} {result['protocol']} pairs, {result['vocoder']}")
    print(format_table(result))
    if args.compare:
        c = result["compare"]["cer"]
        print(f"{first} vs {args.compare} ({result['compare']['baseline_system']}): CER {c['baseline']:.3f} -> {c['candidate']:.3f}, "
              f"{-100 * c['relative_reduction']:+.1f}% (95% interval {-100 * c['ci95'][1]:+.1f}% .. {-100 * c['ci95'][0]:+.1f}%), "
              f"p(not lower) = {c['p_not_better']:.4f}")
