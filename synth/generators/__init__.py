"""Generators: steps that make synthetic samples from the real train samples (images and text)."""
