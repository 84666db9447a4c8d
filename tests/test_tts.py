"""In-context text-to-speech: frame tokens, masking, guidance, durations, sampling, prompts, CLI."""

import json
import random

import numpy as np
import pytest
import soundfile as sf
import torch

from uniwav.config import TTSModelConfig
from uniwav.data.text import VocabularyError
from uniwav.inference.tts import PromptError, check_prompt, crossfade, speak, split_sentences, synthesize
from uniwav.models.flow import guided_velocity
from uniwav.models.tts import NO_TEXT, SILENCE, DurationPredictor, TTSModel, alignment_tokens, expand_tokens
from uniwav.models.uniwav import UniWav
from uniwav.training.finetune_tts import generation_mask

from conftest import SMALL_OVERRIDES, small_model_config, tone


def small_tts():
    return TTSModel.from_pretrained_backbone(
        UniWav(small_model_config()), TTSModelConfig(vocab=list(" abc"), text_dim=8, duration_dim=8, duration_layers=2)
    )


def test_alignment_tokens_expand_to_frames():
    row = {"id": "u", "text": "ab a", "num_frames": 12, "spans": [[2, 3], [4, 5], [7, 8], [9, 10]]}
    index = {" ": 2, "a": 3, "b": 4}
    tokens, durations = alignment_tokens(row, index)
    assert tokens == [SILENCE, 3, 4, 2, 3] and durations == [2, 2, 3, 2, 3] and sum(durations) == 12
    frames = expand_tokens(torch.tensor(tokens), torch.tensor(durations))
    assert frames.tolist() == [1, 1, 3, 3, 4, 4, 4, 2, 2, 3, 3, 3]
    assert expand_tokens(torch.tensor(tokens), torch.tensor(durations), 14).tolist()[-2:] == [NO_TEXT, NO_TEXT]
    with pytest.raises(VocabularyError, match="'z'"):
        alignment_tokens({**row, "text": "az a"}, index)


def test_generation_mask_is_one_span_and_keeps_a_prompt():
    rng = random.Random(0)
    for _ in range(50):
        m = generation_mask(40, 50, 0.7, 0.9, rng)
        idx = m.nonzero()[:, 0]
        assert 28 <= len(idx) <= 36 and idx.max() < 40
        assert (idx[1:] - idx[:-1] == 1).all()  # contiguous
        assert (~m[:40]).sum() >= 4  # some audio context remains


def test_guidance_combination():
    c, u = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])
    torch.testing.assert_close(guided_velocity(c, u, 0.0), c)
    torch.testing.assert_close(guided_velocity(c, u, 2.0), c + 2 * (c - u))


def test_duration_predictor_shapes_and_padding():
    dp = DurationPredictor(6, 8, 2, dropout=0.0).eval()
    tokens = torch.tensor([[1, 2, 3, 0], [1, 4, 0, 0]])
    pad = torch.tensor([[False, False, False, True], [False, False, True, True]])
    out = dp(tokens, pad)
    assert out.shape == (2, 4)
    alone = dp(tokens[1:, :2])
    torch.testing.assert_close(out[1, :2], alone[0])  # padding does not leak into valid tokens


def test_fresh_model_conditions_exactly_like_the_pretrained_infiller():
    pre = UniWav(small_model_config()).eval()
    tts = TTSModel.from_pretrained_backbone(pre, TTSModelConfig(vocab=list(" abc"), text_dim=8, duration_dim=8, duration_layers=2)).eval()
    feats = torch.randn(1, 30, 20)
    mask = torch.zeros(1, 30, dtype=torch.bool)
    mask[0, 10:] = True
    z = pre.backbone.mix(pre.backbone.encoder(feats, None, mask).hidden)
    torch.testing.assert_close(tts.condition(feats, mask, torch.full((1, 30), 3), None), z)


def test_training_forward_masks_and_drops():
    tts = small_tts().train()
    feats = torch.randn(2, 20, 20)
    tokens = torch.tensor([[1, 3, 4], [1, 5, 0]])
    out = tts(feats, torch.tensor([20, 15]), torch.full((2, 20), 3), tokens, torch.tensor([[5, 10, 5], [5, 10, 0]]),
              torch.tensor([3, 2]), torch.ones(2, 20, dtype=torch.bool), torch.tensor([False, True]))
    assert torch.isfinite(out.loss) and out.mask[1, 15:].sum() == 0
    out.loss.backward()
    assert tts.text_proj.weight.grad is not None and tts.duration.out.weight.grad is not None


def test_seeded_sampling_is_deterministic():
    tts = small_tts().eval()
    prompt = torch.randn(25, 20)
    tokens = tts.encode_text("ab")
    a = tts.generate(prompt, tokens, torch.tensor([2, 3, 3]), nfe=2, guidance=1.0, seed=7)
    b = tts.generate(prompt, tokens, torch.tensor([2, 3, 3]), nfe=2, guidance=1.0, seed=7)
    c = tts.generate(prompt, tokens, torch.tensor([2, 3, 3]), nfe=2, guidance=1.0, seed=8)
    assert a.shape == (8, 20) and torch.equal(a, b) and not torch.equal(a, c)


def test_sentence_splitting_and_crossfade():
    assert split_sentences("One two. Three four! Five?", max_chars=12) == ["One two.", "Three four!", "Five?"]
    assert split_sentences("One two. Three four! Five?", max_chars=200) == ["One two. Three four! Five?"]
    long = "word " * 100
    assert all(len(p) <= 50 for p in split_sentences(long, max_chars=50))
    a, b = np.ones(1000, dtype=np.float32), np.zeros(1000, dtype=np.float32)
    out = crossfade([a, b], 16000, ms=10)  # 160-sample overlap
    assert len(out) == 2000 - 160 and out[0] == 1 and out[-1] == 0 and np.all(np.diff(out) <= 1e-6)


def test_bad_prompts_are_named():
    with pytest.raises(PromptError, match="p.wav: 0.50 s is too short"):
        check_prompt(tone(0.5), 16000, "p.wav")
    with pytest.raises(PromptError, match="silent"):
        check_prompt(np.zeros(32000, dtype=np.float32), 16000)
    assert len(check_prompt(tone(12.0), 16000)) == 10 * 16000
    tts = small_tts().eval()
    from uniwav.inference.vocoders import Synthesizer

    with pytest.raises(VocabularyError, match="'z'"):
        synthesize(tts, tone(2.0), "zebra", Synthesizer(tts.cfg.features))


def test_finetune_tts_speak_and_evaluate(demo_data, tmp_path):
    from uniwav.cli.main import main

    pre, asr, align, tts = (tmp_path / n for n in ("pre", "asr", "align", "tts"))
    assert main(["pretrain", "--data", str(demo_data), "--out", str(pre), "--max-steps", "2", "--no-progress", *SMALL_OVERRIDES]) == 0
    assert main(["finetune-asr", "--init", str(pre), "--data", str(demo_data), "--out", str(asr), "--max-steps", "2", "--no-progress",
                 "data.num_workers=0", "data.max_duration=6", "freeze_encoder_steps=0", "optim.warmup_steps=1", "val_every=1000"]) == 0
    assert main(["align", "--model", str(asr), "--data", str(demo_data), "--out", str(align)]) == 0
    args = ["finetune-tts", "--init", str(pre), "--data", str(demo_data), "--alignments", str(align), "--out", str(tts), "--no-progress",
            "--asr", str(asr), "data.num_workers=0", "data.max_duration=6", "optim.warmup_steps=1", "trainer.sample_every=2", "trainer.log_every=1",
            "model.text_dim=8", "model.duration_dim=8", "trainer.monitor_utterances=2"]
    assert main([*args, "--max-steps", "3"]) == 0
    model = TTSModel.from_pretrained(tts)
    assert set(model.cfg.vocab) >= set("abc ")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tts / "tb"))
    events.Reload()
    tags = events.Tags()
    assert {"loss/flow", "loss/duration", "monitor/tts/asr_cer", "monitor/tts/speaker_sim"} <= set(tags["scalars"])
    assert any(t.startswith("monitor/tts/") for t in tags["audio"]) and "monitor/tts/mel" in tags["images"]
    from uniwav.data.manifests import load_cuts

    wav = load_cuts(demo_data, "test")[0].load_audio()[0]
    import soxr

    sf.write(tmp_path / "prompt8k.wav", soxr.resample(wav, 16000, 8000), 8000)  # another rate: converted
    out = tmp_path / "out.wav"
    assert main(["tts", "--model", str(tts), "--prompt", str(tmp_path / "prompt8k.wav"), "--text", "a cat. a bat.", "-o", str(out),
                 "--nfe", "2", "--prompt-text", "hello there"]) == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) > 0
    sf.write(tmp_path / "short.wav", wav[:4000], 16000)
    assert main(["tts", "--model", str(tts), "--prompt", str(tmp_path / "short.wav"), "--text", "a", "-o", str(tmp_path / "x.wav")]) == 2
    result_path = tmp_path / "tts.json"
    assert main(["evaluate", "tts", "--model", str(tts), "--data", str(demo_data), "--nfe", "2", "4", "--max-pairs", "2",
                 "--asr", str(asr), "--json", str(result_path)]) == 0
    result = json.loads(result_path.read_text())
    assert set(result["rows"]) == {"ground truth (vocoded)", "tts nfe=2 cfg=2 sway=-1", "tts nfe=4 cfg=2 sway=-1"} and result["n"] == 2
    assert all("asr_cer" in r for r in result["rows"].values())
    # the from-scratch baseline trains the same architecture
    assert main(["finetune-tts", "--init", "none", "--data", str(demo_data), "--alignments", str(align), "--out", str(tmp_path / "scratch"),
                 "--max-steps", "1", *args[9:],
                 "model.encoder.dim=32", "model.encoder.layers=2", "model.encoder.heads=2", "model.encoder.ffn_dim=64",
                 "model.encoder.pos_conv_kernel=5", "model.encoder.pos_conv_groups=4", "model.decoder.dim=32", "model.decoder.layers=2",
                 "model.decoder.heads=2", "model.decoder.ffn_dim=64", "model.decoder.pos_conv_kernel=5", "model.decoder.pos_conv_groups=4",
                 "model.features.n_mels=20"]) == 0


def test_python_api_speaks():
    tts = small_tts().eval()
    out = speak(tts, tone(2.0), "a cab", nfe=2, prompt_text="abc")
    assert out.dtype == np.float32 and out.ndim == 1 and len(out) > 0
