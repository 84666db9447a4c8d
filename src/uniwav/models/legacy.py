"""Checkpoints and exports written by older versions, upgraded to today's layout when they are
loaded: the one module that knows the old layouts (``PretrainedMixin.from_pretrained`` and a
training task's resume call it; the fixtures in tests/fixtures/legacy_v0 are such files).

uniwav <= 0.1 (main@99a015a):
- the backbone's parts (``encoder.``, ``decoder.``, ``layer_weights``) were top-level modules of
  ``UniWav``, ``SpeechTokenizer`` and ``TTSModel``; they now live under ``backbone.``;
- the online codebooks had no ``initialized`` buffer (their codewords were in use);
- a ``UniWav`` training run's optimizer state is in the parameter order of its old top-level modules.
"""

from __future__ import annotations

import torch

BACKBONE_PARTS = ("encoder.", "decoder.", "layer_weights")
BACKBONE_MODELS = ("uniwav", "tokenizer", "tts")
# UniWav's parameter order before the backbone had its own module (own parameters first, then submodules in registration order)
UNIWAV_MODULE_ORDER = ("layer_weights", "features", "encoder", "teacher", "codebooks", "heads", "decoder")


def upgrade_state_dict(model_type: str, state: dict, prefix: str = "") -> dict:
    """``state`` (keys under ``prefix``) in today's layout; the same object when nothing was old."""
    out = state
    if model_type in BACKBONE_MODELS and not any(k.startswith(prefix + "backbone.") for k in state):
        parts = tuple(prefix + p for p in BACKBONE_PARTS)
        out = {(prefix + "backbone." + k[len(prefix):] if k.startswith(parts) else k): v for k, v in state.items()}
    codebooks = prefix + "codebooks."
    if model_type == "uniwav" and codebooks + "codewords" in out and codebooks + "initialized" not in out:
        out = {**out, codebooks + "initialized": torch.tensor(True)}
    return out


def upgrade_training_checkpoint(model_type: str, checkpoint: dict, make_optimizer, named_parameters) -> None:
    """A training checkpoint (Lightning's dict; the model's keys under ``model.``) in today's layout, in place:
    its state dict, and for a run written before the backbone had its own module, its optimizer state put in
    today's parameter order (the state is a list in parameter order). ``make_optimizer()``: an optimizer as
    today's task builds it; ``named_parameters()``: today's model's."""
    state = checkpoint["state_dict"]
    moved = model_type in BACKBONE_MODELS and not any(k.startswith("model.backbone.") for k in state)
    checkpoint["state_dict"] = upgrade_state_dict(model_type, state, "model.")
    if not (moved and model_type == "uniwav" and checkpoint.get("optimizer_states")):
        return
    optimizer = make_optimizer()
    names = {id(p): n for n, p in named_parameters()}
    new = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    starts, groups = 0, []
    for group in optimizer.param_groups:  # old order: by the old top-level module, stable within each group
        block = new[starts: starts + len(group["params"])]
        groups.append(sorted(block, key=lambda n: UNIWAV_MODULE_ORDER.index(n.removeprefix("backbone.").split(".")[0])))
        starts += len(block)
    old_index = {name: i for i, name in enumerate(n for g in groups for n in g)}
    saved = checkpoint["optimizer_states"][0]
    saved["state"] = {j: saved["state"][old_index[name]] for j, name in enumerate(new) if old_index[name] in saved["state"]}
