import gzip
import json
import math

import numpy as np
import pytest
import torch

from uniwav.config import CTCModelConfig, EncoderConfig, FeatureConfig
from uniwav.data.batches import label_subset
from uniwav.data.manifests import load_cuts
from uniwav.data.text import BLANK, CharVocabulary, VocabularyError
from uniwav.inference.ctc_decode import AlignmentError, forced_align
from uniwav.inference.ctc_decode import greedy_decode, prefix_beam_search, sequence_log_prob
from uniwav.inference.transcribe import stitched_log_probs, transcribe
from uniwav.models.ctc import CTCModel

from conftest import SMALL_OVERRIDES


def small_ctc(vocab="abc "):
    return CTCModel(CTCModelConfig(
        features=FeatureConfig(n_mels=20),
        encoder=EncoderConfig(dim=32, layers=2, heads=2, ffn_dim=64, dropout=0.0, attention_dropout=0.0, pos_conv_kernel=5, pos_conv_groups=4),
        vocab=[BLANK] + sorted(vocab), final_dropout=0.0,
    )).eval()


def test_ctc_head_shapes_and_normalisation():
    model = small_ctc()
    lp, frames = model.log_probs(torch.randn(2, 16000), torch.tensor([16000, 8000]))
    assert lp.shape == (2, 51, 5) and lp.dtype == torch.float32 and frames.tolist() == [51, 26]
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, 51))


def test_probe_of_a_lower_layer_runs_only_the_layers_below():
    from uniwav.config import ConfigError

    model = small_ctc()
    model.cfg.layer = 1
    probe = CTCModel(model.cfg).eval()
    calls = []
    for block in probe.encoder.context.blocks:
        block.register_forward_hook(lambda *a: calls.append(1))
    lp, _ = probe.log_probs(torch.randn(8000))
    assert lp.shape == (1, 26, 5) and len(calls) == 1
    model.cfg.layer = 3
    with pytest.raises(ConfigError, match="model.layer"):
        CTCModel(model.cfg)


def test_batched_equals_unbatched():
    model = small_ctc()
    a, b = torch.randn(16000), torch.randn(9000)
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9000] = a, b
    lp, frames = model.log_probs(batch, torch.tensor([16000, 9000]))
    for i, w in enumerate((a, b)):
        alone, n = model.log_probs(w)
        torch.testing.assert_close(lp[i, : int(n[0])], alone[0], atol=1e-4, rtol=1e-4)


def test_greedy_collapse_rules():
    V = 4
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3, 0]
    lp = np.log(np.full((len(path), V), 0.01))
    lp[np.arange(len(path)), path] = np.log(0.97)
    assert greedy_decode(lp) == [1, 1, 2, 3]  # repeats merge, a blank separates a true repeat


def test_beam_is_at_least_as_good_as_greedy():
    # two frames, P(blank) = 0.6, P(a) = 0.4: greedy says "" (0.36) but "a" has 0.4*0.4 + 2*0.4*0.6 = 0.64
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert greedy_decode(lp) == [] and prefix_beam_search(lp, beam=4) == [1]
    assert sequence_log_prob(lp, [1]) == pytest.approx(np.log(0.64))
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.normal(size=(12, 4)) * 2
        lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        g, b = greedy_decode(lp), prefix_beam_search(lp, beam=8)
        assert sequence_log_prob(lp, b) >= sequence_log_prob(lp, g) - 1e-9


def test_forced_alignment_recovers_a_planted_alignment():
    rng = np.random.default_rng(1)
    tokens = [3, 1, 1, 2]
    planted = [0, 0, 3, 3, 3, 0, 1, 1, 0, 1, 2, 2, 2, 0]  # frame labels (0 = blank); the repeat needs a blank
    lp = np.log(rng.uniform(0.01, 0.05, size=(len(planted), 4)))
    lp[np.arange(len(planted)), planted] = np.log(0.9)
    spans = forced_align(lp, tokens)
    assert spans == [(2, 5), (6, 8), (9, 10), (10, 13)]
    with pytest.raises(AlignmentError, match="utt9"):
        forced_align(lp[:3], tokens, utt_id="utt9")


def test_vocabulary_errors_name_the_utterance():
    vocab = CharVocabulary.from_texts(["hello world"])
    assert vocab.symbols[0] == BLANK and vocab.decode(vocab.encode("hello", "u1")) == "hello"
    with pytest.raises(VocabularyError, match="utt7.*'z'"):
        vocab.encode("hazel", "utt7")
    with pytest.raises(VocabularyError, match="utt8: empty"):
        vocab.encode("", "utt8")


def test_chunked_log_probs_are_stitched_in_place(monkeypatch):
    model = small_ctc()
    wav = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32)
    direct = model.log_probs(torch.from_numpy(wav))[0][0].numpy()
    np.testing.assert_allclose(stitched_log_probs(model, [wav], chunk_seconds=30.0)[0], direct, atol=1e-5)

    # A stand-in whose "log-prob" at frame j of a window is the input sample at that frame's centre:
    # fed a ramp of global sample indices, the stitched output must count frames 0, 1, 2, ... exactly.
    hop = model.cfg.features.hop_length

    def position_log_probs(audio, lengths):
        frames = 1 + lengths // hop
        out = torch.zeros(audio.shape[0], int(frames.max()), 2)
        for b in range(audio.shape[0]):
            centres = torch.arange(int(frames[b])) * hop
            out[b, : len(centres), 0] = audio[b, centres.clamp(max=int(lengths[b]) - 1)]
        return out, frames

    monkeypatch.setattr(model, "log_probs", position_log_probs)
    n = 16000 * 7 + 123
    ramp = np.arange(n, dtype=np.float32)
    for chunk, overlap in ((2.0, 0.5), (3.0, 1.0), (1.0, 0.0)):
        out = stitched_log_probs(model, [ramp, ramp[:5000]], chunk_seconds=chunk, overlap_seconds=overlap)
        expected = np.arange(1 + n // hop) * hop
        expected[-1] = min(expected[-1], n - 1)
        np.testing.assert_array_equal(out[0][:, 0], expected.astype(np.float32))
        assert out[1].shape[0] == 1 + 5000 // hop


def _rows(pairs):
    return [{"id": f"u{i}", "ref": r, "hyp": h} for i, (r, h) in enumerate(pairs)]


def test_paired_bootstrap_rates_intervals_and_errors(tmp_path):
    import jiwer

    from uniwav.cli.main import main
    from uniwav.evaluation.asr import paired_bootstrap

    refs = ["the cat sat down", "on the mat", "a dog barked loudly", "it rained on us", "we went home early", "so it goes"]
    worse = _rows([(r, r.replace("a", "e").replace("o", "u")) for r in refs])
    better = _rows([(r, r.replace("a", "e")) for r in refs])  # a subset of the same errors, on every utterance
    result = paired_bootstrap(worse, better[::-1], resamples=500)  # order does not matter: paired by id
    for unit, rate in (("cer", jiwer.cer), ("wer", jiwer.wer)):
        assert result[unit]["baseline"] == pytest.approx(rate(refs, [r["hyp"] for r in worse]))
        assert result[unit]["candidate"] == pytest.approx(rate(refs, [r["hyp"] for r in better]))
    lo, hi = result["cer"]["ci95"]
    assert 0 < lo <= result["cer"]["relative_reduction"] <= hi and result["cer"]["p_not_better"] == 0.0
    same = paired_bootstrap(worse, worse, resamples=200)["cer"]
    assert same["relative_reduction"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p_not_better"] == 1.0
    with pytest.raises(ValueError, match="u5"):
        paired_bootstrap(worse, worse[:5])

    (tmp_path / "a.json").write_text(json.dumps({"per_utterance": worse}))
    (tmp_path / "b.json").write_text(json.dumps({"per_utterance": worse[:5]}))
    (tmp_path / "bad.json").write_text("{")
    assert main(["evaluate", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) != 0
    assert main(["evaluate", "compare", str(tmp_path / "a.json"), str(tmp_path / "bad.json")]) != 0


def test_label_subset_is_deterministic(demo_data):
    cuts = load_cuts(demo_data, "train")
    a, b = label_subset(cuts, 0.3, seed=0), label_subset(cuts, 0.3, seed=0)
    assert [c.id for c in a] == [c.id for c in b]
    total = sum(c.duration for c in a)
    assert 18 <= total <= 18 + max(c.duration for c in cuts)
    assert [c.id for c in label_subset(cuts, 0.3, seed=1)] != [c.id for c in a]


ASR_OVERRIDES = [o for o in SMALL_OVERRIDES if o.startswith(("model.encoder.", "model.features.", "data.", "trainer.")) and "crop" not in o] + [
    "optim.warmup_steps=2", "optim.total_steps=50", "val_every=3", "freeze_encoder_steps=100"]


def test_finetune_from_pretrained_freezes_then_transcribes_aligns_and_evaluates(demo_data, tmp_path):
    from uniwav.cli.main import main
    from uniwav.models.uniwav import UniWav

    assert main(["pretrain", "--data", str(demo_data), "--out", str(tmp_path / "pre"), "--max-steps", "2", "--no-progress", *SMALL_OVERRIDES]) == 0
    asr = tmp_path / "asr"
    overrides = [o for o in ASR_OVERRIDES if not o.startswith(("model.encoder.", "model.features."))]
    assert main(["finetune-asr", "--init", str(tmp_path / "pre"), "--data", str(demo_data), "--out", str(asr), "--label-minutes", "0.5",
                 "--max-steps", "4", "--no-progress", *overrides]) == 0
    model = CTCModel.from_pretrained(asr)
    pre = UniWav.from_pretrained(tmp_path / "pre")
    for k, v in pre.backbone.encoder.state_dict().items():  # initialised from the pre-trained encoder, still frozen
        assert torch.equal(model.encoder.state_dict()[k], v), k
    assert model.cfg.features == pre.cfg.features
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(asr / "tb"))
    events.Reload()
    assert {"val/wer", "val/cer", "val/blank_ratio", "loss/ctc"} <= set(events.Tags()["scalars"])

    out = tmp_path / "eval.json"
    assert main(["evaluate", "asr", "--model", str(asr), "--data", str(demo_data), "--split", "test", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"wer", "cer", "n", "per_utterance"} and result["n"] == len(result["per_utterance"]) > 0
    assert main(["evaluate", "compare", str(out), str(out), "--json", str(tmp_path / "same.json")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    assert same["cer"]["candidate"] == pytest.approx(result["cer"]) and same["cer"]["relative_reduction"] == 0.0
    assert main(["align", "--model", str(asr), "--data", str(demo_data), "--out", str(tmp_path / "align"), "--splits", "test"]) == 0
    with gzip.open(tmp_path / "align" / "test.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    for row in rows:
        assert len(row["spans"]) == len(row["text"])
        starts = [s for s, _ in row["spans"]]
        assert starts == sorted(starts) and row["spans"][-1][1] <= row["num_frames"]
    wav = load_cuts(demo_data, "test")[0].load_audio()[0]
    assert isinstance(transcribe(model, wav), str) and len(transcribe(model, [wav, wav], beam=3)) == 2


def test_finetune_from_scratch_learns(demo_data, tmp_path):
    from uniwav.training.finetune_asr import finetune_asr

    run = tmp_path / "scratch"
    finetune_asr(demo_data, run, "none", None, ASR_OVERRIDES + ["freeze_encoder_steps=0", "optim.lr=2e-3", "model.mask_prob=0.0",
                                                                "model.channel_mask_prob=0.0", "val_every=1000"],
                 label_minutes=0.2, max_steps=40, progress=False)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    losses = [e.value for e in events.Scalars("loss/ctc")]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def _read_arpa(path):
    """{ngram: prob}, {ngram: back-off weight} from an ARPA file (log10 values)."""
    probs, bows = {}, {}
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2:
            gram = tuple(parts[1].split())
            probs[gram] = 10 ** float(parts[0])
            if len(parts) == 3:
                bows[gram] = 10 ** float(parts[2])
    return probs, bows


def _arpa_prob(probs, bows, gram):
    if gram in probs:
        return probs[gram]
    if len(gram) == 1:
        return probs[("<unk>",)]
    return bows.get(gram[:-1], 1.0) * _arpa_prob(probs, bows, gram[1:])


def test_built_language_model_is_a_normalised_backoff_model(tmp_path):
    from uniwav.inference.lm import LanguageModelError, build_arpa

    texts = ["the cat sat", "the cat ran", "a dog sat on the mat", "the dog ran", "cat cat"]
    probs, bows = _read_arpa(build_arpa(texts, tmp_path / "lm.arpa", order=3))
    vocab = [g[0] for g in probs if len(g) == 1 and g[0] != "<s>"]
    assert {"the", "cat", "</s>", "<unk>"} <= set(vocab)
    for history in [(), ("<s>",), ("the",), ("the", "cat"), ("<s>", "the"), ("mat",), ("dog", "the"), ("zebra",)]:
        assert sum(_arpa_prob(probs, bows, history + (w,)) for w in vocab) == pytest.approx(1.0, abs=1e-4), history
    assert _arpa_prob(probs, bows, ("the", "cat")) > _arpa_prob(probs, bows, ("the", "mat")) > _arpa_prob(probs, bows, ("the", "sat"))
    with pytest.raises(LanguageModelError):
        build_arpa(["", "  "], tmp_path / "empty.arpa")


def _spelled_log_probs(vocab, frames_of):
    """log_probs [T, V]: each (characters -> probability) dict becomes 2 frames followed by a blank frame."""
    rows = []
    for dist in frames_of:
        for _ in range(2):
            row = np.full(len(vocab), 1e-4)
            for ch, p in dist.items():
                row[vocab.index[ch]] = p
            rows.append(row / row.sum())
        blank = np.full(len(vocab), 1e-4)
        blank[0] = 1.0
        rows.append(blank / blank.sum())
    return np.log(np.stack(rows)).astype(np.float32)


def test_language_model_beam_search_prefers_the_likely_word(tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder.kenlm", reason="the lm extra is not installed: pip install 'uniwav[lm]'")
    from uniwav.inference.lm import LanguageModelError, LMDecoder, build_arpa

    vocab = CharVocabulary.from_texts(["the cat ran", "kit"])
    lm = build_arpa(["the cat ran"] * 20 + ["a kit"], tmp_path / "lm.arpa", order=2)
    # the acoustics say "the kat ran" (k slightly more likely than c); the LM knows "cat"
    lp = _spelled_log_probs(vocab, [{"t": 1}, {"h": 1}, {"e": 1}, {" ": 1}, {"k": 0.55, "c": 0.45}, {"a": 1}, {"t": 1}, {" ": 1},
                                    {"r": 1}, {"a": 1}, {"n": 1}])
    decoder = LMDecoder(vocab, lm, alpha=1.0, beta=0.0)
    probs, bows = _read_arpa(lm)  # KenLM reads our file as the back-off model we meant
    words = ["<s>", "the", "cat", "sat", "</s>"]
    ours = sum(math.log10(_arpa_prob(probs, bows, tuple(words[i - 1:i + 1]))) for i in range(1, len(words)))
    state, kenlm_total = decoder.lm.start(False), 0.0
    for w in words[1:-1]:
        state, score = decoder.lm.score(state, decoder.words.get_index(w))
        kenlm_total += score
    assert kenlm_total + decoder.lm.finish(state)[1] == pytest.approx(ours, abs=1e-4)
    assert vocab.decode(greedy_decode(lp)) == "the kat ran"
    assert decoder.decode(lp, beam=16) == "the cat ran"
    assert LMDecoder(vocab, lm).decode(lp) == "the cat ran"  # the defaults; "kat" is not a word of the LM
    with pytest.raises(LanguageModelError, match="not found"):
        LMDecoder(vocab, tmp_path / "missing.arpa")
    (tmp_path / "bad.arpa").write_text("not a language model\n")
    with pytest.raises(LanguageModelError, match="bad.arpa"):
        LMDecoder(vocab, tmp_path / "bad.arpa")
