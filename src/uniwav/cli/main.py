"""``uniwav <subcommand> ...``: every subcommand lives in its own module with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

# name -> module (imported lazily, so `uniwav --help` is fast)
SUBCOMMANDS = {
    "prepare": "uniwav.cli.prepare",
    "pretrain": "uniwav.cli.pretrain",
    "export": "uniwav.cli.export",
    "finetune-asr": "uniwav.cli.finetune_asr",
    "transcribe": "uniwav.cli.transcribe",
    "finetune-tokenizer": "uniwav.cli.finetune_tokenizer",
    "tokenize": "uniwav.cli.tokenize_audio",
    "detokenize": "uniwav.cli.detokenize",
    "resynthesize": "uniwav.cli.resynthesize",
    "train-vocoder": "uniwav.cli.train_vocoder",
    "finetune-tts": "uniwav.cli.finetune_tts",
    "tts": "uniwav.cli.tts",
    "vocode": "uniwav.cli.vocode",
    "align": "uniwav.cli.align",
    "build-lm": "uniwav.cli.build_lm",
    "evaluate": "uniwav.cli.evaluate",
    "analyze": "uniwav.cli.analyze",
    "demo": "uniwav.cli.demo",
    "bench": "uniwav.cli.bench",
    "serve": "uniwav.cli.serve",
}

HELP = {
    "prepare": "prepare a corpus: your own folder, LibriSpeech, LibriLight, or the built-in espeak-ng demo",
    "pretrain": "pre-train (or resume) UniWav: encoder + flow-matching decoder, jointly",
    "export": "export a run to config.json + model.safetensors (from_pretrained), or a recogniser / vocoder to ONNX",
    "finetune-asr": "fine-tune a CTC recogniser from a pre-trained model (or from scratch)",
    "transcribe": "transcribe audio files with a fine-tuned CTC model",
    "finetune-tokenizer": "add a residual vector quantiser to a pre-trained model: speech tokens at 500/1000 bit/s",
    "tokenize": "audio files -> codes file (.npz)",
    "detokenize": "codes file -> audio",
    "resynthesize": "audio -> codes -> audio at a chosen bitrate",
    "train-vocoder": "train a Vocos vocoder on the project's mel features",
    "finetune-tts": "fine-tune in-context text-to-speech from a pre-trained model (or from scratch) with CTC alignments",
    "tts": "speak text in the voice of a short audio prompt",
    "vocode": "audio -> mel -> audio through a vocoder (the ceiling of generated speech)",
    "align": "CTC forced alignment of a prepared corpus (feeds text-to-speech)",
    "build-lm": "a word n-gram language model (ARPA) of a corpus's transcripts, for beam search with --lm",
    "evaluate": "evaluate a model on a prepared split (asr, infill, resynth, tts), or compare two ASR results",
    "analyze": "what each encoder layer knows (character probe, mutual information with characters and speakers)",
    "demo": "the whole pipeline on the built-in demo corpus",
    "bench": "speed and memory, as ratios against references measured in the same run",
    "serve": "the trained models in a local web page (Gradio): transcribe, speak, tokens",
}


def _known_errors():
    from uniwav.checkpoint import CheckpointError
    from uniwav.config import ConfigError
    from uniwav.data.audio import AudioError
    from uniwav.data.manifests import DataError
    from uniwav.data.prepare_demo import DemoError
    from uniwav.data.text import VocabularyError
    from uniwav.inference.ctc_decode import AlignmentError
    from uniwav.inference.codes import CodesError
    from uniwav.inference.lm import LanguageModelError
    from uniwav.inference.tts import PromptError
    from uniwav.inference.vocoders import VocoderMismatchError
    from uniwav.training.run_folder import RunLockedError

    return (CheckpointError, ConfigError, AudioError, DataError, DemoError, VocabularyError, AlignmentError, CodesError,
            VocoderMismatchError, PromptError, LanguageModelError, RunLockedError, FileNotFoundError, ValueError)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (when it has one worth showing)."""

    def _get_help_string(self, action):
        text = action.help or ""
        hidden = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "%(default)" not in text and "default" not in text and not hidden and action.option_strings:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    from uniwav import __version__

    parser = argparse.ArgumentParser(prog="uniwav", description="UniWav: one speech model for recognition and generation.")
    parser.add_argument("--version", action="version", version=f"uniwav {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        sub.add_parser(name, help=HELP[name], add_help=False)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        parser = build_parser()
        if not argv or argv[0] in ("-h", "--help"):
            parser.print_help()
            return 0
        parser.parse_args(argv)  # prints usage + "invalid choice" and exits 2
        return 2
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"uniwav {argv[0]}: warning: {message}\n"  # one line, no source
    module = importlib.import_module(SUBCOMMANDS[argv[0]])
    parser = argparse.ArgumentParser(prog=f"uniwav {argv[0]}", description=HELP[argv[0]], formatter_class=DefaultsHelpFormatter)
    module.add_arguments(parser)
    for sub in getattr(parser, "_subparsers", None) and parser._subparsers._group_actions or []:
        for child in sub.choices.values():
            child.formatter_class = DefaultsHelpFormatter
    has_subcommands = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
    # dotted overrides may come before or after the options (`--devices 2 optim.lr=1e-3 --no-progress`)
    args = parser.parse_args(argv[1:]) if has_subcommands else parser.parse_intermixed_args(argv[1:])
    from uniwav.training.run_folder import TrainingInterrupted

    try:
        return module.run(args) or 0
    except TrainingInterrupted as e:
        print(f"uniwav {argv[0]}: {e}", file=sys.stderr)
        return e.exit_code
    except _known_errors() as e:
        if os.environ.get("UNIWAV_DEBUG"):
            raise
        print(f"uniwav {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, a folder where a file should be: the file and the reason
        if os.environ.get("UNIWAV_DEBUG"):
            raise
        where = f"{e.filename}: " if e.filename else ""
        hint = " (free some space, or write to another disk)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        print(f"uniwav {argv[0]}: error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"uniwav {argv[0]}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
