"""synth: synthetic training data with provenance, dedup, filters, mixing and ablation."""

__version__ = "0.1.0"
