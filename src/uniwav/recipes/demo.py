"""The demo recipe: the whole story on the built-in demo corpus, stage by stage.

corpus -> pre-training (tiny) -> export -> CTC fine-tuning with a 10-minute label budget, from the
pre-trained encoder and from random initialisation, same time -> forced alignment (the better of
the two recognisers) -> layer analysis -> vocoder -> speech tokenizer -> text-to-speech from the
pre-trained model and from scratch, same time -> evaluation of everything -> ``DIR/report.html``
and ``DIR/metrics.json``.

``STAGES`` is the recipe: each stage has a name (the key it records in ``DIR/stages.json`` and in
``metrics.json``), a title and a share of the training budget. A stage that finished before is
skipped, so re-running after an interruption continues; an interrupted training stage resumes
from its last checkpoint. Each stage returns its metrics, including the files it wrote
(``samples``: paths relative to ``DIR``), which is all the report reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from collections.abc import Callable

NFES = (8, 16, 32)



@dataclass
class DemoOptions:
    out: Path
    budget_minutes: float = 60.0  # training time of all stages together
    corpus_minutes: float = 45.0
    label_minutes: float = 10.0
    eval_utterances: int = 30
    max_steps: Optional[int] = None  # caps every training stage (smoke runs)


@dataclass
class Stage:
    name: str
    title: Callable[[Demo], str]
    run: Callable[[Demo], Optional[dict]]  # -> metrics recorded under ``name`` (None: nothing)
    budget: float = 0.0  # share of the training budget


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

    def minutes(self, stage: str) -> float:
        return STAGE_BY_NAME[stage].budget * self.options.budget_minutes

    def training(self, stage: str) -> dict:
        """max_steps / max_minutes of a training stage."""
        return {"max_steps": self.options.max_steps, "max_minutes": self.minutes(stage)}

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

    def write_json(self, name: str, result: dict) -> None:
        from uniwav.utils import atomic_write_text

        atomic_write_text(self.out / name, json.dumps(result, indent=1))


# ---------------------------------------------------------------------- stages


def corpus(d: Demo) -> dict:
    from uniwav.config import FeatureConfig
    from uniwav.data.prepare_demo import prepare_demo
    from uniwav.data.stats import ensure_stats

    report = prepare_demo(d.data, minutes=d.options.corpus_minutes)
    print(report.summary())
    ensure_stats(d.data, FeatureConfig())
    return report.splits


def pretrain(d: Demo) -> None:
    from uniwav.models.uniwav import UniWav
    from uniwav.training.pretrain import pretrain as run

    run(d.data, d.out / "pretrain", "tiny", [], **d.training("pretrain"))
    UniWav.from_pretrained(d.out / "pretrain").save_pretrained(d.out / "export")


def asr(name: str, init: Callable[[Demo], str], overrides: list) -> Callable[[Demo], dict]:
    def stage(d: Demo) -> dict:
        from uniwav.data.manifests import load_cuts
        from uniwav.evaluation.asr import evaluate_asr
        from uniwav.models.ctc import CTCModel
        from uniwav.training.finetune_asr import finetune_asr

        finetune_asr(d.data, d.out / name, init(d), None, overrides, label_minutes=d.options.label_minutes, **d.training(name))
        result = evaluate_asr(CTCModel.from_pretrained(d.out / name), load_cuts(d.data, "test"))
        d.write_json(f"{name}.test.json", result)
        print(f"{name}: test CER {result['cer']:.3f}  WER {result['wer']:.3f}")
        return {"test_cer": result["cer"], "test_wer": result["wer"], "n": result["n"], "result": f"{name}.test.json"}

    return stage


def asr_compare(d: Demo) -> dict:
    """Paired bootstrap of the pre-trained recogniser against the one from scratch (test utterances)."""
    from uniwav.evaluation.asr import load_results, paired_bootstrap

    result = paired_bootstrap(
        load_results(d.out / d.metrics["asr-scratch"]["result"]), load_results(d.out / d.metrics["asr-pretrained"]["result"])
    )
    cer = result["cer"]
    print(
        f"pre-trained vs scratch: CER {cer['baseline']:.3f} -> {cer['candidate']:.3f}, {-100 * cer['relative_reduction']:+.1f}% "
        f"(95% interval {-100 * cer['ci95'][1]:+.1f}% .. {-100 * cer['ci95'][0]:+.1f}%, p(not lower) {cer['p_not_better']:.4f})"
    )
    return {unit: result[unit] for unit in ("cer", "wer")}


def align(d: Demo) -> dict:
    from uniwav.inference.align import align_corpus
    from uniwav.models.ctc import CTCModel

    best = d.best_asr()
    align_corpus(CTCModel.from_pretrained(d.out / best), d.data, d.out / "align")
    return {"model": best}


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


def vocoder(d: Demo) -> None:
    from uniwav.training.train_vocoder import feature_overrides, train_vocoder

    train_vocoder(d.data, d.out / "vocoder", "vocoder_tiny", feature_overrides(d.out / "export"), **d.training("vocoder"))


def tokenizer(d: Demo) -> None:
    from uniwav.training.finetune_tokenizer import finetune_tokenizer

    finetune_tokenizer(d.data, d.out / "tokenizer", str(d.out / "export"), "tokenizer_tiny", [], **d.training("tokenizer"))


def tts(name: str, init: Callable[[Demo], str]) -> Callable[[Demo], None]:
    def stage(d: Demo) -> None:
        from uniwav.training.finetune_tts import finetune_tts

        finetune_tts(d.data, d.out / name, d.out / "align", init(d), "tts_tiny", [], **d.training(name))

    return stage


def evaluate_tokens(d: Demo) -> dict:
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.resynth import GROUND_TRUTH, evaluate_resynth
    from uniwav.evaluation.scorers import resolve_whisper
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tokenizer import SpeechTokenizer

    tok = SpeechTokenizer.from_pretrained(d.out / "tokenizer")
    cuts = load_cuts(d.data, "test")
    synth = Synthesizer(tok.cfg.features, str(d.out / "vocoder"))
    result = evaluate_resynth(tok, cuts, [500, 1000], synth, asr_model=CTCModel.from_pretrained(d.out / d.best_asr()),
                              whisper_dir=resolve_whisper("auto"), max_utterances=d.options.eval_utterances)
    samples = d.save_samples("tokens", result.pop("_audio"), sample_rate=tok.cfg.features.sample_rate)
    d.write_json("tokens.test.json", result)
    # the vocoder itself against Griffin-Lim, on the same utterances (the ground-truth row of each)
    gl = evaluate_resynth(tok, cuts, [], Synthesizer(tok.cfg.features, None), speaker=False, max_utterances=d.options.eval_utterances)
    keep = ("mel_l1", "pesq", "stoi")
    vocoders = {name: {k: rows[GROUND_TRUTH][k] for k in keep} for name, rows in (("vocos (ours)", result["rows"]), ("griffin-lim", gl["rows"]))}
    ids = [u["id"] for u in result["per_utterance"][0]["utterances"]]
    return {"rows": result["rows"], "vocoders": vocoders, "samples": samples, "ids": ids[:2]}


def evaluate_tts(d: Demo) -> dict:
    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.scorers import resolve_whisper
    from uniwav.evaluation.tts import evaluate_tts as evaluate
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.ctc import CTCModel
    from uniwav.models.tts import TTSModel

    asr_model = CTCModel.from_pretrained(d.out / d.best_asr())
    metrics = {}
    for name in ("tts-pretrained", "tts-scratch"):
        model = TTSModel.from_pretrained(d.out / name)
        result = evaluate(model, load_cuts(d.data, "test"), Synthesizer(model.cfg.features, str(d.out / "vocoder")), [{"nfe": n} for n in NFES],
                          asr_model=asr_model, whisper_dir=resolve_whisper("auto"), max_pairs=d.options.eval_utterances)
        samples = d.save_samples(name, result.pop("_audio"), sample_rate=model.cfg.features.sample_rate)
        d.write_json(f"{name}.test.json", result)
        metrics[name] = {"rows": result["rows"], "samples": samples}
        metrics["pairs"] = result["pairs"][:2]
    return metrics


def report(d: Demo) -> dict:
    from uniwav.recipes.demo_report import build_report

    return {"path": build_report(d).relative_to(d.out).as_posix()}


STAGES = [
    Stage("corpus", lambda d: f"synthesising {d.options.corpus_minutes:g} minutes of demo speech -> {d.data}", corpus),
    Stage(
        "pretrain", lambda d: f"pre-training the tiny model for {d.minutes('pretrain'):g} minutes -> {d.out / 'pretrain'}", pretrain, 0.40
    ),
    Stage(
        "asr-pretrained",
        lambda d: (
            f"CTC fine-tuning from the pre-trained encoder, {d.options.label_minutes:g} min of labels, "
            f"{d.minutes('asr-pretrained'):g} minutes"
        ),
        asr("asr-pretrained", lambda d: str(d.out / "pretrain"), []),
        0.12,
    ),
    Stage(
        "asr-scratch",
        lambda d: "CTC fine-tuning from random initialisation, same labels and time",
        asr("asr-scratch", lambda d: "none", []),
        0.12,
    ),
    Stage("asr-compare", lambda d: "pre-trained vs scratch recogniser: paired bootstrap over the test utterances", asr_compare),
    Stage("align", lambda d: "forced alignment of every split with the better recogniser", align),
    Stage("layers", lambda d: "what each encoder layer knows (character probe, mutual information)", analyze),
    Stage("vocoder", lambda d: f"training the Vocos vocoder for {d.minutes('vocoder'):g} minutes", vocoder, 0.10),
    Stage("tokenizer", lambda d: f"speech tokenizer (500 / 1000 bit/s) for {d.minutes('tokenizer'):g} minutes", tokenizer, 0.08),
    Stage(
        "tts-pretrained",
        lambda d: f"text-to-speech from the pre-trained model, {d.minutes('tts-pretrained'):g} minutes",
        tts("tts-pretrained", lambda d: str(d.out / "pretrain")),
        0.09,
    ),
    Stage("tts-scratch", lambda d: "text-to-speech from scratch, same time", tts("tts-scratch", lambda d: "none"), 0.09),
    Stage("tokens", lambda d: "resynthesis at 500 and 1000 bit/s vs. vocoded ground truth", evaluate_tokens),
    Stage("tts", lambda d: f"text-to-speech, cross-sentence, NFE {', '.join(map(str, NFES))}", evaluate_tts),
    Stage("report", lambda d: f"writing {d.out / 'report.html'}", report),
]
STAGE_BY_NAME = {s.name: s for s in STAGES}


def run_demo(options: DemoOptions) -> Demo:
    """Run every stage that has not finished yet; returns the demo (its metrics filled)."""
    from uniwav.utils import atomic_write_text

    d = Demo(options)
    d.out.mkdir(parents=True, exist_ok=True)
    stages_file, metrics_file = d.out / "stages.json", d.out / "metrics.json"
    done = d.done = json.loads(stages_file.read_text()) if stages_file.is_file() else {}
    d.metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
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
    return d
