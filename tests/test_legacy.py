"""Models written by uniwav 0.1 (main@99a015a, before the backbone, flow-matching and quantisation
modules were consolidated) still load and give the same outputs; their training runs still resume."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uniwav.checkpoint import load_checkpoint
from uniwav.models.ctc import CTCModel
from uniwav.models.tokenizer import SpeechTokenizer
from uniwav.models.tts import TTSModel
from uniwav.models.uniwav import UniWav
from uniwav.models.vocoder import Vocoder

LEGACY = Path(__file__).parent / "fixtures" / "legacy_v0"


@pytest.fixture(scope="module")
def expected():
    with np.load(LEGACY / "expected.npz") as z:
        return {k: z[k] for k in z.files}


def close(actual, expected, atol=1e-4):
    np.testing.assert_allclose(np.asarray(actual), expected, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("where", ["run_pre", "export_pre"])
def test_pretrained_model_loads_and_gives_the_same_outputs(where, expected):
    model = UniWav.from_pretrained(LEGACY / where)
    wav = expected["wav"]
    close(model.extract(wav)["z"], expected["uniwav_z"])
    feats, frames = model.features.prepare(wav)
    mask = torch.zeros_like(feats[..., 0], dtype=torch.bool)
    mask[:, 20:50] = True
    close(model.infill(feats, mask, frames, nfe=4, method="midpoint", sway=0.0, context_path=False, seed=3), expected["uniwav_infill"])


@pytest.mark.parametrize("where", ["run_asr", "export_asr"])
def test_recogniser_loads_and_gives_the_same_log_probs(where, expected):
    model = CTCModel.from_pretrained(LEGACY / where)
    close(model.log_probs(expected["wav"])[0], expected["ctc_log_probs"])


def test_tokenizer_tts_and_vocoder_exports_give_the_same_outputs(expected):
    wav = expected["wav"]
    tok = SpeechTokenizer.from_pretrained(LEGACY / "export_tok")
    codes, frames = tok.encode(wav, num_quantizers=2)
    assert np.array_equal(codes.numpy(), expected["tok_codes"])
    close(tok.decode(codes, frames, nfe=4, method="midpoint", sway=0.0, seed=1), expected["tok_decode"])
    tts = TTSModel.from_pretrained(LEGACY / "export_tts")
    tokens = tts.encode_text("a cab")
    close(tts.predict_durations(tokens), expected["tts_durations"])
    feats, _ = tts.features.prepare(wav)
    out = tts.generate(feats[0, :40], tokens, torch.tensor([2, 3, 3, 2, 3, 3]), nfe=4, method="midpoint", sway=0.0, guidance=1.0,
                       context_path=False, seed=5)
    close(out, expected["tts_generate"])
    voc = Vocoder.from_pretrained(LEGACY / "export_voc")
    with torch.no_grad():
        close(voc(voc.features.raw(torch.from_numpy(wav)[None])[0]), expected["vocoder_wav"], atol=1e-5)


def test_legacy_pretraining_run_resumes_with_its_optimizer_state_in_order():
    """The optimizer state of a 0.1 run is a list in 0.1's parameter order; resuming maps it onto today's."""
    from uniwav.training.pretrain import PretrainTask

    ckpt = load_checkpoint(LEGACY / "run_pre" / "checkpoints" / "last.ckpt")
    task = PretrainTask(ckpt["hyper_parameters"]["config"])
    saved_state = dict(ckpt["optimizer_states"][0]["state"])  # as 0.1 wrote it (on_load_checkpoint re-keys it)
    task.on_load_checkpoint(ckpt)
    task.load_state_dict(ckpt["state_dict"])
    optimizer = task.configure_optimizers()["optimizer"]
    optimizer.load_state_dict(ckpt["optimizer_states"][0])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(optimizer.state) == len(params)
    for p in params:
        assert optimizer.state[p]["exp_avg"].shape == p.shape
    # each parameter got the moments 0.1 saved for it (its name in 0.1's order, recorded by the fixture's writer)
    old_order = json.loads((LEGACY / "run_pre" / "optimizer_parameter_order.json").read_text())
    by_name = dict(task.model.named_parameters())
    for i, old_name in enumerate(old_order):
        new_name = old_name if old_name.startswith(("teacher.", "codebooks.", "heads.")) else "backbone." + old_name
        assert torch.equal(optimizer.state[by_name[new_name]]["exp_avg"], saved_state[i]["exp_avg"]), old_name
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()  # a mismatch would fail here
