"""The demo recipe: the whole story on the built-in demo corpus, stage by stage.

corpus -> pre-training (tiny) -> export -> CTC fine-tuning with a 10-minute label budget, from the
pre-trained encoder and from random initialisation -> paired bootstrap -> forced alignment (the
better recogniser) -> layer analysis -> speech tokenizer -> text-to-speech from the pre-trained
model and from scratch -> evaluation of tokens and speech -> ``DIR/report.html`` and
``DIR/metrics.json``.

``STAGES`` is the recipe. A training stage is defined by its number of updates, so a slower
machine takes longer instead of producing a worse model (the plan printed at the start gives an
ETA from a step time measured there); ``--budget-minutes`` caps the training time of all stages
together, shared by ``share``, for a quick look. A stage that finished before is skipped, so
re-running after an interruption continues; an interrupted training stage resumes from its last
checkpoint. Each stage returns its metrics, including the files it wrote (``samples``: paths
relative to ``DIR``), which is all the report reads.

Audio is made with Griffin-Lim: a Vocos vocoder trained for the minutes the demo can spare on a
CPU is worse than Griffin-Lim on every score (docs/results.md); ``uniwav train-vocoder`` trains one
for longer, and every command takes it with ``--vocoder``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class DemoOptions:
    out: Path
    budget_minutes: Optional[float] = None  # cap on the training time of all stages together (None: run every update)
    corpus_minutes: float = 45.0
    label_minutes: float = 10.0
    eval_utterances: int = 30
    max_steps: Optional[int] = None  # caps every training stage (smoke runs)
    language: str = "en"  # of the corpus: en, or another with a Debian fortunes package (prepare_demo.LANGUAGES)


@dataclass
class Stage:
    name: str
    title: Callable[[Demo], str]
    run: Callable[[Demo], Optional[dict]]  # -> metrics recorded under ``name`` (None: nothing)
    updates: int = 0  # training stages: optimizer updates
    share: float = 0.0  # training stages: share of --budget-minutes
    cost: float = 0.0  # training stages: seconds per update relative to a pre-training update (for the ETA)


@dataclass
class Demo:
    """The demo folder and what its stages share."""

    options: DemoOptions
    metrics: dict = field(default_factory=dict)  # stage name -> what it returned (metrics.json)
    done: dict = field(default_factory=dict)  # stage name -> {"seconds"} (stages.json)

    @property
    def out(self) -> Path:
        return Path(self.options.out)

    @property
    def data(self) -> Path:
        return self.out / "data"

    def updates(self, stage: str) -> int:
        steps = STAGE_BY_NAME[stage].updates
        return min(steps, self.options.max_steps) if self.options.max_steps else steps

    def training(self, stage: str) -> dict:
        """max_steps / max_minutes of a training stage."""
        cap = self.options.budget_minutes
        return {"max_steps": self.updates(stage), "max_minutes": STAGE_BY_NAME[stage].share * cap if cap else None}

    @property
    def english(self) -> bool:
        from uniwav.data.text import is_english

        return is_english(self.options.language)

    @property
    def phone_language(self) -> str:
        """espeak-ng's name of the corpus language."""
        from uniwav.data.prepare_demo import LANGUAGES

        return "en-us" if self.english else LANGUAGES[self.options.language][1]

    def whisper(self) -> Optional[str]:
        """Whisper tiny.en judges English speech only; another language is judged by our recogniser alone."""
        from uniwav.evaluation.scorers import resolve_whisper

        return resolve_whisper("auto") if self.english else None

    def monitor(self) -> list[str]:
        """Overrides of the generation stages' learning-curve monitors."""
        return [f"trainer.monitor_asr={self.out / self.best_asr()}"] + ([] if self.english else ["trainer.monitor_whisper=false"])

    def best_asr(self) -> str:
        return min(("asr-pretrained", "asr-scratch"), key=lambda n: self.metrics[n]["test_cer"])

    def save_samples(self, folder: str, audio: dict, count: int = 2, sample_rate: int = 16000) -> dict:
        """Keep the first ``count`` outputs of each system: {system: [path relative to the demo folder]}."""
        import re

        from uniwav.data.audio import write_audio

        saved = {}
        for system, wavs in audio.items():
            tag = re.sub(r"[^a-z0-9]+", "_", system.lower()).strip("_")
            saved[system] = []
            for i, wav in enumerate(wavs[:count]):
                path = Path("samples") / folder / f"{tag}_{i}.wav"
                write_audio(self.out / path, wav, sample_rate)
                saved[system].append(path.as_posix())
        return saved

    def write_json(self, name: str, result: dict) -> str:
        from uniwav.utils import atomic_write_text

        atomic_write_text(self.out / name, json.dumps(result, indent=1))
        return name


# ---------------------------------------------------------------------- stages


def corpus(d: Demo) -> dict:
    from uniwav.config import FeatureConfig
    from uniwav.data.prepare_demo import prepare_demo
    from uniwav.data.stats import ensure_stats

    report = prepare_demo(d.data, minutes=d.options.corpus_minutes, language=d.options.language)
    print(report.summary())
    ensure_stats(d.data, FeatureConfig())
    return report.splits


def pretrain(d: Demo) -> None:
    from uniwav.models.uniwav import UniWav
    from uniwav.training.pretrain import pretrain as run

    run(d.data, d.out / "pretrain", "tiny", [], **d.training("pretrain"))
    UniWav.from_pretrained(d.out / "pretrain").save_pretrained(d.out / "export")


# What text-to-speech is conditioned on: "phone" (espeak-ng phones, aligned by a phone recogniser fine-tuned from the
# pre-trained encoder, as the paper conditions on phones) or "char". Phones measured better: docs/results.md, "Phones or letters".
TTS_UNIT = "phone"


def asr(name: str, init: Callable[[Demo], str], unit: str = "char") -> Callable[[Demo], dict]:
    def stage(d: Demo) -> dict:
        from uniwav.data.manifests import load_cuts
        from uniwav.evaluation.asr import evaluate_asr
        from uniwav.models.ctc import CTCModel
        from uniwav.training.finetune_asr import finetune_asr

        finetune_asr(d.data, d.out / name, init(d), None, [f"model.unit={unit}", f"model.language={d.phone_language}"],
                     label_minutes=d.options.label_minutes, **d.training(name))
        result = evaluate_asr(CTCModel.from_pretrained(d.out / name), load_cuts(d.data, "test"))
        print(f"{name}: test CER {result['cer']:.3f}  WER {result['wer']:.3f}")
        return {"test_cer": result["cer"], "test_wer": result["wer"], "n": result["n"], "result": d.write_json(f"{name}.test.json", result)}

    return stage


def _bootstrap_lines(result: dict, what: str) -> None:
    cer = result["cer"]
    print(f"{what}: CER {cer['baseline']:.3f} -> {cer['candidate']:.3f}, {-100 * cer['relative_reduction']:+.1f}% "
          f"(95% interval {-100 * cer['ci95'][1]:+.1f}% .. {-100 * cer['ci95'][0]:+.1f}%, p(not lower) {cer['p_not_better']:.4f})")


def asr_compare(d: Demo) -> dict:
    """Paired bootstrap of the pre-trained recogniser against the one from scratch (test utterances)."""
    from uniwav.evaluation.asr import load_results, paired_bootstrap

    result = paired_bootstrap(load_results(d.out / d.metrics["asr-scratch"]["result"]),
                              load_results(d.out / d.metrics["asr-pretrained"]["result"]))
    _bootstrap_lines(result, "pre-trained vs scratch recogniser")
    return {unit: result[unit] for unit in ("cer", "wer")}


def aligner(d: Demo) -> str:
    """The recogniser whose alignments text-to-speech learns from: the phone recogniser, or the better character one."""
    return "asr-phone" if TTS_UNIT == "phone" else d.best_asr()


def align(d: Demo) -> dict:
    from uniwav.inference.align import align_corpus
    from uniwav.models.ctc import CTCModel

    model = aligner(d)
    align_corpus(CTCModel.from_pretrained(d.out / model), d.data, d.out / "align")
    return {"model": model, "unit": TTS_UNIT}


def analyze(d: Demo) -> dict:
    import torch

    from uniwav.evaluation.probing import analyze_layers, plot_layers
    from uniwav.models.uniwav import UniWav

    pretrained = UniWav.from_pretrained(d.out / "export")
    torch.manual_seed(0)
    models = {"pretrained": pretrained, "random": UniWav(pretrained.cfg)}
    (d.out / "analysis").mkdir(exist_ok=True)
    results, metrics = {}, {}
    for name, model in models.items():
        results[name] = analyze_layers(model, d.data, d.out / "align", max_train_utterances=200)
        plot_layers(results[name], d.out / "analysis" / f"layers_{name}.png")
        metrics[name] = [{k: round(v, 4) for k, v in row.items()} for row in results[name]["layers"]]
    d.write_json("analysis/layers.json", results)
    return {**metrics, "plots": {name: f"analysis/layers_{name}.png" for name in models}}


def tokenizer(d: Demo) -> None:
    from uniwav.training.finetune_tokenizer import finetune_tokenizer

    finetune_tokenizer(d.data, d.out / "tokenizer", str(d.out / "export"), "tokenizer_tiny", d.monitor(), **d.training("tokenizer"))


def tts(name: str, init: Callable[[Demo], str]) -> Callable[[Demo], None]:
    def stage(d: Demo) -> None:
        from uniwav.training.finetune_tts import finetune_tts

        finetune_tts(d.data, d.out / name, d.out / "align", init(d), "tts_tiny", d.monitor(), **d.training(name))

    return stage


def evaluate_tokens(d: Demo) -> dict:
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.resynth import evaluate_resynth
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tokenizer import SpeechTokenizer

    tok = SpeechTokenizer.from_pretrained(d.out / "tokenizer")
    result = evaluate_resynth(tok, load_cuts(d.data, "test"), [500, 1000], Synthesizer(tok.cfg.features, None),
                              asr_model=CTCModel.from_pretrained(d.out / d.best_asr()), whisper_dir=d.whisper(),
                              max_utterances=d.options.eval_utterances, unquantized=True)
    samples = d.save_samples("tokens", result.pop("_audio"), sample_rate=tok.cfg.features.sample_rate)
    ids = [u["id"] for u in result["per_utterance"][0]["utterances"]]
    return {"rows": result["rows"], "samples": samples, "ids": ids[:2], "result": d.write_json("tokens.test.json", result)}


# TTS systems scored: the model's own sampler (first: the one compared), more steps, and guidance 1
TTS_SYSTEMS = {"tts-pretrained": [{}, {"nfe": 32}, {"guidance": 1.0, "sway": 0.0}], "tts-scratch": [{}]}


def evaluate_tts(d: Demo) -> dict:
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.asr import paired_bootstrap
    from uniwav.evaluation.tts import evaluate_tts as evaluate
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel

    asr_model = CTCModel.from_pretrained(d.out / d.best_asr())
    metrics, compared = {}, {}
    for name, systems in TTS_SYSTEMS.items():
        model = TTSModel.from_pretrained(d.out / name)
        result = evaluate(model, load_cuts(d.data, "test"), Synthesizer(model.cfg.features, None), systems, asr_model=asr_model,
                          whisper_dir=d.whisper(), max_pairs=d.options.eval_utterances)
        samples = d.save_samples(name, result.pop("_audio"), sample_rate=model.cfg.features.sample_rate)
        first = next(iter(result["systems"]))
        compared[name] = result["per_utterance"][first]
        metrics[name] = {"rows": result["rows"], "samples": samples, "system": first, "result": d.write_json(f"{name}.test.json", result)}
        metrics["pairs"] = result["pairs"][:2]
    comparison = paired_bootstrap(compared["tts-scratch"], compared["tts-pretrained"])
    _bootstrap_lines(comparison, "pre-trained vs scratch text-to-speech (transcripts of the generated speech)")
    metrics["compare"] = {unit: comparison[unit] for unit in ("cer", "wer")}
    return metrics


def goals(d: Demo) -> dict:
    """The generation goals of the demo (issue #15) as ratios to the vocoded original, and whether each is met."""
    out = {}
    tokens = d.metrics.get("tokens", {}).get("rows", {})
    truth = tokens.get("ground truth (vocoded)", {})
    for rate, limit in (("1000 bit/s", 1.5), ("500 bit/s", 2.0)):
        row = tokens.get(rate, {})
        if row.get("whisper_cer") is not None and truth.get("whisper_cer"):
            ratio = row["whisper_cer"] / truth["whisper_cer"]
            sim = row["speaker_sim"] / truth["speaker_sim"] if row.get("speaker_sim") and truth.get("speaker_sim") else None
            out[f"tokens {rate}"] = {"whisper_cer_ratio": ratio, "limit": limit, "speaker_sim_ratio": sim, "sim_limit": 0.9,
                                     "met": ratio <= limit and (sim is None or sim >= 0.9)}
    tts_metrics = d.metrics.get("tts", {}).get("tts-pretrained", {})
    rows = tts_metrics.get("rows", {})
    truth, best = rows.get("ground truth (vocoded)", {}), rows.get(tts_metrics.get("system", ""), {})
    if best.get("whisper_cer") is not None and truth.get("whisper_cer"):
        ratio, sim = best["whisper_cer"] / truth["whisper_cer"], best.get("speaker_sim", 0) / max(truth.get("speaker_sim", 1), 1e-9)
        out["tts from a 3 s prompt"] = {"whisper_cer_ratio": ratio, "limit": 2.0, "speaker_sim_ratio": sim, "sim_limit": 0.95,
                                        "met": ratio <= 2.0 and sim >= 0.95}
    for name, goal in out.items():
        print(f"goal {name}: Whisper CER {goal['whisper_cer_ratio']:.2f}x the vocoded original (goal <= {goal['limit']}x), "
              f"similarity {goal['speaker_sim_ratio'] or float('nan'):.2f}x (goal >= {goal['sim_limit']}x): {'met' if goal['met'] else 'NOT met'}")
    return out


def app_screenshots(d: Demo) -> dict:
    """The web page (``uniwav serve``) with the models just trained, one screenshot per tab, taken in a
    headless Chromium; skipped, with the reason, where Gradio, Playwright or a browser is missing."""
    import importlib.util

    from uniwav.app.screenshots import find_browser
    from uniwav.utils import free_port

    missing = [name for name, found in (("gradio", importlib.util.find_spec("gradio")), ("playwright", importlib.util.find_spec("playwright")),
                                        ("a Chromium browser", find_browser())) if not found]
    if missing:
        print(f"  skipped: {', '.join(missing)} not installed (pip install 'uniwav[app]' playwright; apt-get install chromium)")
        return {"skipped": f"{', '.join(missing)} not installed"}
    from uniwav.app.screenshots import screenshot_tabs
    from uniwav.app.serve import Models, serve

    port = free_port()
    app = serve(Models(str(d.out / d.best_asr()), str(d.out / "tts-pretrained"), str(d.out / "tokenizer")), port=port, block=False)
    try:
        shots = screenshot_tabs(f"http://127.0.0.1:{port}/", d.out / "samples" / "app")
    finally:
        app.close()
    return {"screenshots": [p.relative_to(d.out).as_posix() for p in shots]}


def report(d: Demo) -> dict:
    from uniwav.recipes.demo_report import build_report

    return {"path": build_report(d).relative_to(d.out).as_posix()}


STAGES = [
    Stage("corpus", lambda d: f"synthesising {d.options.corpus_minutes:g} minutes of demo speech -> {d.data}", corpus),
    Stage("pretrain", lambda d: f"pre-training the tiny model, {d.updates('pretrain')} updates -> {d.out / 'pretrain'}", pretrain,
          updates=2500, share=0.30, cost=1.0),
    Stage("asr-pretrained", lambda d: f"CTC fine-tuning from the pre-trained encoder, {d.options.label_minutes:g} min of labels, "
          f"{d.updates('asr-pretrained')} updates", asr("asr-pretrained", lambda d: str(d.out / "pretrain")), updates=1500, share=0.07, cost=0.45),
    Stage("asr-scratch", lambda d: "CTC fine-tuning from random initialisation, same labels and updates", asr("asr-scratch", lambda d: "none"),
          updates=1500, share=0.07, cost=0.45),
    Stage("asr-compare", lambda d: "pre-trained vs scratch recogniser: paired bootstrap over the test utterances", asr_compare),
    *([Stage("asr-phone", lambda d: f"CTC fine-tuning of a phone recogniser (espeak-ng phones) from the pre-trained encoder, same labels, "
                                    f"{d.updates('asr-phone')} updates: the aligner of phone TTS",
             asr("asr-phone", lambda d: str(d.out / "pretrain"), unit="phone"), updates=1500, share=0.07, cost=0.45)]
      if TTS_UNIT == "phone" else []),
    Stage("align", lambda d: f"forced alignment of every split with the {'phone' if TTS_UNIT == 'phone' else 'better character'} "
                             f"recogniser: text-to-speech speaks from {TTS_UNIT}s", align),
    Stage("layers", lambda d: f"what each encoder layer knows ({TTS_UNIT} probe, mutual information with {TTS_UNIT}s and speakers)",
          analyze),
    Stage("tokenizer", lambda d: f"speech tokenizer (500 / 1000 bit/s), {d.updates('tokenizer')} updates", tokenizer,
          updates=1200, share=0.11, cost=0.75),
    Stage("tts-pretrained", lambda d: f"text-to-speech from the pre-trained model, {d.updates('tts-pretrained')} updates",
          tts("tts-pretrained", lambda d: str(d.out / "pretrain")), updates=1500, share=0.19, cost=1.2),
    Stage("tts-scratch", lambda d: "text-to-speech from scratch, same updates", tts("tts-scratch", lambda d: "none"),
          updates=1500, share=0.19, cost=1.2),
    Stage("tokens", lambda d: "resynthesis at 500 and 1000 bit/s vs. the original", evaluate_tokens),
    Stage("tts", lambda d: "text-to-speech, cross-sentence, pre-trained vs scratch", evaluate_tts),
    Stage("goals", lambda d: "the generation goals", goals),
    Stage("app", lambda d: "the web page with these models (uniwav serve), a screenshot of each tab", app_screenshots),
    Stage("report", lambda d: f"writing {d.out / 'report.html'}", report),
]
STAGE_BY_NAME = {s.name: s for s in STAGES}


def step_seconds() -> float:
    """Seconds of one pre-training update of the tiny preset on this machine (its own batch, the
    precision training uses), measured now: the unit of the plan's ETA."""
    from uniwav.bench.run import train_shape, train_step
    from uniwav.training.launch import resolve_precision

    bf16 = resolve_precision("auto", "cpu")[0] == "bf16-mixed"
    return train_step("tiny", "cpu", *train_shape("tiny", "cpu"), repeats=3, bf16=bf16)["step_seconds"]


# A pre-training update of the demo costs this many times the bare step ``step_seconds`` times: the
# training loop (`uniwav bench --data`: loop_overhead.pretrain 1.03 on 2 cores, docs/results.md) plus the
# samples and checkpoints written every 200 updates.
LOOP_OVERHEAD = 1.1


def update_seconds(d: Demo) -> float:
    """Seconds per pre-training update: measured by the finished pre-training stage when there is one,
    else the bare step timed now times ``LOOP_OVERHEAD``."""
    done = d.done.get("pretrain")
    if done and not d.options.budget_minutes and not d.options.max_steps:  # then it ran all its updates
        return done["seconds"] / d.updates("pretrain")
    return step_seconds() * LOOP_OVERHEAD


def plan(d: Demo, seconds: float) -> str:
    """The training stages still to run, their updates and an ETA at ``seconds`` per pre-training update."""
    lines, total = [], 0.0
    for s in STAGES:
        if s.updates and s.name not in d.done:
            minutes = d.updates(s.name) * s.cost * seconds / 60
            cap = d.training(s.name)["max_minutes"]
            minutes = min(minutes, cap) if cap else minutes
            total += minutes
            lines.append(f"  {s.name:15s} {d.updates(s.name):5d} updates  ~{minutes:5.0f} min" + (f" (capped at {cap:g})" if cap else ""))
    return "\n".join([*lines, f"  training ~{total:.0f} min at {seconds:.2f} s per pre-training update measured here; "
                      "synthesis, alignment and scoring add about 15 min"])


def run_demo(options: DemoOptions) -> Demo:
    """Run every stage that has not finished yet; returns the demo (its metrics filled)."""
    from uniwav.utils import atomic_write_text

    d = Demo(options)
    d.out.mkdir(parents=True, exist_ok=True)
    stages_file, metrics_file = d.out / "stages.json", d.out / "metrics.json"
    done = d.done = json.loads(stages_file.read_text()) if stages_file.is_file() else {}
    d.metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if any(s.updates and s.name not in done for s in STAGES) and not options.max_steps:
        print("plan:\n" + plan(d, update_seconds(d)), flush=True)
    for stage in STAGES:
        if stage.name in done:
            print(f"[{stage.name}] done earlier ({done[stage.name]['seconds']} s): {stage.title(d)}", flush=True)
            continue
        print(f"[{stage.name}] {stage.title(d)}", flush=True)
        t = time.time()
        result = stage.run(d)
        if result is not None:
            d.metrics[stage.name] = result
        done[stage.name] = {"seconds": round(time.time() - t, 1)}
        atomic_write_text(metrics_file, json.dumps(d.metrics, indent=1))
        atomic_write_text(stages_file, json.dumps(done, indent=1))
        if stage.name == "pretrain" and not options.max_steps and not options.budget_minutes:
            print("plan, at the update time pre-training measured:\n" + plan(d, update_seconds(d)), flush=True)
    return d
