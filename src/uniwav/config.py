"""Typed configuration: dataclasses + YAML presets + dotted command-line overrides.

Every default of METHOD.md is a field here. A config is resolved once (preset file,
then ``key=value`` overrides), validated by type, and saved beside every run and
inside every checkpoint. Typos are errors that suggest the closest key.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message naming the key or file."""


@dataclass
class FeatureConfig:
    """The one log-mel front end shared by encoder input, decoder target, vocoder and evaluation."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 320  # 50 frames/s at 16 kHz
    window: str = "hann"
    n_mels: int = 80
    fmin: float = 0.0
    fmax: Optional[float] = 8000.0
    mel_scale: str = "slaney"  # "slaney" or "htk"
    mel_norm: Optional[str] = "slaney"  # "slaney" or None
    power: float = 1.0  # 1 = magnitude mel (as Vocos), 2 = power mel
    log_floor: float = 1e-5
    center: bool = True
    # Dataset-level per-bin statistics of the log-mel, filled by `uniwav prepare`.
    norm_mean: Optional[list[float]] = None
    norm_std: Optional[list[float]] = None

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def validate(self) -> None:
        if not 0 < self.hop_length <= self.win_length <= self.n_fft:
            raise ConfigError(
                f"features: need 0 < hop_length ({self.hop_length}) <= win_length ({self.win_length}) <= n_fft ({self.n_fft})"
            )
        if self.mel_scale not in ("slaney", "htk"):
            raise ConfigError(f"features.mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.mel_norm not in (None, "slaney"):
            raise ConfigError(f"features.mel_norm must be 'slaney' or null, got {self.mel_norm!r}")
        fmax = self.fmax if self.fmax is not None else self.sample_rate / 2
        if not 0 <= self.fmin < fmax <= self.sample_rate / 2:
            raise ConfigError(f"features: need 0 <= fmin < fmax <= sample_rate/2, got {self.fmin}, {fmax}")
        for name in ("norm_mean", "norm_std"):
            value = getattr(self, name)
            if value is not None and len(value) != self.n_mels:
                raise ConfigError(f"features.{name} has {len(value)} values, expected n_mels={self.n_mels}")

    def mel_fields(self) -> dict:
        """The fields that define the mel itself (normalisation excluded): two front ends
        with equal mel_fields produce the same spectrogram."""
        d = dataclasses.asdict(self)
        d.pop("norm_mean")
        d.pop("norm_std")
        return d

    @classmethod
    def vocos_24k(cls) -> FeatureConfig:
        """Matches the public 24 kHz Vocos mel vocoder (torchaudio MelSpectrogram defaults)."""
        return cls(
            sample_rate=24000, n_fft=1024, win_length=1024, hop_length=256, n_mels=100,
            fmin=0.0, fmax=12000.0, mel_scale="htk", mel_norm=None, power=1.0, log_floor=1e-7,
        )


@dataclass
class TransformerConfig:
    """The shape every Transformer stack of ours has (encoder and decoder): blocks, and a convolutional
    relative position embedding in front of them."""

    dim: int = 768
    layers: int = 12
    heads: int = 12
    ffn_dim: int = 3072
    dropout: float = 0.1
    pos_conv_kernel: int = 31  # odd, so that the convolution is centred
    pos_conv_groups: int = 16

    def check_shape(self, where: str) -> None:
        if self.dim % self.heads:
            raise ConfigError(f"{where}.dim={self.dim} must be divisible by {where}.heads={self.heads}")
        if self.pos_conv_kernel % 2 == 0:
            raise ConfigError(f"{where}.pos_conv_kernel={self.pos_conv_kernel} must be odd (a centred convolution)")
        if self.dim % self.pos_conv_groups:
            raise ConfigError(f"{where}.dim={self.dim} must be divisible by {where}.pos_conv_groups={self.pos_conv_groups}")


@dataclass
class EncoderConfig(TransformerConfig):
    pos_conv_kernel: int = 127  # with pos_conv_depth > 1: the receptive field, each layer max(3, kernel // depth) wide (data2vec)
    pos_conv_depth: int = 1  # 1: wav2vec 2.0's one weight-normed convolution; DinoSR base: 5 convolutions with LayerNorm + GELU
    attention_dropout: float = 0.1
    layer_drop: float = 0.0
    norm_first: bool = True  # pre-LN blocks; False = post-LN (wav2vec 2.0 / HuBERT / DinoSR base)
    mask_prob: float = 0.8  # expected span starts = mask_prob * T / mask_span
    mask_span: int = 10

    def validate(self) -> None:
        self.check_shape("encoder")
        if self.layers < 1 or self.mask_span < 1 or self.pos_conv_depth < 1:
            raise ConfigError("encoder.layers, encoder.mask_span and encoder.pos_conv_depth must be at least 1")


@dataclass
class ClusteringConfig:
    """DinoSR online clustering of the EMA teacher's top layers."""

    top_layers: int = 8  # K
    codebook_size: int = 256  # V
    codebook_decay: float = 0.9
    init_from_data: bool = False  # codewords start as target vectors of the first batch (not in DinoSR)
    teacher_decay_start: float = 0.999
    teacher_decay_end: float = 0.9999
    teacher_anneal_steps: int = 30000
    # DinoSR: the teacher stops at update 200k (and the front end it shares with the student is frozen with it); -1: never
    freeze_teacher_step: int = -1
    # DinoSR (ema_layers_only): the teacher averages only the Transformer blocks and uses the student's positional convolution
    teacher_shares_pos_conv: bool = False

    def validate(self, encoder_layers: int) -> None:
        if not 1 <= self.top_layers <= encoder_layers:
            raise ConfigError(f"clustering.top_layers={self.top_layers} must be in 1..encoder.layers={encoder_layers}")
        if not 0 < self.codebook_decay < 1:
            raise ConfigError("clustering.codebook_decay must be in (0, 1)")


@dataclass
class DecoderConfig(TransformerConfig):
    """``layers`` even: U-Net skips pair layer i with layer L-1-i."""

    time_embed_dim: int = 256
    sigma_min: float = 1e-5

    def validate(self) -> None:
        self.check_shape("decoder")
        if self.layers < 2 or self.layers % 2:
            raise ConfigError(f"decoder.layers={self.layers} must be even and at least 2 (U-Net skips pair mirrored layers)")


ODE_METHODS = ("euler", "midpoint")


@dataclass
class SamplerConfig:
    """How the flow-matching decoder generates: an ODE solved from noise (t = 0) to features (t = 1)."""

    nfe: int = 16  # network evaluations per sample (a guided step evaluates the network on a doubled batch)
    method: str = "midpoint"  # "euler" or "midpoint" (two evaluations per step)
    sway: float = 0.0  # F5-TTS sway sampling of the time grid, t + s (cos(pi t / 2) - 1 + t): s < 0 spends steps early
    guidance: float = 0.0  # classifier-free guidance weight w: v = v_cond + w (v_cond - v_uncond); 0 = off
    # known context frames (TTS prompt, infill context) enter the network at their true noisy value
    # (1 - (1 - s) t) x0 + t x_known, as in training, instead of drifting with the network's velocity
    context_path: bool = False

    def validate(self) -> None:
        if self.method not in ODE_METHODS:
            raise ConfigError(f"sampler.method must be one of {', '.join(ODE_METHODS)}, got {self.method!r}")
        least = 2 if self.method == "midpoint" else 1
        if self.nfe < least or (self.method == "midpoint" and self.nfe % 2):
            raise ConfigError(f"sampler.nfe={self.nfe}: {self.method} needs " + ("an even NFE >= 2" if least == 2 else "NFE >= 1"))
        if not -1.0 <= self.sway <= 1.0:
            raise ConfigError(f"sampler.sway={self.sway} must be in [-1, 1] (F5-TTS uses -1)")
        if self.guidance < 0:
            raise ConfigError(f"sampler.guidance={self.guidance} must be >= 0")


@dataclass
class BackboneConfig:
    """What every model built on the pre-trained UniWav shares: front end, encoder, flow decoder, sampler."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    # Only models trained with condition dropout have an unconditional velocity to guide against.
    supports_guidance = False

    def validate(self) -> None:
        self.features.validate()
        self.encoder.validate()
        self.decoder.validate()
        self.sampler.validate()
        if self.sampler.guidance and not self.supports_guidance:
            raise ConfigError(f"sampler.guidance={self.sampler.guidance}: this model was not trained with condition dropout; "
                              "classifier-free guidance needs the text-to-speech model or a model pre-trained with cond_drop_prob > 0")


def with_backbone_of(cfg: T, source: BackboneConfig) -> T:
    """``cfg`` (any model config with a backbone) with ``source``'s backbone shape: features, encoder and
    decoder. The one rule by which a fine-tuned model takes the shape of the pre-trained model it starts from."""
    return dataclasses.replace(cfg, features=source.features, encoder=source.encoder, decoder=source.decoder)


@dataclass
class ModelConfig(BackboneConfig):
    """The pre-trained UniWav: backbone + EMA teacher + online codebooks + student heads."""

    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    decoder_loss_weight: float = 1.0  # lambda in L = L_enc + lambda * L_dec; 0 = DinoSR alone
    # Fraction of utterances whose decoder condition is dropped (the encoder sees them fully masked,
    # as the TTS model's unconditional input; they are left out of L_enc). 0 = the paper.
    cond_drop_prob: float = 0.0

    def validate(self) -> None:
        super().validate()
        self.clustering.validate(self.encoder.layers)
        if self.decoder_loss_weight < 0:
            raise ConfigError("decoder_loss_weight must be >= 0")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ConfigError(f"cond_drop_prob={self.cond_drop_prob} must be in [0, 1)")

    @property
    def supports_guidance(self) -> bool:  # dropped conditions taught the decoder an unconditional velocity
        return self.cond_drop_prob > 0


@dataclass
class OptimConfig:
    lr: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-8
    weight_decay: float = 0.01  # decoupled (AdamW; fairseq's Adam decays the same way)
    # "cosine": linear warm-up over warmup_steps, cosine decay to final_lr_ratio; "tri_stage" (fairseq, DinoSR): warm-up from
    # 1% of lr, hold, exponential decay to 1% of lr, over the fractions tri_stage_ratios of total_steps
    schedule: str = "cosine"
    tri_stage_ratios: list[float] = field(default_factory=lambda: [0.03, 0.47, 0.50])
    warmup_steps: int = 32000
    total_steps: int = 400000  # length of the schedule; --max-steps only stops early
    final_lr_ratio: float = 0.0
    grad_clip: float = 10.0

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr={self.lr} must be positive")
        if not 0 <= self.warmup_steps < self.total_steps:
            raise ConfigError("optim.warmup_steps must be >= 0 and smaller than optim.total_steps")
        if self.schedule not in ("cosine", "tri_stage"):
            raise ConfigError(f"optim.schedule={self.schedule!r}: choose 'cosine' or 'tri_stage'")
        if len(self.tri_stage_ratios) != 3 or min(self.tri_stage_ratios) < 0 or abs(sum(self.tri_stage_ratios) - 1) > 1e-6:
            raise ConfigError(f"optim.tri_stage_ratios={self.tri_stage_ratios}: three fractions (warm-up, hold, decay) that add up to 1")


@dataclass
class DataConfig:
    max_duration: float = 200.0  # seconds of audio per batch per process
    crop_seconds: float = 15.0  # random crop of longer cuts
    min_seconds: float = 1.0  # shorter cuts are dropped from pre-training
    num_buckets: int = 20
    num_workers: int = -1  # audio-loading processes; -1: chosen from the machine (training/task.py: resolve_workers)

    def validate(self) -> None:
        if self.max_duration <= 0 or self.crop_seconds <= 0:
            raise ConfigError("data.max_duration and data.crop_seconds must be positive")
        if self.num_buckets < 1 or self.num_workers < -1:
            raise ConfigError("data.num_buckets must be >= 1 and data.num_workers >= -1 (-1: chosen from the machine)")


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # "ddp", "fsdp", ...
    precision: str = "auto"  # "auto" = bf16-mixed where the hardware multiplies bf16 fast (GPU or CPU), else 32-true
    accumulate_grad_batches: int = 1
    log_every: int = 10
    sample_every: int = 500  # mel images, audio and layer weights to TensorBoard
    checkpoint_every: int = 1000
    max_bad_steps: int = 20  # consecutive non-finite steps before stopping
    compile: bool = False  # torch.compile the Transformer stacks (models/compile.py; `uniwav bench` measures the gain)
    profiler: str = ""  # "simple" or "advanced": Lightning's per-hook timing report at the end of the run
    # learning curves of generated speech (TTS, tokenizer), every sample_every updates: dev utterances
    # generated, transcribed by this CTC model (and Whisper when installed) and scored (training/monitor.py)
    monitor_asr: str = ""
    monitor_utterances: int = 4
    monitor_whisper: bool = True  # Whisper tiny.en (when installed) transcribes them too: English speech only

    def validate(self) -> None:
        for name in ("accumulate_grad_batches", "log_every", "sample_every", "checkpoint_every", "num_nodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name}={getattr(self, name)} must be at least 1")
        devices = self.devices
        if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
            devices = int(devices)
        if not (devices == "auto" or (isinstance(devices, int) and (devices >= 1 or devices == -1))
                or (isinstance(devices, (list, tuple)) and devices and all(isinstance(d, int) and d >= 0 for d in devices))):
            raise ConfigError(f"trainer.devices (--devices) is {self.devices!r}; give 'auto', a number of devices (1 or more; "
                              "processes on a CPU), -1 for all of them, or a list of GPU indices")


@dataclass
class TaskConfig:
    """What every training task has: optimiser, data, trainer and seed. Subclasses add ``model``
    (validated here) and their own fields, whose checks extend ``validate``."""

    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 1234

    def validate(self) -> None:
        if not 0 <= self.seed <= 2**32 - 1:
            raise ConfigError(f"seed={self.seed}: a seed is a whole number from 0 to {2**32 - 1}")
        self.model.validate()
        self.optim.validate()
        self.data.validate()
        self.trainer.validate()


@dataclass
class PretrainConfig(TaskConfig):
    model: ModelConfig = field(default_factory=ModelConfig)


def check_unit(unit: str) -> None:
    if unit not in ("char", "phone"):
        raise ConfigError(f"model.unit={unit!r}: the text unit is 'char' or 'phone'")


@dataclass
class CTCModelConfig:
    """Encoder + linear CTC head over characters or phones (speech recognition and forced alignment)."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    vocab: list[str] = field(default_factory=list)  # index 0 is the CTC blank
    unit: str = "char"  # the text front end (data/frontend.py): "char" or "phone" (espeak-ng)
    language: str = "en-us"  # espeak-ng's language of the phones (unit "phone")
    mask_prob: float = 0.5  # span masking of time frames as augmentation (fine-tuning only)
    mask_span: int = 10
    channel_mask_prob: float = 0.1  # span masking of input channels
    channel_mask_span: int = 16
    final_dropout: float = 0.1
    layer: Optional[int] = None  # encoder layer (1-based) feeding the head; None = the last (layers above it are not run)

    def validate(self) -> None:
        self.features.validate()
        self.encoder.validate()
        check_unit(self.unit)
        if self.layer is not None and not 1 <= self.layer <= self.encoder.layers:
            raise ConfigError(f"model.layer={self.layer} must be in 1..encoder.layers={self.encoder.layers}")


@dataclass
class FinetuneASRConfig(TaskConfig):
    model: CTCModelConfig = field(default_factory=CTCModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=150, total_steps=1500, grad_clip=5.0))
    data: DataConfig = field(default_factory=lambda: DataConfig(max_duration=40.0, crop_seconds=1e6, min_seconds=0.0, num_buckets=5))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(checkpoint_every=250))
    init: str = "none"  # the pre-trained model the encoder started from ("none" = random initialisation)
    init_from: str = "student"  # which pre-trained Transformer: "student" or its EMA "teacher"
    label_minutes: Optional[float] = None  # deterministic subset of the labelled training data
    freeze_encoder_steps: int = 100  # train only the head for the first updates
    # the encoder's learning rate is optim.lr times this (the head's is optim.lr). A pre-trained encoder's residual stream is
    # ~10x larger than a fresh one's (pre-LN), so it barely moves at the head's rate (test CER 0.401 with x3 vs 0.419 with x1)
    encoder_lr_scale: float = 3.0
    val_every: int = 250
    layer_drop: Optional[float] = None  # the encoder's layerdrop while fine-tuning; None: the pre-trained model's (fairseq base_100h: 0.1)
    freeze_front_end: bool = False  # keep the input projection as pre-trained (fairseq's feature_grad_mult 0)

    def validate(self) -> None:
        super().validate()
        if self.init_from not in ("student", "teacher"):
            raise ConfigError(f"init_from must be 'student' or 'teacher', got {self.init_from!r}")


@dataclass
class QuantizerConfig:
    """Residual vector quantiser on the encoder's mixed representation z (speech tokens)."""

    num_quantizers: int = 2  # K stages; 1..K usable from one model (quantizer dropout)
    codebook_size: int = 1024  # 50 frames/s x log2(1024) = 500 bit/s per stage
    decay: float = 0.99  # EMA of codeword sums and counts
    kmeans_iters: int = 10  # k-means initialisation on the first batch
    dead_threshold: float = 1.0  # EMA count (vectors per batch) under which a codeword is restarted
    # The paper's Eq. 11: the first codebook quantises one encoder layer (1-based; the "semantic" layer that
    # `uniwav analyze layers` finds most phonetic), the next ones the residual of z. None: every stage on z.
    semantic_layer: Optional[int] = None

    def validate(self) -> None:
        if self.num_quantizers < 1 or self.codebook_size < 2:
            raise ConfigError("quantizer: need num_quantizers >= 1 and codebook_size >= 2")
        if self.semantic_layer is not None and self.semantic_layer < 1:
            raise ConfigError(f"quantizer.semantic_layer is a 1-based encoder layer, got {self.semantic_layer}")


@dataclass
class TokenizerModelConfig(BackboneConfig):
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    def validate(self) -> None:
        super().validate()
        self.quantizer.validate()
        if (self.quantizer.semantic_layer or 0) > self.encoder.layers:
            raise ConfigError(f"quantizer.semantic_layer={self.quantizer.semantic_layer} must be in 1..encoder.layers={self.encoder.layers}")


@dataclass
class FinetuneTokenizerConfig(TaskConfig):
    model: TokenizerModelConfig = field(default_factory=TokenizerModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, warmup_steps=100, total_steps=1500, grad_clip=5.0))
    data: DataConfig = field(default_factory=lambda: DataConfig(max_duration=40.0, crop_seconds=6.0, num_buckets=5))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(sample_every=200, checkpoint_every=200))
    init: str = ""  # the pre-trained UniWav run or export
    # False: the encoder learns with the codes (straight-through, commitment loss): 500 bit/s dev Whisper CER 0.31
    # after 300 updates vs 0.35 after 600 frozen (docs/results.md). True: encoder and layer mix frozen.
    freeze_encoder: bool = False
    commitment_weight: float = 0.25  # moves something only when the encoder is trained


@dataclass
class VocoderModelConfig:
    """Vocos: ConvNeXt backbone over raw log-mel frames + inverse-STFT head (hop = features.hop_length)."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    dim: int = 512
    intermediate_dim: int = 1536
    layers: int = 8
    padding: str = "center"  # inverse STFT framing: "center" (ours) or "same" (public Vocos checkpoints)

    def validate(self) -> None:
        self.features.validate()
        if self.padding not in ("center", "same"):
            raise ConfigError(f"vocoder padding must be 'center' or 'same', got {self.padding!r}")


@dataclass
class TrainVocoderConfig(TaskConfig):
    model: VocoderModelConfig = field(default_factory=VocoderModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, betas=[0.8, 0.9], weight_decay=0.0, warmup_steps=0,
                                                                    total_steps=100000, final_lr_ratio=0.1, grad_clip=100.0))
    data: DataConfig = field(default_factory=lambda: DataConfig(max_duration=8.0, crop_seconds=1.0, num_buckets=2))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(sample_every=500, checkpoint_every=500))
    mel_weight: float = 45.0
    stft_weight: float = 1.0  # multi-resolution STFT (spectral convergence + log magnitude)
    feature_matching_weight: float = 2.0
    gan_start_step: int = 0  # discriminators join after this many updates (0 = from the start)
    mpd_periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    mrd_ffts: list[int] = field(default_factory=lambda: [512, 1024, 2048])


@dataclass
class TTSModelConfig(BackboneConfig):
    # guidance 2 with sway -1 (F5-TTS): Whisper CER 0.75 vs 0.95 with guidance 1 on a uniform grid (docs/results.md)
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(guidance=2.0, sway=-1.0))
    vocab: list[str] = field(default_factory=list)  # characters or phones; ids 0 (no text) and 1 (silence) come first
    unit: str = "char"  # the text front end (data/frontend.py): "char" or "phone" (espeak-ng), as the alignments it learnt from
    language: str = "en-us"  # espeak-ng's language of the phones (unit "phone")
    text_dim: int = 128
    text_layers: int = 0  # convolutions that give each frame's character its neighbours (0: none, as models before 0.2)
    duration_dim: int = 128
    duration_layers: int = 3
    duration_loss_weight: float = 1.0

    supports_guidance = True

    def validate(self) -> None:
        super().validate()
        check_unit(self.unit)


@dataclass
class FinetuneTTSConfig(TaskConfig):
    model: TTSModelConfig = field(default_factory=TTSModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, warmup_steps=100, total_steps=2000, grad_clip=5.0))
    data: DataConfig = field(default_factory=lambda: DataConfig(max_duration=40.0, crop_seconds=1e6, min_seconds=0.0, num_buckets=5))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(sample_every=250, checkpoint_every=250))
    init: str = "none"  # pre-trained UniWav run/export, or "none" (the from-scratch baseline)
    alignments: str = ""  # `uniwav align` output folder
    mask_min: float = 0.7  # fraction of each utterance generated (one contiguous span), Voicebox
    mask_max: float = 1.0
    cond_drop_prob: float = 0.2  # text and audio context dropped together (classifier-free guidance)
    prompt_text_drop_prob: float = 0.5  # the context frames' text dropped (prompts without a transcript)

    def validate(self) -> None:
        super().validate()
        if not 0 < self.mask_min <= self.mask_max <= 1:
            raise ConfigError("need 0 < mask_min <= mask_max <= 1")


# ---------------------------------------------------------------- loading and saving


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("uniwav.configs").iterdir() if p.name.endswith(".yaml"))


def _preset_text(name_or_path: str) -> tuple[str, str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path.read_text(), str(path)
    res = resources.files("uniwav.configs") / f"{name_or_path}.yaml"
    if not res.is_file():
        raise ConfigError(f"unknown config preset {name_or_path!r}; presets: {', '.join(preset_names())}, or a YAML file path")
    return res.read_text(), f"preset {name_or_path}"


def _all_keys(node, prefix="") -> list[str]:
    out = []
    for k, v in node.items():
        key = f"{prefix}{k}"
        out.append(key)
        if OmegaConf.is_dict(v):
            out.extend(_all_keys(v, key + "."))
    return out


def _friendly(err: OmegaConfBaseException, schema, source: str) -> ConfigError:
    full_key = getattr(err, "full_key", None) or ""
    msg = str(err).splitlines()[0]
    hint = ""
    if full_key and "did you mean" not in msg.lower():
        close = difflib.get_close_matches(str(full_key), _all_keys(schema), n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    return ConfigError(f"{source}: {msg}{hint}" + (f" [key: {full_key}]" if full_key else ""))


def _parse_yaml(text: str, source: str):
    """The YAML ``text`` as an OmegaConf mapping; a syntax error names the file, line and problem."""
    try:
        node = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: not valid YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})") from None
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise ConfigError(f"{source}: a config is a mapping of keys to values (model:, optim:, ...), not a {type(node).__name__}")
    return OmegaConf.create(text)


def preset_model(preset: str) -> ModelConfig:
    """The pre-training model config of a preset (``tiny``, ``base``, ``large`` or a YAML file)."""
    return load_config(PretrainConfig, preset).model


def load_config(cls: type[T], preset: Optional[str] = None, overrides: Optional[list[str]] = None, base: Optional[dict] = None,
                validate: bool = True) -> T:
    """Resolve a config: dataclass defaults <- ``base`` dict <- preset/YAML <- ``key=value`` overrides.

    Raises ConfigError naming the bad key (with a suggestion) or value. ``validate=False`` leaves the checks
    of the values to the caller (a training run validates once, after completing the config from its data).
    """
    schema = OmegaConf.structured(cls)
    cfg = schema
    try:
        if base is not None:
            cfg = OmegaConf.merge(cfg, base)
        if preset:
            text, source = _preset_text(preset)
            cfg = OmegaConf.merge(cfg, _parse_yaml(text, source))
    except OmegaConfBaseException as e:
        raise _friendly(e, schema, source if preset else "config") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as e:
            raise _friendly(e, schema, f"override {item!r}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: its value is not valid YAML ({getattr(e, 'problem', None) or e})") from None
    obj = OmegaConf.to_object(cfg)
    if validate and hasattr(obj, "validate"):
        obj.validate()
    return obj


def to_dict(cfg) -> dict:
    """Plain-Python (JSON/YAML-safe) dict of a config dataclass."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def from_dict(cls: type[T], data: dict, validate: bool = True) -> T:
    return load_config(cls, base=data, validate=validate)


def save_yaml(cfg, path) -> None:
    from uniwav.utils import atomic_write_text

    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
