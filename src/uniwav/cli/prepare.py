"""``uniwav prepare folder|demo|librispeech|librilight``."""

from __future__ import annotations

import time

from uniwav.cli.common import positive_int, seed
from uniwav.config import FeatureConfig


def add_arguments(p):
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    f = sub.add_parser("folder", help="your own corpus: DIR/<speaker>/<utt>.wav|.flac (+ <utt>.txt or DIR/transcripts.tsv)")
    f.add_argument("--audio-dir", required=True, help="the corpus: DIR/<speaker>/<utt>.wav|.flac")
    f.add_argument("--test-speakers", help="comma-separated speaker folders for the test split (default: ~10%% of speakers)")
    f.add_argument("--dev-speakers", help="comma-separated speaker folders for the dev split (default: ~5%% of speakers)")
    f.add_argument("--splits", help="TSV of utt_id<TAB>train|dev|test fixing every utterance's split")
    f.add_argument("--seed", type=seed, default=0, help="seed of the default speaker split")
    f.add_argument("--language", default="en", help="language of the transcripts: en (letters a-z) or another, whose own letters "
                   "are kept and numbers spelled out in it (e.g. de, es)")
    d = sub.add_parser("demo", help="the built-in demo corpus, synthesised offline with espeak-ng")
    d.add_argument("--minutes", type=float, default=45.0, help="minutes of speech to synthesise")
    d.add_argument("--seed", type=seed, default=0, help="seed of the voices, sentences and split")
    d.add_argument("--speakers", type=int, default=48, help="number of voices")
    d.add_argument("--language", default="en", help="en, or de / es / it (needs that language's fortunes package, "
                   "e.g. apt-get install fortunes-de)")
    for name, helptext in (("librispeech", "a local LibriSpeech copy (lhotse recipe)"), ("librilight", "a local LibriLight copy (lhotse recipe)")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--corpus-dir", required=True, help="the local copy of the corpus (nothing is downloaded)")
    for s in (f, d) + tuple(sub.choices[n] for n in ("librispeech", "librilight")):
        s.add_argument("--out", required=True, help="output data folder (new or empty; an earlier prepare of the same input is rebuilt)")
        s.add_argument("--sample-rate", type=positive_int, default=16000, help="sample rate of the prepared audio (Hz)")
        s.add_argument("--jobs", type=positive_int, default=2, help="parallel processes")
        s.add_argument("--shar", action="store_true", help="also write the train split as lhotse Shar shards (DATA/train/shar: "
                       "audio in tar files of 1000 cuts, streamed one shard at a time; for clusters reading shared or object storage)")


def _split_list(value):
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def run(args):
    from uniwav.data.manifests import available_splits, write_shar
    from uniwav.data.stats import ensure_stats

    t0 = time.time()
    report = None
    if args.source == "folder":
        from uniwav.data.prepare_folder import prepare_folder

        report = prepare_folder(args.audio_dir, args.out, args.sample_rate, _split_list(args.test_speakers), _split_list(args.dev_speakers),
                                args.splits, seed=args.seed, num_workers=args.jobs, language=args.language)
    elif args.source == "demo":
        from uniwav.data.prepare_demo import prepare_demo

        report = prepare_demo(args.out, minutes=args.minutes, seed=args.seed, num_speakers=args.speakers,
                              sample_rate=args.sample_rate, num_workers=args.jobs, language=args.language)
    elif args.source == "librispeech":
        from uniwav.data.prepare_corpora import prepare_librispeech_dir

        print(prepare_librispeech_dir(args.corpus_dir, args.out, args.jobs))
    else:
        from uniwav.data.prepare_corpora import prepare_librilight_dir

        print(prepare_librilight_dir(args.corpus_dir, args.out, args.jobs))
    if report is not None:
        print(f"prepared {args.out}:\n{report.summary()}")
    if "train" in available_splits(args.out):  # an evaluation-only corpus is scored with each model's own statistics
        ensure_stats(args.out, FeatureConfig(sample_rate=args.sample_rate, fmax=min(8000.0, args.sample_rate / 2)))
        if args.shar:
            print(f"wrote {write_shar(args.out, 'train', num_jobs=args.jobs)}")
    print(f"done in {time.time() - t0:.1f} s")
