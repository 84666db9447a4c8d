"""``uniwav finetune-tokenizer --init RUN --data DATA --out RUN [--max-steps N] [--max-minutes M] [key=value ...]``."""

from __future__ import annotations

from uniwav.cli.common import add_training_arguments, announce, training_kwargs


def add_arguments(p):
    p.add_argument("--init", required=True, help="pre-trained UniWav run or export folder")
    p.add_argument("--asr", default=None, help="a CTC model that transcribes the dev utterances generated every trainer.sample_every "
                   "updates (learning curves in TensorBoard: monitor/*; Whisper is used too when the eval extra is installed)")
    add_training_arguments(p, "tokenizer_tiny", "model.quantizer.codebook_size=512 freeze_encoder=true")


def run(args):
    from uniwav.training.finetune_tokenizer import finetune_tokenizer

    run_dir = finetune_tokenizer(args.data, args.out, args.init, **training_kwargs(args, asr=args.asr))
    announce(f"run: {run_dir}  (try: uniwav resynthesize --model {run_dir} IN.wav -o OUT.wav --bitrate 500)")
