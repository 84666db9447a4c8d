"""Recipes built on the library: the demo (``uniwav demo``). Paper-scale recipes (LibriSpeech, LibriLight)
live in the repository's recipes/ folder."""
