"""``uniwav demo --out DIR``: the whole story on the built-in demo corpus, stage by stage.

corpus -> pre-training (tiny) -> export -> CTC fine-tuning with a 10-minute label budget, from the
pre-trained encoder and from random initialisation, same time -> forced alignment (the better of
the two recognisers) -> layer analysis -> vocoder -> speech tokenizer -> text-to-speech from the
pre-trained model and from scratch, same time -> evaluation of everything -> ``DIR/report.html``
and ``DIR/metrics.json``.

A stage is skipped when it finished before (``DIR/stages.json``), so re-running after an
interruption continues; an interrupted training stage resumes from its last checkpoint.

Budget (``--budget-minutes``, default 60) is training time, split by ``BUDGET``; corpus synthesis,
alignment and evaluation add about ten minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

# Share of the training budget per stage.
BUDGET = {"pretrain": 0.40, "asr-pretrained": 0.12, "asr-scratch": 0.12, "vocoder": 0.10, "tokenizer": 0.08,
          "tts-pretrained": 0.09, "tts-scratch": 0.09}

# The pre-trained encoder's residual stream is ~10x larger than a fresh one's (pre-LN), so it moves
# slowly at the head's learning rate: x3 for the encoder was the best of the settings measured.
PRETRAINED_ASR_OVERRIDES = ["encoder_lr_scale=3.0"]

NFES = (8, 16, 32)


def add_arguments(p):
    p.add_argument("--out", required=True, help="demo folder (data/, runs, report.html, metrics.json)")
    p.add_argument("--budget-minutes", type=float, default=60.0, help="training time for all stages together")
    p.add_argument("--corpus-minutes", type=float, default=45.0, help="minutes of synthetic speech")
    p.add_argument("--label-minutes", type=float, default=10.0, help="labelled audio for ASR fine-tuning")
    p.add_argument("--eval-utterances", type=int, default=30, help="test utterances for the token and TTS evaluations")
    p.add_argument("--max-steps", type=int, default=None, help="cap every training stage at this many updates (smoke runs)")


def run(args):
    from uniwav.config import FeatureConfig
    from uniwav.data.prepare_demo import prepare_demo
    from uniwav.data.stats import ensure_stats
    from uniwav.utils import atomic_write_text

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    stages_file, metrics_file = out / "stages.json", out / "metrics.json"
    done = json.loads(stages_file.read_text()) if stages_file.is_file() else {}
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    minutes = {k: v * args.budget_minutes for k, v in BUDGET.items()}
    steps = args.max_steps

    def stage(name: str, title: str, fn):
        if name in done:
            print(f"[{name}] done earlier ({done[name]['seconds']} s): {title}", flush=True)
            return
        print(f"[{name}] {title}", flush=True)
        t = time.time()
        fn()
        done[name] = {"seconds": round(time.time() - t, 1)}
        atomic_write_text(stages_file, json.dumps(done, indent=1))
        atomic_write_text(metrics_file, json.dumps(metrics, indent=1))

    def corpus():
        report = prepare_demo(data, minutes=args.corpus_minutes)
        print(report.summary())
        ensure_stats(data, FeatureConfig())
        metrics["corpus"] = report.splits

    ctx = {"out": out, "data": data, "steps": steps, "minutes": minutes, "metrics": metrics, "args": args}
    stage("corpus", f"synthesising {args.corpus_minutes:g} minutes of demo speech -> {data}", corpus)
    stage("pretrain", f"pre-training the tiny model for {minutes['pretrain']:g} minutes -> {out / 'pretrain'}", lambda: _pretrain(ctx))
    stage("asr-pretrained", f"CTC fine-tuning from the pre-trained encoder, {args.label_minutes:g} min of labels, "
          f"{minutes['asr-pretrained']:g} minutes", lambda: _asr(ctx, "asr-pretrained", str(out / "pretrain"), PRETRAINED_ASR_OVERRIDES))
    stage("asr-scratch", "CTC fine-tuning from random initialisation, same labels and time",
          lambda: (_asr(ctx, "asr-scratch", "none", []), _asr_compare(ctx)))
    stage("align", "forced alignment of every split with the better recogniser", lambda: _align(ctx))
    stage("analyze", "what each encoder layer knows (character probe, mutual information)", lambda: _analyze(ctx))
    stage("vocoder", f"training the Vocos vocoder for {minutes['vocoder']:g} minutes", lambda: _vocoder(ctx))
    stage("tokenizer", f"speech tokenizer (500 / 1000 bit/s) for {minutes['tokenizer']:g} minutes", lambda: _tokenizer(ctx))
    stage("tts-pretrained", f"text-to-speech from the pre-trained model, {minutes['tts-pretrained']:g} minutes",
          lambda: _tts(ctx, "tts-pretrained", str(out / "pretrain")))
    stage("tts-scratch", "text-to-speech from scratch, same time", lambda: _tts(ctx, "tts-scratch", "none"))
    stage("evaluate-tokens", "resynthesis at 500 and 1000 bit/s vs. vocoded ground truth", lambda: _evaluate_tokens(ctx))
    stage("evaluate-tts", f"text-to-speech, cross-sentence, NFE {', '.join(map(str, NFES))}", lambda: _evaluate_tts(ctx))
    stage("report", f"writing {out / 'report.html'}", lambda: _report(ctx, done))
    print(json.dumps({k: v for k, v in metrics.items() if k != "corpus"}, indent=1))
    print(f"done: {out / 'report.html'}  (tensorboard --logdir {out})")


# ---------------------------------------------------------------------- stages


def _pretrain(ctx):
    from uniwav.models.uniwav import UniWav
    from uniwav.training.run import pretrain

    out = ctx["out"]
    pretrain(ctx["data"], out / "pretrain", "tiny", [], max_steps=ctx["steps"], max_minutes=ctx["minutes"]["pretrain"])
    UniWav.from_pretrained(out / "pretrain").save_pretrained(out / "export")


def _asr(ctx, name, init, overrides):
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.asr import evaluate_asr
    from uniwav.models.ctc import CTCModel
    from uniwav.training.finetune_asr import finetune_asr
    from uniwav.utils import atomic_write_text

    out, data = ctx["out"], ctx["data"]
    finetune_asr(data, out / name, init, None, overrides, label_minutes=ctx["args"].label_minutes, max_steps=ctx["steps"],
                 max_minutes=ctx["minutes"][name])
    result = evaluate_asr(CTCModel.from_pretrained(out / name), load_cuts(data, "test"))
    atomic_write_text(out / f"{name}.test.json", json.dumps(result, indent=1))
    ctx["metrics"][name] = {"test_cer": result["cer"], "test_wer": result["wer"], "n": result["n"]}
    print(f"{name}: test CER {result['cer']:.3f}  WER {result['wer']:.3f}")


def _asr_compare(ctx):
    """Paired bootstrap of the pre-trained recogniser against the one from scratch (test utterances)."""
    from uniwav.evaluation.asr import load_results, paired_bootstrap

    out = ctx["out"]
    result = paired_bootstrap(load_results(out / "asr-scratch.test.json"), load_results(out / "asr-pretrained.test.json"))
    ctx["metrics"]["asr-compare"] = {unit: result[unit] for unit in ("cer", "wer")}
    cer = result["cer"]
    print(f"pre-trained vs scratch: CER {cer['baseline']:.3f} -> {cer['candidate']:.3f}, {-100 * cer['relative_reduction']:+.1f}% "
          f"(95% interval {-100 * cer['ci95'][1]:+.1f}% .. {-100 * cer['ci95'][0]:+.1f}%, p(not lower) {cer['p_not_better']:.4f})")


def _best_asr(ctx) -> str:
    m = ctx["metrics"]
    return min(("asr-pretrained", "asr-scratch"), key=lambda n: m[n]["test_cer"])


def _align(ctx):
    from uniwav.inference.align import align_corpus
    from uniwav.models.ctc import CTCModel

    best = _best_asr(ctx)
    align_corpus(CTCModel.from_pretrained(ctx["out"] / best), ctx["data"], ctx["out"] / "align")
    ctx["metrics"]["align"] = {"model": best}


def _analyze(ctx):
    from uniwav.evaluation.probing import analyze_layers, plot_layers
    from uniwav.models.uniwav import UniWav
    from uniwav.utils import atomic_write_text

    out = ctx["out"] / "analysis"
    out.mkdir(exist_ok=True)
    res = {}
    for name, model in (("pretrained", UniWav.from_pretrained(ctx["out"] / "export")), ("random", None)):
        if model is None:
            import torch

            torch.manual_seed(0)
            model = UniWav(UniWav.from_pretrained(ctx["out"] / "export").cfg)
        res[name] = analyze_layers(model, ctx["data"], ctx["out"] / "align", max_train_utterances=200)
        plot_layers(res[name], out / f"layers_{name}.png")
    atomic_write_text(out / "layers.json", json.dumps(res, indent=1))
    ctx["metrics"]["layers"] = {n: [{k: round(v, 4) for k, v in row.items()} for row in r["layers"]] for n, r in res.items()}


def _vocoder(ctx):
    from uniwav.cli.train_vocoder import feature_overrides
    from uniwav.training.train_vocoder import train_vocoder

    train_vocoder(ctx["data"], ctx["out"] / "vocoder", "vocoder_tiny", feature_overrides(ctx["out"] / "export"),
                  max_steps=ctx["steps"], max_minutes=ctx["minutes"]["vocoder"])


def _tokenizer(ctx):
    from uniwav.training.finetune_tokenizer import finetune_tokenizer

    finetune_tokenizer(ctx["data"], ctx["out"] / "tokenizer", str(ctx["out"] / "export"), "tokenizer_tiny", [],
                       max_steps=ctx["steps"], max_minutes=ctx["minutes"]["tokenizer"])


def _tts(ctx, name, init):
    from uniwav.training.finetune_tts import finetune_tts

    finetune_tts(ctx["data"], ctx["out"] / name, ctx["out"] / "align", init, "tts_tiny", [], max_steps=ctx["steps"],
                 max_minutes=ctx["minutes"][name])


def _save_samples(ctx, name, audio: dict, keys: list, count: int = 2, sample_rate: int = 16000):
    """Keep a few outputs for the report: out/samples/{name}/{system}_{i}.wav."""
    from uniwav.data.audio import write_audio

    folder = ctx["out"] / "samples" / name
    for system in keys:
        for i, wav in enumerate(audio[system][:count]):
            tag = system.replace(" ", "_").replace("/", "").replace("(", "").replace(")", "").replace("=", "")
            write_audio(folder / f"{tag}_{i}.wav", wav, sample_rate)


def _evaluate_tokens(ctx):
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.resynth import GROUND_TRUTH, evaluate_resynth
    from uniwav.evaluation.scorers import resolve_whisper
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tokenizer import SpeechTokenizer
    from uniwav.utils import atomic_write_text

    out = ctx["out"]
    tok = SpeechTokenizer.from_pretrained(out / "tokenizer")
    cuts = load_cuts(ctx["data"], "test")
    synth = Synthesizer(tok.cfg.features, str(out / "vocoder"))
    result = evaluate_resynth(tok, cuts, [500, 1000], synth, nfe=16, asr_model=CTCModel.from_pretrained(out / _best_asr(ctx)),
                              whisper_dir=resolve_whisper("auto"), max_utterances=ctx["args"].eval_utterances)
    audio = result.pop("_audio")
    _save_samples(ctx, "tokens", audio, list(audio), sample_rate=tok.cfg.features.sample_rate)
    atomic_write_text(out / "tokens.test.json", json.dumps(result, indent=1))
    ctx["metrics"]["tokens"] = result["rows"]
    # the vocoder itself against Griffin-Lim, on the same utterances (the ground-truth row of each)
    gl = evaluate_resynth(tok, cuts, [], Synthesizer(tok.cfg.features, None), speaker=False, max_utterances=ctx["args"].eval_utterances)
    keep = ("mel_l1", "pesq", "stoi")
    ctx["metrics"]["vocoder"] = {name: {k: rows[GROUND_TRUTH][k] for k in keep}
                                 for name, rows in (("vocos (ours)", result["rows"]), ("griffin-lim", gl["rows"]))}


def _evaluate_tts(ctx):
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.scorers import resolve_whisper
    from uniwav.evaluation.tts import evaluate_tts
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel
    from uniwav.utils import atomic_write_text

    out = ctx["out"]
    asr = CTCModel.from_pretrained(out / _best_asr(ctx))
    ctx["metrics"]["tts"] = {}
    for name in ("tts-pretrained", "tts-scratch"):
        model = TTSModel.from_pretrained(out / name)
        result = evaluate_tts(model, load_cuts(ctx["data"], "test"), Synthesizer(model.cfg.features, str(out / "vocoder")), NFES,
                              asr_model=asr, whisper_dir=resolve_whisper("auto"), max_pairs=ctx["args"].eval_utterances)
        audio = result.pop("_audio")
        _save_samples(ctx, name, audio, list(audio), sample_rate=model.cfg.features.sample_rate)
        atomic_write_text(out / f"{name}.test.json", json.dumps(result, indent=1))
        ctx["metrics"]["tts"][name] = result["rows"]
        ctx["metrics"]["tts"]["pairs"] = result["pairs"][:2]


def _report(ctx, done):
    from uniwav.cli.demo_report import build_report

    build_report(ctx, done)
