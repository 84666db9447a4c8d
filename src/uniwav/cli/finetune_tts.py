"""``uniwav finetune-tts --init RUN|none --data DATA --alignments ALIGN --out RUN [--max-steps N] [--max-minutes M]``."""

from __future__ import annotations

from uniwav.cli.common import add_training_arguments, announce, training_kwargs


def add_arguments(p):
    p.add_argument("--init", required=True, help="pre-trained UniWav run/export, or 'none' to train the same architecture from scratch")
    p.add_argument("--alignments", required=True, help="output folder of `uniwav align`")
    p.add_argument("--asr", default=None, help="a CTC model that transcribes the dev utterances generated every trainer.sample_every "
                   "updates (learning curves in TensorBoard: monitor/*; Whisper is used too when the eval extra is installed)")
    add_training_arguments(p, "tts_tiny", "cond_drop_prob=0.1 optim.lr=1e-4")


def run(args):
    from uniwav.training.finetune_tts import finetune_tts

    run_dir = finetune_tts(args.data, args.out, args.alignments, args.init, **training_kwargs(args, asr=args.asr))
    announce(f"run: {run_dir}  (try: uniwav tts --model {run_dir} --prompt P.wav --text 'hello' -o out.wav)")
