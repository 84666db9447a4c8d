"""Analytic FLOP count of one UniWav pre-training step (a multiply-add = 2 FLOPs).

Counted: every matrix multiply and convolution (linear layers, attention scores and values,
position convolutions, codebook distances and statistics). Not counted: element-wise work (norms, activations,
softmax, losses, optimizer, EMA), which is small next to the matmuls at these widths.

Training = forward + backward of the trained parts (backward = 2 x forward), plus forward only for
the EMA teacher and the codebook assignment:

    step = 3 * (student encoder + heads + decoder) + teacher + assignment

Shapes: B utterances of T frames (no padding), ``masked`` frames in total.
"""

from __future__ import annotations

from uniwav.config import ModelConfig


def _linear(n: int, d_in: int, d_out: int) -> int:
    return 2 * n * d_in * d_out


def _attention_block(B: int, T: int, D: int, F: int) -> int:
    """qkv, scores, weighted values, output projection, feed-forward."""
    N = B * T
    return _linear(N, D, 3 * D) + 2 * B * T * T * D + 2 * B * T * T * D + _linear(N, D, D) + _linear(N, D, F) + _linear(N, F, D)


def _pos_conv(N: int, D: int, kernel: int, groups: int) -> int:
    return 2 * N * D * (D // groups) * kernel


def context_flops(cfg, B: int, T: int) -> int:
    """Forward of an encoder context network (position conv + blocks): EncoderConfig cfg."""
    return _pos_conv(B * T, cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups) + cfg.layers * _attention_block(B, T, cfg.dim, cfg.ffn_dim)


def pretrain_step_flops(cfg: ModelConfig, B: int, T: int, masked: int) -> dict:
    e, c, d = cfg.encoder, cfg.clustering, cfg.decoder
    M, N = cfg.features.n_mels, B * T
    embed = _linear(N, M, e.dim)
    student = embed + context_flops(e, B, T)
    heads = _linear(masked, e.dim, c.top_layers * c.codebook_size)
    teacher = embed + context_flops(e, B, T)
    assign = 2 * c.top_layers * 2 * masked * c.codebook_size * e.dim  # distances + the EMA statistics (one-hot^T x)
    decoder = 0
    if cfg.decoder_loss_weight > 0:
        decoder = (_linear(N, M + e.dim, d.dim) + _pos_conv(N, d.dim, d.pos_conv_kernel, d.pos_conv_groups)
                   + d.layers * _attention_block(B, T, d.dim, d.ffn_dim)
                   + d.layers * _linear(B, d.dim, 6 * d.dim)  # adaLN modulation
                   + (d.layers // 2) * _linear(N, 2 * d.dim, d.dim)  # U-Net skips
                   + _linear(B, d.time_embed_dim, d.dim) + _linear(B, d.dim, d.dim) + _linear(B, d.dim, 2 * d.dim)  # time MLP, final
                   + _linear(N, d.dim, M))
    forward_trained = student + heads + decoder
    return {"student_forward": student, "heads_forward": heads, "decoder_forward": decoder, "teacher_forward": teacher,
            "assignment": assign, "total": 3 * forward_trained + teacher + assign}
