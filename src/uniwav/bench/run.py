"""``uniwav bench``: speed and memory, each as a ratio against a reference timed in the same run.

- train_step.<preset>.mfu: analytic model FLOPs per pre-training step (``bench.flops``) / step time,
  divided by the matrix-multiply FLOP rate measured here for the same dtype.
- encoder_vs_hubert.<preset>.speedup: forward+backward of our encoder context network against
  transformers' HubertEncoderStableLayerNorm of the same shape and dropouts (SDPA attention on both),
  same input, same precision. > 1 = ours faster. speedup_bound: the most any implementation of the
  same math could gain (HuBERT's time over the analytic FLOPs at the measured matmul rate).
- attention.bf16.speedup (where training runs in bf16): one self-attention's forward+backward, our
  ``models.layers.attention`` against ``F.scaled_dot_product_attention``, same inputs. > 1 = ours faster.
- features.x_realtime_per_core: loading + our log-mel, seconds of audio per second on one thread,
  and the same for lhotse's Fbank (the reference).
- inference.*.rtf: processing time / audio duration (< 1 = faster than real time) for transcription,
  tokenize+detokenize and TTS at several NFE.
- onnx.*_onnx_speedup: the recogniser and the vocoder run by onnxruntime (``uniwav export --onnx``)
  against the same models in torch, same input, same threads. > 1 = onnxruntime faster.
- memory.<preset>.peak_mb: peak memory of one training step (CUDA: max allocated; CPU: peak RSS
  of a fresh process minus the same process before the step).
- loop_overhead.<task>.ratio (with --data): a real update of the task, run as its command runs it,
  over its bare update (forward, backward, optimizer, after-update work) on the same batches
  (bench/loop.py). 1.0 = the training loop costs nothing.
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from uniwav.config import preset_model


def timed(fn: Callable, repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_rate(device: str, dtype=torch.float32, n: int = 0, repeats: int = 5) -> float:
    """Measured FLOP/s of a square n x n matmul (default n: 2048 on a CPU, 8192 on a GPU, where a
    smaller product is too short to reach the chip's rate)."""
    n = n or (8192 if device == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats, device=device)


def _autocast(device: str, bf16: bool):
    return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)


def train_step(preset: str, device: str, batch: int, seconds: float, repeats: int, flush_denormal: bool = True,
               compile: bool = False, bf16: bool = False) -> dict:
    """One pre-training update (forward, backward, AdamW, EMA teacher + codebooks) on a fresh model:
    float32 or bf16 autocast (``trainer.precision``), Transformer stacks eager or compiled
    (``trainer.compile``). MFU is against the matmul rate of the same dtype."""
    from uniwav.bench.flops import pretrain_step_flops
    from uniwav.models.compile import compile_stacks
    from uniwav.models.encoder import span_mask
    from uniwav.models.uniwav import UniWav

    previous = torch.set_flush_denormal(flush_denormal) if device == "cpu" else None
    try:
        torch.manual_seed(0)
        cfg = preset_model(preset)
        model = UniWav(cfg).to(device).train()
        if compile:
            compile_stacks(model)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        T = int(seconds * cfg.features.frame_rate)
        feats = torch.randn(batch, T, cfg.features.n_mels, device=device)
        lengths = torch.full((batch,), T, device=device)
        mask = span_mask(lengths.cpu(), T, cfg.encoder.mask_prob, cfg.encoder.mask_span, torch.Generator().manual_seed(0)).to(device)

        def step():
            opt.zero_grad(set_to_none=True)
            with _autocast(device, bf16):
                out = model(feats, lengths, mask)
            out.loss.backward()
            opt.step()
            model.after_optimizer_step(100)

        sec = timed(step, repeats, warmup=2 if compile else 1, device=device)
    finally:
        if previous is not None:
            torch.set_flush_denormal(False)
    flops = pretrain_step_flops(cfg, batch, T, int(mask.sum()))["total"]
    rate = matmul_rate(device, torch.bfloat16 if bf16 else torch.float32)
    return {"batch": batch, "seconds_of_audio": seconds, "step_seconds": sec, "model_tflops_per_step": flops / 1e12,
            "achieved_tflops": flops / sec / 1e12, "matmul_tflops": rate / 1e12, "mfu": flops / sec / rate}


def encoder_vs_hubert(preset: str, device: str, batch: int, seconds: float, repeats: int, compile: bool = False,
                      bf16: bool = False) -> dict:
    """Forward+backward of our context network against transformers' HuBERT encoder of the same
    shape, dropouts and attention (SDPA), on the same input, under the same conditions: both
    float32 eager (``speedup``), both bf16 autocast (``bf16_speedup``), both compiled
    (``compiled_speedup``). > 1 = ours faster. ``speedup_bound``: HuBERT's time over the time the
    same analytic FLOPs take at the matmul rate measured here, the most any implementation of this
    encoder could gain on this machine."""
    import copy

    from transformers import HubertConfig
    from transformers.models.hubert.modeling_hubert import HubertEncoder, HubertEncoderStableLayerNorm

    from uniwav.bench.flops import context_flops
    from uniwav.models.encoder import ContextNetwork

    cfg = preset_model(preset)
    e = cfg.encoder
    torch.manual_seed(0)
    ours = ContextNetwork(e).to(device).train()
    hub_cfg = HubertConfig(hidden_size=e.dim, num_hidden_layers=e.layers, num_attention_heads=e.heads, intermediate_size=e.ffn_dim,
                           num_conv_pos_embeddings=e.pos_conv_kernel, num_conv_pos_embedding_groups=e.pos_conv_groups,
                           hidden_dropout=e.dropout, attention_dropout=e.attention_dropout, activation_dropout=0.0, feat_proj_dropout=0.0,
                           layerdrop=e.layer_drop, do_stable_layer_norm=e.norm_first, hidden_act="gelu")
    hub_cfg._attn_implementation = "sdpa"
    hubert = (HubertEncoderStableLayerNorm if e.norm_first else HubertEncoder)(hub_cfg).to(device).train()  # pre-LN / post-LN
    T = int(seconds * cfg.features.frame_rate)
    x = torch.randn(batch, T, e.dim, device=device)

    def fwd_bwd(module, final, bf16=False):
        def run():
            x_ = x.clone().requires_grad_(True)
            with _autocast(device, bf16):
                y = final(module(x_))
            y.float().pow(2).mean().backward()
        return run

    ours_final, hub_final = (lambda out: out[2]), (lambda out: out.last_hidden_state)
    result = {"ours_seconds": timed(fwd_bwd(ours, ours_final), repeats, device=device),
              "hubert_seconds": timed(fwd_bwd(hubert, hub_final), repeats, device=device)}
    result["speedup"] = result["hubert_seconds"] / result["ours_seconds"]
    if bf16:
        result["ours_bf16_seconds"] = timed(fwd_bwd(ours, ours_final, True), repeats, device=device)
        result["hubert_bf16_seconds"] = timed(fwd_bwd(hubert, hub_final, True), repeats, device=device)
        result["bf16_speedup"] = result["hubert_bf16_seconds"] / result["ours_bf16_seconds"]
    if compile:
        ours_c, hub_c = copy.deepcopy(ours), copy.deepcopy(hubert)
        ours_c.compile()
        hub_c.compile()
        result["ours_compiled_seconds"] = timed(fwd_bwd(ours_c, ours_final), repeats, warmup=2, device=device)
        result["hubert_compiled_seconds"] = timed(fwd_bwd(hub_c, hub_final), repeats, warmup=2, device=device)
        result["compiled_speedup"] = result["hubert_compiled_seconds"] / result["ours_compiled_seconds"]
    # Both run the same matmuls: an implementation doing nothing but them at the measured matmul rate
    # would take flops / rate, so hubert_seconds / (flops / rate) bounds any speedup on this machine.
    flops = 3 * context_flops(e, batch, T)
    rate = matmul_rate(device)
    result.update(model_tflops=flops / 1e12, matmul_tflops=rate / 1e12, ours_mfu=flops / result["ours_seconds"] / rate,
                  hubert_mfu=flops / result["hubert_seconds"] / rate, speedup_bound=result["hubert_seconds"] * rate / flops)
    if bf16:
        rate16 = matmul_rate(device, torch.bfloat16)
        result.update(ours_bf16_mfu=flops / result["ours_bf16_seconds"] / rate16,
                      hubert_bf16_mfu=flops / result["hubert_bf16_seconds"] / rate16,
                      bf16_speedup_bound=result["hubert_bf16_seconds"] * rate16 / flops)
    result["params_ours"] = sum(p.numel() for p in ours.parameters())
    result["params_hubert"] = sum(p.numel() for p in hubert.parameters())
    return result


def attention_paths(preset: str, device: str, batch: int, seconds: float, repeats: int) -> dict:
    """Forward+backward of one self-attention (the preset's heads and width, a padding mask as training
    passes one) in bf16: our ``attention`` against ``F.scaled_dot_product_attention`` on the same
    inputs. ``speedup`` > 1 = ours faster; on a GPU both are the same fused kernel."""
    import torch.nn.functional as F

    from uniwav.models.layers import attention

    cfg = preset_model(preset)
    e, T = cfg.encoder, int(seconds * cfg.features.frame_rate)
    torch.manual_seed(0)
    q, k, v = (torch.randn(batch, e.heads, T, e.dim // e.heads, device=device, dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    mask = torch.ones(batch, 1, 1, T, dtype=torch.bool, device=device)

    def fwd_bwd(fn):
        return lambda: fn(q, k, v, mask).float().pow(2).mean().backward()

    sdpa = timed(fwd_bwd(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)), repeats, device=device)
    ours = timed(fwd_bwd(attention), repeats, device=device)
    return {"shape": f"{batch}x{e.heads}x{T}x{e.dim // e.heads}", "sdpa_ms": sdpa * 1e3, "ours_ms": ours * 1e3, "speedup": sdpa / ours}


def features(files: list, repeats: int = 1) -> dict:
    """Single-thread throughput of loading + features over ``files`` (paths of 16 kHz audio)."""
    import soundfile as sf
    from lhotse.features import Fbank

    from uniwav.config import FeatureConfig
    from uniwav.features.mel import LogMel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mel = LogMel(FeatureConfig())
        fbank = Fbank()
        audio_seconds = sum(sf.info(str(f)).duration for f in files)

        def ours():
            for f in files:
                wav, _ = sf.read(str(f), dtype="float32")
                mel(torch.from_numpy(wav)[None])

        def lhotse_fbank():
            for f in files:
                wav, sr = sf.read(str(f), dtype="float32")
                fbank.extract(wav[None], sr)

        t_ours = timed(ours, repeats)
        t_ref = timed(lhotse_fbank, repeats)
    finally:
        torch.set_num_threads(threads)
    return {"audio_seconds": audio_seconds, "x_realtime_per_core": audio_seconds / t_ours,
            "lhotse_fbank_x_realtime_per_core": audio_seconds / t_ref, "ratio_vs_lhotse": t_ref / t_ours}


def inference(device: str, seconds: float, nfes: list, repeats: int) -> dict:
    """Real-time factors of the tiny models (random weights: speed does not depend on them)."""
    from uniwav.config import TokenizerModelConfig, TTSModelConfig, VocoderModelConfig, load_config
    from uniwav.inference.transcribe import transcribe
    from uniwav.inference.vocoders import Synthesizer
    from uniwav.models.tokenizer import SpeechTokenizer
    from uniwav.models.tts import TTSModel
    from uniwav.models.uniwav import UniWav
    from uniwav.models.vocoder import Vocoder

    cfg = preset_model("tiny")
    pre = UniWav(cfg).eval()
    wav = torch.randn(int(seconds * cfg.features.sample_rate)) * 0.1
    ctc = _tiny_ctc(cfg)
    out = {"audio_seconds": seconds, "transcribe_rtf": timed(lambda: transcribe(ctc, wav), repeats) / seconds}
    tok = SpeechTokenizer.from_pretrained_backbone(pre, TokenizerModelConfig()).eval()
    voc_cfg = load_config(VocoderModelConfig, base=_vocoder_preset())
    vocoder = Vocoder(voc_cfg).eval()
    synth = Synthesizer(cfg.features, model=vocoder)

    def tok_detok():
        from uniwav.inference.resynthesis import resynthesize

        resynthesize(tok, wav.numpy(), 1, synth, nfe=16)

    out["tokenize_detokenize_nfe16_rtf"] = timed(tok_detok, repeats) / seconds
    out["vocoder_rtf"] = timed(lambda: vocoder(tok.features.raw(wav[None])[0]), repeats) / seconds
    tts = TTSModel.from_pretrained_backbone(pre, TTSModelConfig(vocab=list(" 'abcdefghijklmnopqrstuvwxyz"))).eval()
    with torch.no_grad():  # untrained durations are arbitrary: pin them to the demo corpus' rate
        tts.duration.out.weight.zero_()
        tts.duration.out.bias.fill_(math.log1p(FRAMES_PER_CHARACTER))
    from uniwav.inference.tts import synthesize

    text = "the quick brown fox jumps over the lazy dog"
    n = len(synthesize(tts, wav[: 3 * cfg.features.sample_rate].numpy(), text, synth, nfe=2))
    gen_seconds = n / cfg.features.sample_rate
    for nfe in nfes:
        t = timed(lambda n=nfe: synthesize(tts, wav[: 3 * cfg.features.sample_rate].numpy(), text, synth, nfe=n, guidance=1.0), repeats)
        out[f"tts_nfe{nfe}_rtf"] = t / gen_seconds
    return out


def _tiny_ctc(cfg):
    from uniwav.config import CTCModelConfig
    from uniwav.models.ctc import CTCModel

    return CTCModel(CTCModelConfig(features=cfg.features, encoder=cfg.encoder, vocab=["<blank>", *" 'abcdefghijklmnopqrstuvwxyz"])).eval()


def onnx_runtime(seconds: float, repeats: int) -> dict:
    """The tiny recogniser and the demo's vocoder through onnxruntime against the same models in torch
    (CPU, same threads): real-time factors and speedup = torch time / onnxruntime time."""
    import tempfile

    from uniwav.config import VocoderModelConfig, load_config
    from uniwav.inference.onnx import export_onnx, load_onnx
    from uniwav.inference.transcribe import transcribe
    from uniwav.models.vocoder import Vocoder

    cfg = preset_model("tiny")
    wav = torch.randn(int(seconds * cfg.features.sample_rate)) * 0.1
    ctc, vocoder = _tiny_ctc(cfg), Vocoder(load_config(VocoderModelConfig, base=_vocoder_preset())).eval()
    mel = vocoder.features.raw(wav[None])[0]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_ctc = load_onnx(export_onnx(ctc, f"{tmp}/ctc"), threads=torch.get_num_threads())
        onnx_vocoder = load_onnx(export_onnx(vocoder, f"{tmp}/vocoder"), threads=torch.get_num_threads())
    out = {"audio_seconds": seconds}
    for name, ours, theirs in (("transcribe", lambda: transcribe(ctc, wav), lambda: transcribe(onnx_ctc, wav)),
                               ("vocoder", lambda: vocoder(mel), lambda: onnx_vocoder(mel))):
        with torch.no_grad():
            t_torch, t_onnx = timed(ours, repeats), timed(theirs, repeats)
        out.update({f"{name}_torch_rtf": t_torch / seconds, f"{name}_onnx_rtf": t_onnx / seconds, f"{name}_onnx_speedup": t_torch / t_onnx})
    return out


# Frames per character the TTS benchmark generates (3 x 20 ms: the demo corpus speaks 16 characters a second).
FRAMES_PER_CHARACTER = 3.0


def _vocoder_preset() -> dict:
    from importlib import resources

    import yaml

    return yaml.safe_load((resources.files("uniwav.configs") / "vocoder_tiny.yaml").read_text())["model"]


_MEMORY_CHILD = r"""
import json, resource, sys, torch
from uniwav.config import preset_model
from uniwav.models.uniwav import UniWav
preset, batch, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
cfg = preset_model(preset)
model = UniWav(cfg).train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
T = int(seconds * cfg.features.frame_rate)
feats, lengths = torch.randn(batch, T, cfg.features.n_mels), torch.full((batch,), T)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024  # kB -> MB
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
out = model(feats, lengths); out.loss.backward(); opt.step()
peak = status("VmHWM")
print(json.dumps({"peak_mb": peak, "step_mb": peak - before, "params_m": sum(p.numel() for p in model.parameters()) / 1e6}))
"""


def memory(preset: str, device: str, batch: int, seconds: float) -> dict:
    if device == "cuda":
        from uniwav.models.uniwav import UniWav

        cfg = preset_model(preset)
        torch.cuda.reset_peak_memory_stats()
        model = UniWav(cfg).cuda().train()
        T = int(seconds * cfg.features.frame_rate)
        base = torch.cuda.memory_allocated()
        out = model(torch.randn(batch, T, cfg.features.n_mels, device="cuda"), torch.full((batch,), T, device="cuda"))
        out.loss.backward()
        return {"peak_mb": torch.cuda.max_memory_allocated() / 2**20, "step_mb": (torch.cuda.max_memory_allocated() - base) / 2**20}
    res = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, preset, str(batch), str(seconds)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def train_shape(preset: str, device: str) -> tuple[int, float]:
    """(crops per batch, seconds per crop) of a training step: the preset's own batch
    (data.max_duration of data.crop_seconds crops), except for presets above tiny on a CPU (2 x 6 s)."""
    from uniwav.config import PretrainConfig, load_config

    data = load_config(PretrainConfig, preset).data
    if device == "cpu" and preset != "tiny":
        return 2, 6.0
    return max(1, int(data.max_duration // data.crop_seconds)), data.crop_seconds


def hubert_row(preset: str, device: str, repeats: int, compile: bool = False, bf16: bool = False) -> dict:
    """``encoder_vs_hubert`` at the preset's training shape, or a note when its reference (transformers) is not installed."""
    if importlib.util.find_spec("transformers") is None:
        return {"skipped": "transformers is not installed: pip install 'uniwav[bench]' for this row"}
    return encoder_vs_hubert(preset, device, *train_shape(preset, device), repeats, compile=compile, bf16=bf16)


def run_all(quick: bool, device: str, files: list, compile: bool = True, on_row=None, data_dir=None) -> dict:
    """Every measurement; ``on_row(result)`` is called after each row is added (rows are kept as
    they finish, so an interrupted run keeps what it measured). ``data_dir``: a prepared corpus to run
    the training tasks on for the loop-overhead rows (bench/loop.py)."""
    from uniwav.training.launch import resolve_precision

    presets = ["tiny"] if quick else ["tiny", "base"]
    repeats = 3 if quick else 5
    precision, why = resolve_precision("auto", "cuda" if device == "cuda" else "cpu")
    bf16 = precision == "bf16-mixed"

    class Rows(dict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if on_row is not None:
                on_row(self)

    result = Rows(device=device, torch=torch.__version__, threads=torch.get_num_threads(), quick=quick,
                  trainer_precision_auto=f"{precision} ({why})")
    for p in presets:
        batch, secs = train_shape(p, device)
        row = result[f"train_step.{p}"] = train_step(p, device, batch, secs, repeats)
        if bf16:  # what trainer.precision=auto trains with here
            half = train_step(p, device, batch, secs, repeats, bf16=True)
            row.update(bf16_step_seconds=half["step_seconds"], bf16_matmul_tflops=half["matmul_tflops"], bf16_mfu=half["mfu"],
                       bf16_speedup=row["step_seconds"] / half["step_seconds"])
        if compile:  # trainer.compile: the Transformer stacks compiled
            fast = train_step(p, device, batch, secs, repeats, compile=True)
            row.update(compiled_step_seconds=fast["step_seconds"], compiled_mfu=fast["mfu"],
                       compile_speedup=row["step_seconds"] / fast["step_seconds"])
        if device == "cpu":  # what flushing denormals to zero (the trainer's setting on CPU) buys
            off = train_step(p, device, batch, secs, repeats, flush_denormal=False)
            row["denormal_flush_speedup"] = off["step_seconds"] / row["step_seconds"]
        result[f"memory.{p}"] = memory(p, device, batch, secs)
    for p in presets:
        result[f"encoder_vs_hubert.{p}"] = hubert_row(p, device, repeats, compile=compile, bf16=bf16)
    if bf16:
        result["attention.bf16"] = attention_paths("tiny", device, *train_shape("tiny", device), 10 if quick else 20)
    if files:
        result["features"] = features(files)
    result["inference"] = inference(device, 8.0, [4, 8, 16, 32], 1 if quick else 3)
    if device == "cpu" and importlib.util.find_spec("onnxruntime") is not None:
        result["onnx"] = onnx_runtime(8.0, 3 if quick else 5)
    if data_dir is not None:  # every task's real update against its bare update, same batches
        from uniwav.bench.loop import loop_overhead

        tasks = ("pretrain",) if quick else ("pretrain", "asr", "tokenizer", "tts")
        for key, row in loop_overhead(data_dir, device, updates=10 if quick else 20, tasks=tasks).items():
            result[key] = row
    return result



def table(result: dict) -> str:
    rows = []
    for key, value in result.items():
        if isinstance(value, dict):
            for k, v in value.items():
                rows.append(f"{key}.{k:<36} {v:.4g}" if isinstance(v, float) else f"{key}.{k:<36} {v}")
        else:
            rows.append(f"{key:<44} {value}")
    return "\n".join(rows)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="uniwav bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p):
    p.add_argument("--quick", action="store_true", help="tiny preset only, fewer repeats (a few minutes on 2 cores)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"],
                   help="where to measure (default: cuda when available)")
    p.add_argument("--data", default=None, help="a prepared data folder: its test audio feeds the feature benchmark, and the training "
                   "tasks run on it for the loop-overhead rows (real update / bare update, per task)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (no C++ compiler, or in a hurry)")
    p.add_argument("--scale", default=None, metavar="WORK_DIR",
                   help="instead: the data stream at LibriLight size (bench/scale.py), simulated in WORK_DIR (several GB)")
    p.add_argument("--scale-hours", type=float, default=60000.0, help="hours of audio the --scale manifest describes")


def run(args) -> int:
    if args.scale:
        from uniwav.bench.scale import run_scale

        result = run_scale(args.scale, args.scale_hours, data_dir=args.data)
        print(table(result))
        if args.json:
            from uniwav.utils import atomic_write_text

            atomic_write_text(args.json, json.dumps(result, indent=1))
        return 0
    files = []
    if args.data:
        from uniwav.data.manifests import load_cuts

        files = [c.recording.sources[0].source for c in list(load_cuts(args.data, "test"))[:40]]
    from uniwav.utils import atomic_write_text

    def save(rows):
        if args.json:
            atomic_write_text(args.json, json.dumps(rows, indent=1))

    result = run_all(args.quick, args.device, files, compile=not args.no_compile, on_row=save, data_dir=args.data)
    save(result)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
