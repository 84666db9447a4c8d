"""Opt-in ``torch.compile`` of the Transformer stacks, the only place where it pays.

Only the stacks (the encoder's context network, the EMA teacher, the flow decoder) are compiled,
in place (``nn.Module.compile``), so parameter names and checkpoints do not change and the code
around them (masking, codebooks, losses: data-dependent shapes) stays eager. On a CPU the gain is
the fusion of layer norms, GELUs, residual adds and biases between the matrix multiplies
(``uniwav bench`` measures it). Without a working C++ compiler, dynamo falls back to eager code.
"""

from __future__ import annotations

import logging

from torch import nn

log = logging.getLogger(__name__)


def stacks(model: nn.Module) -> list[nn.Module]:
    """The outermost Transformer stacks inside ``model`` (ContextNetwork, FlowDecoder)."""
    from uniwav.models.decoder import FlowDecoder
    from uniwav.models.encoder import ContextNetwork

    found, seen = [], set()
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in seen):
            continue
        if isinstance(module, (ContextNetwork, FlowDecoder)):
            found.append(module)
            seen.add(name)
    return found


def compile_stacks(model: nn.Module) -> int:
    """Compile every Transformer stack of ``model`` in place; returns how many were compiled.
    Sequence lengths vary between batches, so shapes are dynamic from the first recompilation on."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a missing compiler means eager, not a crash
    found = stacks(model)
    for module in found:
        module.compile()
    log.info("torch.compile: %d Transformer stacks", len(found))
    return len(found)
