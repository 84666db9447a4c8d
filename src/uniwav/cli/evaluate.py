"""``uniwav evaluate asr|infill|resynth|tts|compare ...``: scores of a model on a prepared split, and
whether one ASR result is really better than another (paired bootstrap)."""

from __future__ import annotations

import json

from uniwav.cli.transcribe import add_lm_arguments, lm_decoder


def add_arguments(p):
    sub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    a = sub.add_parser("asr", help="WER/CER of a CTC model on a prepared split")
    a.add_argument("--model", required=True)
    a.add_argument("--data", required=True)
    a.add_argument("--split", default="test")
    a.add_argument("--beam", type=int, default=1)
    a.add_argument("--json", default=None, help="write {wer, cer, n, per_utterance} here")
    add_lm_arguments(a)
    c = sub.add_parser("compare", help="paired bootstrap of two `evaluate asr --json` results on the same utterances")
    c.add_argument("baseline", help="JSON of the reference system (e.g. --init none)")
    c.add_argument("candidate", help="JSON of the system claimed to be better")
    c.add_argument("--resamples", type=int, default=2000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", default=None)
    f = sub.add_parser("infill", help="decoder infilling of masked frames vs. the mean-frame baseline (pre-trained model)")
    f.add_argument("--model", required=True)
    f.add_argument("--data", required=True)
    f.add_argument("--split", default="dev")
    f.add_argument("--nfe", type=int, default=16)
    f.add_argument("--method", default="midpoint", choices=["euler", "midpoint"],
                   help="ODE solver; --nfe 1 --method euler gives the decoder's conditional-mean estimate")
    f.add_argument("--json", default=None)
    r = sub.add_parser("resynth", help="speech tokens: resynthesis at each bitrate vs. the vocoded ground truth")
    r.add_argument("--model", required=True, help="tokenizer run or export")
    r.add_argument("--data", required=True)
    r.add_argument("--split", default="test")
    r.add_argument("--bitrate", type=float, nargs="+", default=None, help="bit/s (default: every bitrate the model offers)")
    r.add_argument("--nfe", type=int, default=16)
    r.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")
    r.add_argument("--asr", default=None, help="a CTC model of ours to transcribe the outputs (CER/WER)")
    r.add_argument("--whisper", default="auto", help="local faster-whisper (CTranslate2) model folder for independent CER/WER; "
                   "'auto' = the bundled tiny.en of the eval extra when installed, 'none' = off")
    r.add_argument("--dnsmos", action="store_true", help="score with DNSMOS (speechmos)")
    r.add_argument("--max-utterances", type=int, default=None)
    r.add_argument("--audio-out", default=None, help="write every output .wav into this folder")
    r.add_argument("--json", default=None)
    t = sub.add_parser("tts", help="text-to-speech, cross-sentence protocol, vs. the vocoded ground truth")
    t.add_argument("--model", required=True, help="TTS run or export")
    t.add_argument("--data", required=True)
    t.add_argument("--split", default="test")
    t.add_argument("--nfe", type=int, nargs="+", default=[8, 16, 32])
    t.add_argument("--cfg", type=float, default=1.0, help="guidance weight")
    t.add_argument("--vocoder", default=None)
    t.add_argument("--asr", default=None, help="a CTC model of ours to transcribe the outputs")
    t.add_argument("--whisper", default="auto", help="local faster-whisper model folder, 'auto' or 'none'")
    t.add_argument("--dnsmos", action="store_true")
    t.add_argument("--max-pairs", type=int, default=None)
    t.add_argument("--audio-out", default=None, help="write every output .wav into this folder")
    t.add_argument("--json", default=None)


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

    result = evaluate_infill(UniWav.from_pretrained(args.model), load_cuts(args.data, args.split), nfe=args.nfe, method=args.method)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: masked-frame L1 {result['infill_l1']:.4f} (decoder, NFE {args.nfe} {args.method}) vs {result['mean_frame_l1']:.4f} "
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
    result = evaluate_resynth(tok, load_cuts(args.data, args.split), bitrates, Synthesizer(tok.cfg.features, args.vocoder), args.nfe,
                              asr_model=asr, whisper_dir=resolve_whisper(args.whisper), dnsmos=args.dnsmos, max_utterances=args.max_utterances)
    audio = result.pop("_audio")
    if args.audio_out:
        sr = tok.cfg.features.sample_rate
        for name, wavs in audio.items():
            tag = name.split(" ")[0] if "bit/s" in name else "vocoded"
            for row, wav in zip(result["per_utterance"][0]["utterances"], wavs):
                write_audio(Path(args.audio_out) / f"{row['id']}_{tag}.wav", wav, sr)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: {result['n']} utterances, NFE {args.nfe}, {result['vocoder']}")
    print(format_table(result))


def run_tts(args):
    from pathlib import Path

    from uniwav.data.audio import write_audio
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.scorers import resolve_whisper
    from uniwav.evaluation.tts import evaluate_tts, format_table
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel
    from uniwav.utils import atomic_write_text

    model = TTSModel.from_pretrained(args.model)
    asr = CTCModel.from_pretrained(args.asr) if args.asr else None
    result = evaluate_tts(model, load_cuts(args.data, args.split), Synthesizer(model.cfg.features, args.vocoder), args.nfe, args.cfg,
                          asr_model=asr, whisper_dir=resolve_whisper(args.whisper), dnsmos=args.dnsmos, max_pairs=args.max_pairs)
    audio = result.pop("_audio")
    if args.audio_out:
        for name, wavs in audio.items():
            tag = name.replace(" ", "_").replace("(", "").replace(")", "").replace("=", "")
            for pair, wav in zip(result["pairs"], wavs):
                write_audio(Path(args.audio_out) / f"{pair['target']}_{tag}.wav", wav, model.cfg.features.sample_rate)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"{args.split}: {result['n']} cross-sentence pairs, guidance {args.cfg}, {result['vocoder']}")
    print(format_table(result))
