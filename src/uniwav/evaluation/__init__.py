"""Evaluation: error rates and per-utterance reports."""
