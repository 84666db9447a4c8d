"""The shared flow-matching sampler (time grids, guidance, seeds) and the learning-curve monitor."""

import json

import pytest
import torch

from uniwav.config import ConfigError, SamplerConfig
from uniwav.models.flow import FlowMatcher, guided_velocity, solve_ode, time_grid

from conftest import SMALL_OVERRIDES


def test_sway_grid_starts_at_zero_ends_at_one_and_spends_its_steps_early():
    uniform, sway = time_grid(8), time_grid(8, sway=-1.0)
    for grid in (uniform, sway):
        assert grid[0] == 0 and grid[-1] == pytest.approx(1.0) and (grid[1:] > grid[:-1]).all()
    assert sway[1] < uniform[1] / 2  # F5-TTS: s = -1 makes the first step much shorter
    assert (time_grid(8, sway=1.0)[1:4] > uniform[1:4]).all()


def test_solvers_integrate_a_known_field_on_any_grid():
    x0 = torch.ones(1, 1, 1)
    for sway in (0.0, -1.0, 0.5):
        out = solve_ode(lambda x, t: x, x0, nfe=64, method="midpoint", sway=sway).item()
        assert out == pytest.approx(torch.e, rel=2e-3)


class Net(torch.nn.Module):
    """A velocity network whose output depends on x, t and the condition."""

    def forward(self, x, t, cond, padding_mask=None):
        return torch.tanh(x * cond[..., :1] + t[:, None, None])


def test_guided_sampling_is_the_guidance_formula_evaluated_in_one_batch():
    fm, net = FlowMatcher(), Net()
    cond, uncond = torch.randn(2, 7, 3), torch.randn(2, 7, 3)
    sampler = SamplerConfig(nfe=4, method="euler", guidance=2.0)
    got = fm.sample(net, cond, 5, sampler, uncond=uncond, seed=3)
    x = torch.randn((2, 7, 5), generator=torch.Generator().manual_seed(3))
    for t0, t1 in zip(time_grid(4)[:-1].tolist(), time_grid(4)[1:].tolist()):
        t = torch.full((2,), t0)
        x = x + (t1 - t0) * guided_velocity(net(x, t, cond), net(x, t, uncond), 2.0)
    torch.testing.assert_close(got, x)
    with pytest.raises(ValueError, match="uncond"):
        fm.sample(net, cond, 5, sampler)


def test_sampling_is_deterministic_for_a_seed_and_settings_are_validated():
    fm, net, cond = FlowMatcher(), Net(), torch.randn(1, 4, 2)
    s = SamplerConfig(nfe=4, sway=-1.0)
    assert torch.equal(fm.sample(net, cond, 3, s, seed=1), fm.sample(net, cond, 3, s, seed=1))
    assert not torch.equal(fm.sample(net, cond, 3, s, seed=1), fm.sample(net, cond, 3, s, seed=2))
    for bad, message in ((SamplerConfig(nfe=3), "even NFE"), (SamplerConfig(nfe=0, method="euler"), "NFE >= 1"),
                         (SamplerConfig(sway=-2), "sway"), (SamplerConfig(guidance=-1), "guidance")):
        with pytest.raises(ConfigError, match=message):
            bad.validate()


def test_only_a_model_trained_with_condition_dropout_accepts_guidance():
    from uniwav.config import TokenizerModelConfig, TTSModelConfig

    TTSModelConfig(sampler=SamplerConfig(guidance=2.0)).validate()
    with pytest.raises(ConfigError, match="condition dropout"):
        TokenizerModelConfig(sampler=SamplerConfig(guidance=2.0)).validate()


def _tts_run(demo_data, tmp_path, name, sample_every):
    from uniwav.cli.main import main

    pre, asr, align = (tmp_path / n for n in ("pre", "asr", "align"))
    if not (align / "train.jsonl.gz").is_file():
        assert main(["pretrain", "--data", str(demo_data), "--out", str(pre), "--max-steps", "2", "--no-progress", *SMALL_OVERRIDES]) == 0
        assert main(["finetune-asr", "--init", str(pre), "--data", str(demo_data), "--out", str(asr), "--max-steps", "2", "--no-progress",
                     "data.num_workers=0", "data.max_duration=6", "freeze_encoder_steps=0", "optim.warmup_steps=1", "val_every=1000"]) == 0
        assert main(["align", "--model", str(asr), "--data", str(demo_data), "--out", str(align)]) == 0
    run = tmp_path / name
    assert main(["finetune-tts", "--init", str(pre), "--data", str(demo_data), "--alignments", str(align), "--out", str(run), "--no-progress",
                 "--asr", str(asr), "--max-steps", "4", "data.num_workers=0", "data.max_duration=6", "optim.warmup_steps=1",
                 f"trainer.sample_every={sample_every}", "trainer.log_every=1", "model.text_dim=8", "model.duration_dim=8",
                 "trainer.monitor_utterances=2", "model.encoder.dropout=0.1"]) == 0
    return run


def test_the_learning_curve_monitor_scores_generated_speech_and_does_not_change_training(demo_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from uniwav.checkpoint import load_checkpoint

    watched = _tts_run(demo_data, tmp_path, "watched", 1)  # the monitor runs after every update
    plain = _tts_run(demo_data, tmp_path, "plain", 1000)
    a = load_checkpoint(watched / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_checkpoint(plain / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    events = EventAccumulator(str(watched / "tb"))
    events.Reload()
    curve = events.Scalars("monitor/tts/asr_cer")
    assert [e.step for e in curve] == [1, 2, 3, 4] and all(0 <= e.value <= 5 for e in curve)
    assert len(events.Scalars("monitor/tts/speaker_sim")) == 4


def test_evaluate_tts_sweeps_settings_uses_true_durations_and_compares_models(demo_data, tmp_path):
    from uniwav.cli.main import main

    run = _tts_run(demo_data, tmp_path, "tts", 1000)
    common = ["evaluate", "tts", "--model", str(run), "--data", str(demo_data), "--max-pairs", "2", "--nfe", "2", "--whisper", "none",
              "--asr", str(tmp_path / "asr")]
    assert main([*common, "--json", str(tmp_path / "a.json")]) == 0
    assert main([*common, "--cfg", "0", "2", "--sway", "-1", "--compare", str(tmp_path / "a.json"), "--json", str(tmp_path / "b.json")]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    assert set(result["rows"]) == {"ground truth (vocoded)", "tts nfe=2 cfg=0 sway=-1", "tts nfe=2 cfg=2 sway=-1"}
    assert result["compare"]["baseline_system"] == "tts nfe=2 cfg=2 sway=-1" and result["compare"]["system"] == "tts nfe=2 cfg=0 sway=-1"
    assert set(result["compare"]) >= {"cer", "wer"}
    assert main([*common, "--durations", "predicted", "ground-truth", "--alignments", str(tmp_path / "align"),
                 "--json", str(tmp_path / "c.json")]) == 0
    result = json.loads((tmp_path / "c.json").read_text())
    assert set(result["rows"]) == {"ground truth (vocoded)", "tts nfe=2 cfg=2 sway=-1", "tts nfe=2 cfg=2 sway=-1 gt-durations"}
    rows = result["per_utterance"]["tts nfe=2 cfg=2 sway=-1 gt-durations"]
    assert rows and all({"id", "ref", "hyp", "asr_hyp"} <= set(r) for r in rows)
