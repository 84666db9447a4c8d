"""Corpora (own folders, LibriSpeech/LibriLight, the espeak-ng demo), lhotse manifests,
normalisation statistics and pre-training batches."""
