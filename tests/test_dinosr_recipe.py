"""DinoSR's recipe pieces that the `base` preset uses (docs/METHOD.md): the tri-stage schedule, a teacher
that averages only the Transformer blocks and freezes with its front end, the 5-layer positional convolution."""

import pytest
import torch

from uniwav.config import PretrainConfig, load_config
from uniwav.models.ema import ema_update
from uniwav.models.layers import lengths_to_padding_mask
from uniwav.models.uniwav import UniWav
from uniwav.training.schedule import tri_stage

from conftest import small_model_config
from test_model import padded_batch


def test_tri_stage_warms_up_holds_and_decays_exponentially():
    total, ratios = 1000, [0.03, 0.47, 0.50]
    lr = [tri_stage(s, total, ratios) for s in range(total + 50)]
    assert lr[0] == pytest.approx(0.01) and lr[30] == lr[499] == 1.0 and lr[15] == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr[500] == 1.0 and lr[750] == pytest.approx(0.1) and lr[1000] == pytest.approx(0.01) and lr[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lr[500:], lr[501:]))


def test_base_preset_is_dinosr_base():
    cfg = load_config(PretrainConfig, "base")
    e, c, o = cfg.model.encoder, cfg.model.clustering, cfg.optim
    assert (e.dim, e.layers, e.norm_first, e.layer_drop, e.pos_conv_depth, e.pos_conv_kernel) == (768, 12, False, 0.05, 5, 95)
    assert (c.top_layers, c.codebook_size, c.codebook_decay, c.freeze_teacher_step, c.teacher_shares_pos_conv) == (8, 256, 0.9, 200000, True)
    assert (o.lr, tuple(o.betas), o.eps, o.weight_decay, o.schedule, o.total_steps) == (5e-4, (0.9, 0.98), 1e-6, 0.01, "tri_stage", 400000)


@pytest.mark.parametrize("preset", ["base", "large"])
def test_the_librilight_recipes_train_their_presets(preset):
    from pathlib import Path

    recipe = load_config(PretrainConfig, str(Path(__file__).parents[1] / "recipes" / "librilight" / f"{preset}.yaml"))
    reference = load_config(PretrainConfig, preset)
    assert recipe.model == reference.model and recipe.optim == reference.optim  # only the data pipeline and the trainer differ


def test_the_librispeech_fine_tuning_recipe_is_fairseqs_base_100h(tmp_path):
    from pathlib import Path

    from uniwav.config import FinetuneASRConfig
    from uniwav.training.finetune_asr import ASRTask

    cfg = load_config(FinetuneASRConfig, str(Path(__file__).parents[1] / "recipes" / "librispeech" / "finetune_100h.yaml"))
    m, o = cfg.model, cfg.optim
    assert (m.mask_prob, m.mask_span, m.channel_mask_prob, m.channel_mask_span, m.final_dropout) == (0.65, 10, 0.5, 64, 0.0)
    assert (cfg.layer_drop, cfg.freeze_front_end, cfg.freeze_encoder_steps, cfg.encoder_lr_scale) == (0.1, True, 10000, 1.0)
    assert (o.lr, o.schedule, tuple(o.tri_stage_ratios), o.total_steps) == (3e-5, "tri_stage", (0.1, 0.4, 0.5), 80000)
    cfg.model.vocab = ["<blank>", "a"]
    task = ASRTask.from_config(cfg)
    assert not any(p.requires_grad for p in task.model.encoder.input_proj.parameters())  # feature_grad_mult 0
    assert all(p.requires_grad for p in task.model.encoder.context.parameters())


def test_teacher_averages_blocks_and_uses_the_students_positional_convolution():
    model = UniWav(small_model_config())
    student, teacher = model.backbone.encoder.context, model.teacher
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema_update(teacher, student, 0.9, ("pos_conv.",))
    for name, p in student.named_parameters():
        t = dict(teacher.named_parameters())[name]
        expected = p if name.startswith("pos_conv.") else 0.9 * before[name] + 0.1 * p
        torch.testing.assert_close(t, expected.detach(), msg=name)


def test_a_frozen_teacher_and_its_front_end_stop_moving():
    cfg = small_model_config()
    cfg.clustering.freeze_teacher_step = 5
    model = UniWav(cfg)
    assert model.teacher_decay(4) < 1.0 and model.teacher_decay(5) == model.teacher_decay(10**6) == 1.0
    model.after_optimizer_step(5)
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    front = {k: v.clone() for k, v in model.backbone.encoder.input_proj.state_dict().items()}
    with torch.no_grad():  # what an optimizer step would do to the student
        for p in model.backbone.encoder.parameters():
            p.add_(0.5)
    model.after_optimizer_step(6)
    assert all(torch.equal(v, model.teacher.state_dict()[k]) for k, v in teacher.items())
    assert all(torch.equal(v, model.backbone.encoder.input_proj.state_dict()[k]) for k, v in front.items())
    student = dict(model.backbone.encoder.context.named_parameters())  # the student itself still learns
    assert any(not torch.equal(p, student[k]) for k, p in model.teacher.named_parameters())


def test_deep_positional_convolution_is_padding_invariant():
    cfg = small_model_config()
    cfg.encoder.pos_conv_depth, cfg.encoder.pos_conv_kernel = 3, 9
    model = UniWav(cfg).eval()
    assert len(model.backbone.encoder.context.pos_conv.convs) == 3
    feats, lens = padded_batch([37, 23], 20)
    with torch.no_grad():
        out = model.backbone.encoder(feats, lengths_to_padding_mask(lens))
        for i, n in enumerate(lens.tolist()):
            torch.testing.assert_close(out.final[i, :n], model.backbone.encoder(feats[i: i + 1, :n]).final[0], atol=1e-5, rtol=1e-4)
