"""Inference: CTC decoding, forced alignment, batched and chunked transcription."""
