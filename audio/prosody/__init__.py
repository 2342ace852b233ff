"""Prosody of a caller's utterances: features (features.py) and the caller's own baseline (baseline.py)."""
