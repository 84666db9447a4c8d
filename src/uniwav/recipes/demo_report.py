"""The demo's ``report.html``: what ran, how training went, every metric with its baseline, and
audio with mel images. Built only from ``metrics.json`` (and the files its entries name) and the
runs' TensorBoard logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _wav(path) -> np.ndarray:
    import soundfile as sf

    return sf.read(str(path), dtype="float32")[0]


def _curves(report, runs: dict, tag: str, title: str, name: str) -> None:
    from uniwav.evaluation.report import curves_figure, scalar_curves

    data = {}
    for label, tb in runs.items():
        if Path(tb).is_dir():
            c = scalar_curves(tb, [tag])
            if tag in c:
                data[label] = c[tag]
    if data:
        report.figure(curves_figure(data, title), name)


def build_report(d) -> Path:
    """``d``: the ``recipes.demo.Demo`` whose folder and metrics the report shows."""
    import torch

    from uniwav.data.manifests import load_cuts
    from uniwav.evaluation.report import Report
    from uniwav.models.uniwav import UniWav
    from uniwav.training import plots

    out, m, o = d.out, d.metrics, d.options
    r = Report(out, "UniWav demo: one pre-trained model for recognition, tokens and text-to-speech")
    model = UniWav.from_pretrained(out / "export")
    feats = model.features
    sr = model.cfg.features.sample_rate
    test = {c.id: c for c in load_cuts(d.data, "test")}

    r.section("What ran")
    budget = f"capped at {o.budget_minutes:g} minutes" if o.budget_minutes else "each stage its number of updates"
    r.text(f"Corpus: {o.corpus_minutes:g} minutes of espeak-ng speech, speaker-disjoint splits (test speakers never seen in "
           f"training). Training: {budget}; ASR used {o.label_minutes:g} minutes of labels.")
    r.table({split: dict(s) for split, s in m.get("corpus", {}).items()}, fmt="{:.1f}")
    r.table({k: {"seconds": v["seconds"]} for k, v in d.done.items()}, fmt="{:.0f}")
    r.text("Parameters: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in model.num_parameters().items()))
    r.code((out / "pretrain" / "config.yaml").read_text())

    r.section("Pre-training (encoder self-distillation + flow-matching decoder)")
    tb = {"pre-training": out / "pretrain" / "tb"}
    for tag, title in (
        ("loss/encoder", "encoder loss (cross-entropy on teacher codewords)"),
        ("loss/decoder", "decoder flow-matching loss"),
        ("encoder/accuracy", "student accuracy on the teacher's codewords"),
        ("codebook/perplexity_min", "smallest codebook perplexity (collapse = 1)"),
    ):
        _curves(r, tb, tag, title, tag.replace("/", "_"))
    w = torch.softmax(model.backbone.layer_weights.detach().float(), 0).numpy()
    r.figure(plots.bar_figure(w, "learned layer weights of z (decoder condition)", "encoder layer", "softmax weight"), "layer_weights")
    cuts = load_cuts(d.data, "dev" if (d.data / "dev").is_dir() else "test")
    with torch.no_grad():
        counts = torch.zeros(model.codebooks.num_codebooks, model.codebooks.codebook_size)
        for cut in list(cuts)[:20]:
            x, _ = model.features.prepare(cut.load_audio()[0])
            idx = model.codebooks.assign(model.teacher_targets(x, None)[:, 0])
            counts.scatter_add_(1, idx, torch.ones(idx.shape))
    r.figure(plots.usage_figure(counts.numpy(), "codeword usage on dev utterances (teacher targets)"), "codebook_usage")

    if "layers" in m:
        r.section("What each encoder layer knows")
        unit = m.get("align", {}).get("unit", "char")
        unit = "phone" if unit == "phone" else "character"
        r.text(
            f"Layer 0 is the log-mel input. {unit.capitalize()} probe: a linear classifier of each frame's {unit} (labels from the "
            f"forced alignment), fitted on 200 training utterances and scored on the unseen test speakers. NMI: normalised mutual "
            f"information between 100 k-means units of the layer and the {unit}s / the speakers."
        )
        for name, path in m["layers"].get("plots", {}).items():
            r.image(out / path, f"{name} encoder")
        rows = {}
        for name in ("pretrained", "random"):
            for row in m["layers"].get(name, []):
                rows[f"{name} layer {row['layer']}"] = {
                    k: v for k, v in row.items() if k in ("probe_accuracy", "nmi_text", "nmi_speaker")
                }
        r.table(rows)

    r.section(f"Speech recognition (CTC), {o.label_minutes:g} minutes of labels")
    r.table({k: m[k] for k in ("asr-pretrained", "asr-scratch") if k in m}, ["test_cer", "test_wer", "n"])
    if "asr-compare" in m:
        rows = {
            unit.upper(): {
                "relative reduction": c["relative_reduction"],
                "95% low": c["ci95"][0],
                "95% high": c["ci95"][1],
                "p(not lower)": c["p_not_better"],
            }
            for unit, c in m["asr-compare"].items()
        }
        r.text(
            "Pre-trained against scratch, paired bootstrap over the test utterances (`uniwav evaluate compare`): "
            "the relative reduction of the error rate, its 95% interval, and the share of resamples in which "
            "pre-training is not better. It does not cover training randomness (one fine-tuning seed each)."
        )
        r.table(rows)
    runs = {k: out / k / "tb" for k in ("asr-pretrained", "asr-scratch")}
    _curves(r, runs, "loss/ctc", "CTC loss", "asr_ctc_loss")
    _curves(r, runs, "val/cer", "dev CER", "asr_val_cer")

    if "tokens" in m:
        tokens = m["tokens"]
        r.section("Speech tokens: 500 and 1000 bit/s")
        r.text("Each row against the original test utterance, all made audible with Griffin-Lim: the ground-truth row is the "
               "original through Griffin-Lim alone (the ceiling of every other row), the unquantised row is the decoder regenerating "
               "the utterance from the encoder's representation before any bits are thrown away. asr_* = our CTC recogniser, "
               "whisper_* = Whisper tiny.en (independent), speaker_sim = resemblyzer similarity to the original.")
        r.table(tokens["rows"])
        for i, utt in enumerate(tokens["ids"]):
            clips = [("original", test[utt].load_audio()[0])]
            clips += [(system, _wav(out / paths[i])) for system, paths in tokens["samples"].items() if i < len(paths)]
            r.clips(clips, sr, f"tokens_{i}", feats)
        r.text("Learning curves: dev utterances resynthesised during training, transcribed by Whisper (monitor/*/whisper_cer).")
        for rate in ("500bps", "1000bps"):
            _curves(r, {"tokenizer": out / "tokenizer" / "tb"}, f"monitor/{rate}/whisper_cer", f"Whisper CER at {rate} (dev)",
                    f"tokens_{rate}_cer")

    if "tts" in m:
        tts = m["tts"]
        r.section("Text-to-speech from a 3-second prompt (cross-sentence, unseen speakers)")
        r.text("Prompt: the first 3 s of another utterance of the same test speaker; the text is a different sentence. "
               "Pre-trained vs. from scratch, same updates; speaker_sim is to the prompt's utterance. Audio through Griffin-Lim.")
        rows = {}
        for name in ("tts-pretrained", "tts-scratch"):
            for system, row in tts.get(name, {}).get("rows", {}).items():
                label = system if system.startswith("ground") else f"{name} {system.replace('tts ', '')}"
                rows[label] = row
        r.table(rows)
        if "compare" in tts:
            r.text("Pre-trained against scratch, paired bootstrap over the test pairs (the transcripts of each one's speech): "
                   "relative reduction of the error rate, 95% interval, share of resamples where pre-training is not better.")
            r.table({unit.upper(): {"relative reduction": c["relative_reduction"], "95% low": c["ci95"][0], "95% high": c["ci95"][1],
                                    "p(not lower)": c["p_not_better"]} for unit, c in tts["compare"].items()})
        for i, pair in enumerate(tts.get("pairs", [])):
            clips = [("prompt (3 s)", test[pair["prompt"]].load_audio()[0][: 3 * sr])]
            for name in ("tts-pretrained", "tts-scratch"):
                entry = tts.get(name, {})
                for system, paths in entry.get("samples", {}).items():
                    if i >= len(paths) or (system.startswith("ground") and name != "tts-pretrained"):
                        continue
                    if system.startswith("ground") or system == entry.get("system"):
                        clips.append((system if system.startswith("ground") else f"{name}, {system}", _wav(out / paths[i])))
            r.text(f"Text: \u201c{pair['text']}\u201d")
            r.clips(clips, sr, f"tts_{i}", feats)
        runs = {k: out / k / "tb" for k in ("tts-pretrained", "tts-scratch")}
        r.text("Learning curves: dev sentences spoken from another utterance's first 3 s during training, transcribed by Whisper "
               "and by our recogniser; the flow-matching loss.")
        _curves(r, runs, "monitor/tts/whisper_cer", "Whisper CER of generated dev speech", "tts_whisper_cer")
        _curves(r, runs, "monitor/tts/asr_cer", "our recogniser's CER of generated dev speech", "tts_asr_cer")
        _curves(r, runs, "loss/flow", "TTS flow-matching loss", "tts_flow")

    if m.get("goals"):
        r.section("Generation goals")
        r.text("Whisper CER and speaker similarity as ratios to the original through the same vocoder (Griffin-Lim).")
        r.table(m["goals"])

    shots = m.get("app", {}).get("screenshots", [])
    if shots:
        r.section("The web page")
        r.text("uniwav serve with these models (the command below): one tab per model.")
        for path in shots:
            r.image(out / path, Path(path).stem)

    r.section("Reproduce")
    budget = f" --budget-minutes {o.budget_minutes:g}" if o.budget_minutes else ""
    r.code(f"uniwav demo --out {out}{budget}\ntensorboard --logdir {out}\nuniwav serve --asr {out / 'asr-pretrained'} "
           f"--tts {out / 'tts-pretrained'} --tokenizer {out / 'tokenizer'}")
    return r.write()
