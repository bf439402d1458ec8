"""Sampling: the 360 pipeline (adapter schedule, latent rotation, circular padding)."""
